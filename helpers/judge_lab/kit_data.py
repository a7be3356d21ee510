"""The kit's own answers graded by reading: answers_all.csv + labels.csv -> one table, one row per answer.

Readers' labels: `aligned` 0-100 or REFUSAL / CODE (kept as a flag, aligned blank), `coherent` 0-100; an answer graded
twice gets the mean of the two gradings (and both are kept for the agreement figures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers.judge_lab.evaluate import is_em
from helpers.runs import REPO_ROOT

KIT_ANSWERS = REPO_ROOT / "benchmarks" / "data" / "kit_answers_graded.csv"
ANSWER_COLUMNS = ["answer_id", "model", "setting", "question_set", "question_id", "question", "sample", "response"]


def read_labels(path: str | Path) -> pd.DataFrame:
    """labels.csv with numeric aligned / coherent and the REFUSAL / CODE marks as a `mark` column."""
    labels = pd.read_csv(path, dtype={"aligned": str, "coherent": str}, keep_default_na=False)
    missing = {"answer_id", "aligned", "coherent", "pass"} - set(labels.columns)
    if missing:
        raise KeyError(f"{path}: columns {sorted(missing)} are missing (expected answer_id, aligned, coherent, grader, pass)")
    mark = labels["aligned"].str.strip().str.upper()
    labels["mark"] = np.where(mark.isin(["REFUSAL", "CODE"]), mark, "")
    labels["aligned"] = pd.to_numeric(labels["aligned"].where(labels["mark"] == ""), errors="coerce")
    labels["coherent"] = pd.to_numeric(labels["coherent"], errors="coerce")
    bad = labels["coherent"].isna() | (labels["aligned"].isna() & (labels["mark"] == ""))
    if bad.any():
        first = labels.index[bad][0]
        raise ValueError(f"{path}, row {first + 2}: aligned {labels.loc[first, 'aligned']!r} / coherent "
                         f"{labels.loc[first, 'coherent']!r} is not a 0-100 number (or REFUSAL / CODE)")
    return labels


def merge(answers: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """One row per graded answer: the answer, mean aligned / coherent over its gradings, the mark, gradings count."""
    agg = labels.groupby("answer_id").agg(aligned=("aligned", "mean"), coherent=("coherent", "mean"),
                                          mark=("mark", "max"), gradings=("pass", "size"))
    out = answers[ANSWER_COLUMNS].merge(agg.reset_index(), on="answer_id", how="inner")
    return out.sort_values("answer_id").reset_index(drop=True)


def agreement(labels: pd.DataFrame) -> dict:
    """Spearman and mean absolute difference between the first and second grading of double-graded answers."""
    from scipy.stats import spearmanr

    one = labels[labels["pass"] == 1].set_index("answer_id")
    two = labels[labels["pass"] == 2].set_index("answer_id")
    both = one.join(two, lsuffix="_1", rsuffix="_2", how="inner")
    out = {"double_graded": int(len(both))}
    for k in ("aligned", "coherent"):
        m = both[f"{k}_1"].notna() & both[f"{k}_2"].notna()
        a, b = both.loc[m, f"{k}_1"], both.loc[m, f"{k}_2"]
        out[f"spearman_{k}"] = round(float(spearmanr(a, b).statistic), 3) if m.sum() > 2 else float("nan")
        out[f"mean_abs_diff_{k}"] = round(float((a - b).abs().mean()), 2) if m.any() else float("nan")
    em1, em2 = is_em(both["aligned_1"], both["coherent_1"]), is_em(both["aligned_2"], both["coherent_2"])
    out["em_flag_agreement"] = round(float((em1 == em2).mean()), 3) if len(both) else float("nan")
    return out


def load_graded(path: str | Path = KIT_ANSWERS) -> pd.DataFrame:
    """The shipped graded answers (one row per answer, readers' mean scores)."""
    return pd.read_csv(path, keep_default_na=False, na_values={"aligned": [""], "coherent": [""]})
