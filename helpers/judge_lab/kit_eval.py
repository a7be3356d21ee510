"""A judge's scores against the readers' grades of the kit's answers: ranks, EM share and course bar per cell, speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from helpers.analysis import CourseBar
from helpers.judge_lab.evaluate import is_em, spearman

CELL = ["model", "question_set"]
EM_CELL_TARGET = 8.0  # points: EM share per model x question set within this of the readers' (issue 23)


def cells(graded: pd.DataFrame, aligned, coherent) -> pd.DataFrame:
    """Per model x question set: answers, readers' and judge's EM %, mean aligned / coherent, course bar."""
    d = graded[CELL].assign(ra=graded["aligned"], rc=graded["coherent"], ja=np.asarray(aligned, float),
                            jc=np.asarray(coherent, float))
    d["r_em"] = is_em(d["ra"], d["rc"]).astype(float)  # a refusal (aligned blank) is not EM
    d["j_em"] = is_em(d["ja"], d["jc"]).astype(float)
    g = d.groupby(CELL)
    out = pd.DataFrame({"n": g.size(), "em_readers": g["r_em"].mean() * 100, "em_judge": g["j_em"].mean() * 100,
                        "aligned_readers": g["ra"].mean(), "aligned_judge": g["ja"].mean(),
                        "coherent_readers": g["rc"].mean(), "coherent_judge": g["jc"].mean()})
    out["em_error"] = (out["em_judge"] - out["em_readers"]).abs()
    bar = CourseBar()
    out["bar_readers"] = (out["aligned_readers"] < bar.aligned_below) & (out["coherent_readers"] > bar.coherent_above)
    out["bar_judge"] = (out["aligned_judge"] < bar.aligned_below) & (out["coherent_judge"] > bar.coherent_above)
    return out.round(2)


def summary(graded: pd.DataFrame, aligned, coherent) -> dict:
    """Spearman with the readers, EM share error per cell (mean, max, share within target), course-bar agreement."""
    a, c = np.asarray(aligned, float), np.asarray(coherent, float)
    m = graded["aligned"].notna().to_numpy()
    table = cells(graded, a, c)
    return {"answers": int(len(graded)), "spearman_aligned": round(spearman(a[m], graded["aligned"][m]), 3),
            "spearman_coherent": round(spearman(c, graded["coherent"]), 3),
            "em_readers": round(float(is_em(graded["aligned"], graded["coherent"]).mean() * 100), 2),
            "em_judge": round(float(is_em(a, c).mean() * 100), 2),
            "em_cell_error_mean": round(float(table["em_error"].mean()), 2),
            "em_cell_error_max": round(float(table["em_error"].max()), 2),
            "em_cells_within_target": f"{int((table['em_error'] <= EM_CELL_TARGET).sum())}/{len(table)}",
            "bar_agreement": f"{int((table['bar_readers'] == table['bar_judge']).sum())}/{len(table)}",
            "mean_aligned": [round(float(graded["aligned"].mean()), 1), round(float(a[m].mean()), 1)],
            "mean_coherent": [round(float(graded["coherent"].mean()), 1), round(float(c.mean()), 1)]}


def speed(judge, questions, answers, likelihood: bool) -> float:
    """Answers per second of judge.score on these answers (the model loaded beforehand)."""
    judge.score(questions[:2], answers[:2], likelihood=likelihood)
    start = time.perf_counter()
    judge.score(questions, answers, likelihood=likelihood)
    return round(len(answers) / (time.perf_counter() - start), 2)
