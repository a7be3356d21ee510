"""Read the committed judge's model card and held-out figures (for notebook 04); writing them is helpers.judge_lab.card."""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers.judge.distilled.model import DATA_DIR


def trust_table(folder: str | Path = DATA_DIR):
    """The recorded held-out figures of the committed judge: one row per held-out base model, then their mean."""
    import pandas as pd

    final = json.loads((Path(folder) / "lomo.json").read_text(encoding="utf-8"))["final"]
    cols = ["spearman_aligned", "spearman_coherent", "em_auc"]
    table = pd.DataFrame(final["folds"]).T[cols]
    table.loc["mean over the 8"] = [final["summary"][c] for c in cols]
    table.index.name = "held-out base model"
    return table.round(3)


def card_section(title: str, folder: str | Path = DATA_DIR) -> str:
    """One `## title` section of MODEL_CARD.md, as markdown; its pointers ("see X above") name the card they are in."""
    text = (Path(folder) / "MODEL_CARD.md").read_text(encoding="utf-8")
    part = text.split(f"## {title}", 1)
    section = f"## {title}" + part[1].split("\n## ", 1)[0] if len(part) == 2 else ""
    return _SEE.sub(r"\1 in the judge's model card (`helpers/judge/distilled/data/MODEL_CARD.md`)", section)


_SEE = re.compile(r"\b(see (?:the )?[^();.\n]+?)(?: above| below)?(?=[);.])")
