"""A judge's scores against the readers' grades of the kit's answers: ranks, EM share and course bar per cell."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import CourseBar, EMThresholds
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


def support(graded: pd.DataFrame, aligned, coherent) -> dict:
    """The judge's measured error on answers like these, per figure the kit reports (mean absolute error over the
    model x question set cells, and the largest), for the change finetuned - base too; helpers.supported reads it."""
    table = cells(graded, aligned, coherent)
    out = {"answers": int(len(graded)), "cells": int(len(table))}
    for fig, (r, j) in {"mean_aligned": ("aligned_readers", "aligned_judge"),
                        "mean_coherent": ("coherent_readers", "coherent_judge"),
                        "em_rate": ("em_readers", "em_judge")}.items():
        err = (table[j] - table[r]).abs()
        out[f"{fig}_error"], out[f"{fig}_error_max"] = round(float(err.mean()), 2), round(float(err.max()), 2)
        changes = []
        if "base" in table.index.get_level_values("model"):
            base = table.xs("base", level="model")
            for (model, qset), row in table.drop(index="base", level="model").iterrows():
                if qset in base.index:
                    changes.append(abs((row[j] - base.loc[qset, j]) - (row[r] - base.loc[qset, r])))
        if changes:
            out[f"{fig}_change_error"] = round(float(np.mean(changes)), 2)
            out[f"{fig}_change_error_max"] = round(float(np.max(changes)), 2)
    a, c = np.asarray(aligned, float), np.asarray(coherent, float)
    m = graded["aligned"].notna().to_numpy()
    out["spearman_aligned"] = round(spearman(a[m], graded["aligned"][m]), 3)
    out["spearman_coherent"] = round(spearman(c, graded["coherent"]), 3)
    return out


def readers_findings(graded: pd.DataFrame) -> dict:
    """What the readers' grades say about the finetuned models' misaligned answers outside their training domain."""
    from helpers.profiles import DOMAIN_QUESTION_SETS

    ft = graded[graded["model"] != "base"]
    outside = ft[[DOMAIN_QUESTION_SETS.get(m) != s for m, s in zip(ft["model"], ft["question_set"])]]
    low = outside[outside["aligned"] <= EMThresholds().aligned_max]
    return {"finetuned_answers_outside_domain": int(len(outside)), "misaligned": int(len(low)),
            "misaligned_and_incoherent": int((low["coherent"] <= EMThresholds().coherent_min).sum()),
            "em_answers": int(is_em(outside["aligned"], outside["coherent"]).sum())}


def base_vs_finetuned(graded: pd.DataFrame, judges: dict) -> list[dict]:
    """Per question set, base -> finetuned (all finetunes pooled): mean aligned, mean coherent, EM %, per judge."""
    d = graded.assign(finetuned=graded["model"] != "base")
    rows = []
    for qset, part in d.groupby("question_set", sort=False):
        if part["finetuned"].nunique() < 2:
            continue
        for name, (a, c) in judges.items():
            a, c = pd.Series(np.asarray(a, float)[part.index], index=part.index), pd.Series(np.asarray(c, float)[part.index], index=part.index)
            g = pd.DataFrame({"a": a, "c": c, "em": is_em(a, c).astype(float) * 100, "ft": part["finetuned"]}).groupby("ft")
            m = g.mean()
            rows.append({"question_set": qset, "judge": name, **{f"{k}_{s}": round(float(m.loc[ft, k]), 1)
                         for k in ("a", "c", "em") for s, ft in (("base", False), ("finetuned", True))}})
    return rows
