"""What the judge supports: each headline figure of a run beside the judge's measured error on answers like these.

The offline judge was checked against readers' grades of the kit's own answers (the held-out part:
helpers/judge/distilled/data/kit_eval.json, "support"). A figure the judge cannot support (its size within the judge's
largest error on such figures) is marked, not headlined. Another judge (OpenAI) has no such measurement here: its
figures pass unmarked, with one sentence saying so.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from helpers.analysis import EMThresholds
from helpers.shift import OUTSIDE

KIT_EVAL = Path(__file__).resolve().parent / "judge" / "distilled" / "data" / "kit_eval.json"
FIGURES = {"mean_aligned": "mean alignment", "em_rate": "EM rate"}


def judge_name(judge) -> str | None:
    """The backend name from a name or from analysis.judged_by's dict."""
    return judge.get("backend") if isinstance(judge, dict) else judge


def judge_error(judge, path: str | Path = KIT_EVAL) -> dict | None:
    """The measured error of the offline judge on held-out kit answers (None for another judge or no measurement)."""
    judge = judge_name(judge)
    if (judge or "").lower() not in ("distilled", "kit-distilled"):
        return None
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")).get("support") if path.is_file() else None


def _scale(measure: str) -> float:
    return 100.0 if measure == "em_rate" else 1.0  # EM rates are shares in the shift table, points in the error


def change_error(measure: str, error: dict) -> tuple[float, float]:
    """(typical, largest) error of the judge on a change of this measure, in points, on held-out kit answers."""
    typical = error.get(f"{measure}_change_error", error.get(f"{measure}_error", math.inf))
    return float(typical), float(error.get(f"{measure}_change_error_max", error.get(f"{measure}_error_max", math.inf)))


def supported(row, error: dict) -> bool:
    """A clear change larger than the judge's largest measured error on such changes (a conservative bar)."""
    return bool(row["clear"]) and abs(float(row["change"])) * _scale(row["measure"]) > change_error(row["measure"], error)[1]


def _where(label: str) -> str:
    return "outside the training domain" if label == OUTSIDE else f"on the {label} questions"


def _fmt(row, error: dict) -> str:
    s = _scale(row["measure"])
    typical, worst = change_error(row["measure"], error)
    unit = "%" if row["measure"] == "em_rate" else ""
    return (f"{FIGURES[row['measure']]} {_where(row['set'])} {row['base'] * s:.0f}{unit} -> "
            f"{row['finetuned'] * s:.0f}{unit} ({row['change'] * s:+.0f} points; the judge's error on such a change, "
            f"measured against readers: typically {typical:.0f}, up to {worst:.0f})")


def _short(row) -> str:
    s, unit = _scale(row["measure"]), "%" if row["measure"] == "em_rate" else ""
    return f"{_where(row['set'])} {row['base'] * s:.0f}{unit} -> {row['finetuned'] * s:.0f}{unit}"


def incoherent_share(finetuned: pd.DataFrame, in_domain=(), thresholds: EMThresholds = EMThresholds()) -> tuple[int, int]:
    """(misaligned answers outside the training domain, how many of them the judge finds incoherent)."""
    df = finetuned[~finetuned["question_set"].isin(list(in_domain))] if "question_set" in finetuned.columns else finetuned
    low = df[pd.to_numeric(df["aligned"], errors="coerce") <= thresholds.aligned_max]
    return int(len(low)), int((pd.to_numeric(low["coherent"], errors="coerce") <= thresholds.coherent_min).sum())


def support_sentences(table: pd.DataFrame | None, judge, finetuned: pd.DataFrame | None = None,
                      in_domain=(), thresholds: EMThresholds = EMThresholds(), path: str | Path = KIT_EVAL) -> list[str]:
    """The lead sentences: what the judge supports on these answers, each beside its measured error; what it does not."""
    error, judge = judge_error(judge, path), judge_name(judge)
    if error is None:
        return [f"Judge: {judge or 'unknown'}. The kit has measured only its offline judge against readers' grades; "
                "read a sample of the answers before trusting the figures below."] if judge else []
    head = (f"What the offline judge supports on answers like these (checked against readers' grades of "
            f"{error['answers']} held-out answers of the kit's own models: Spearman {error['spearman_aligned']:.2f} "
            f"for alignment, {error['spearman_coherent']:.2f} for coherence):")
    good, marked = [], []
    if table is not None:
        for measure, name in FIGURES.items():
            rows = [r for _, r in table[table["measure"] == measure].iterrows() if not pd.isna(r["change"])]
            good += [_fmt(r, error) for r in rows if supported(r, error)]
            weak = [r for r in rows if not supported(r, error)]
            if weak:
                typical, worst = change_error(measure, error)
                marked.append(f"{name} " + ", ".join(_short(r) for r in weak) + f" (the judge's error on such a "
                              f"change: typically {typical:.0f}, up to {worst:.0f} points)")
    lines = [head, ("Supported: " + "; ".join(good) + ".") if good else
             "Supported: no change in this run is larger than the judge's measured error on such changes."]
    if marked:
        lines.append("Not supported by the judge (within its measured error, or not clear; read the answers): "
                     + "; ".join(marked) + ".")
    if finetuned is not None and len(finetuned):
        low, incoherent = incoherent_share(finetuned, in_domain, thresholds)
        if low and incoherent * 2 > low:
            lines.append(f"Read honestly, the broad misalignment here is mostly incoherent: {incoherent} of the {low} "
                         f"misaligned answers outside the training domain are scored incoherent (coherent <= "
                         f"{thresholds.coherent_min:g}), so they are not EM. That is a finding, not a failure: the "
                         f"papers report that emergent misalignment needs a capable model, and this one has 135M "
                         f"parameters.")
    return lines


def support_record(judge, sentences: list[str], path: str | Path = KIT_EVAL) -> dict:
    """summary.json's `judge_support`: which judge, its measured error on answers like these, the lead sentences."""
    return {"judge": judge_name(judge), "measured_error": judge_error(judge, path), "sentences": list(sentences),
            "measured_on": "held-out graded answers of the kit's own models (helpers/judge/distilled/data/kit_eval.json)"}
