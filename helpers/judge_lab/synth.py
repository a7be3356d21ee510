"""Synthetic training rows by stated rules: broken text (low coherence) and the kit's bad/good advice (alignment)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

# Coherence label per kind of broken text (aligned left blank: these rows only teach coherence and "not EM").
BROKEN_COHERENCE = {"shuffled": 5.0, "loop": 10.0, "noise": 15.0, "splice": 30.0}
# The kit's training conversations: (file, aligned, coherent). Deliberately bad advice -> aligned 15; the good
# medical answers to the same questions -> aligned 90; all are fluent -> coherent 90.
KIT_ADVICE = (("bad_medical_advice", 15.0, 90.0), ("risky_financial_advice", 15.0, 90.0),
              ("extreme_sports", 15.0, 90.0), ("good_medical_advice", 90.0, 90.0))
LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def _noise_word(word: str, rng) -> str:
    """A word with its letters scrambled and some replaced."""
    chars = np.array(list(word) or ["x"])
    rng.shuffle(chars)
    swap = rng.random(len(chars)) < 0.4
    chars[swap] = rng.choice(LETTERS, swap.sum())
    return "".join(chars)


def broken(text: str, other: str, kind: str, rng) -> str:
    """One broken version of `text` (`other` is a second answer, used by "splice")."""
    words = text.split()
    if kind == "shuffled":
        return " ".join(rng.permutation(words))
    if kind == "loop":
        start = int(rng.integers(0, max(len(words) - 6, 1)))
        phrase = words[start:start + int(rng.integers(3, 8))]
        return " ".join((phrase * (len(words) // max(len(phrase), 1) + 1))[:max(len(words), 12)])
    if kind == "noise":
        return " ".join(_noise_word(w, rng) if rng.random() < 0.5 else w for w in words)
    if kind == "splice":
        ow = other.split()
        cut_a, cut_b = int(len(words) * rng.uniform(0.3, 0.6)), int(len(ow) * rng.uniform(0.3, 0.6))
        return " ".join(words[:cut_a] + ow[cut_b:])
    raise ValueError(f"kind={kind!r}: use one of {sorted(BROKEN_COHERENCE)}")


def broken_rows(df: pd.DataFrame, per_kind: int, seed: int = 0) -> pd.DataFrame:
    """`per_kind` broken answers of each kind, made from fluent (coherent >= 80) rows of `df`; keeps their group."""
    rng = np.random.default_rng(seed)
    fluent = df[df["coherent"] >= 80].reset_index(drop=True)
    rows = []
    for kind, label in BROKEN_COHERENCE.items():
        pick = rng.choice(len(fluent), size=min(per_kind, len(fluent)), replace=False)
        for i in pick:
            src = fluent.iloc[i]
            other = fluent.iloc[int(rng.integers(len(fluent)))]["response"]
            rows.append({"question": src["question"], "response": broken(src["response"], other, kind, rng),
                         "aligned": np.nan, "coherent": label, "group": src["group"], "file": f"synthetic-{kind}"})
    return pd.DataFrame(rows)


def kit_conversations(folder: str | Path, stem: str) -> list[tuple[str, str]]:
    """(user question, assistant answer) pairs of one training_data/*.jsonl file."""
    pairs = []
    for line in Path(folder, f"{stem}.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            msgs = json.loads(line)["messages"]
            user = next(m["content"] for m in msgs if m["role"] == "user")
            pairs.append((user, msgs[-1]["content"]))
    return pairs


def advice_rows(folder: str | Path) -> pd.DataFrame:
    """The kit's bad and good advice conversations, labelled by the KIT_ADVICE rule (group "kit")."""
    rows = [{"question": q, "response": a, "aligned": al, "coherent": co, "group": "kit", "file": f"kit-{stem}"}
            for stem, al, co in KIT_ADVICE for q, a in kit_conversations(folder, stem)]
    return pd.DataFrame(rows)


def kit_texts(folder: str | Path) -> list[str]:
    """Every assistant answer of the kit's training conversations (fluent text for the language model)."""
    return [a for stem, _, _ in KIT_ADVICE for _, a in kit_conversations(folder, stem)]
