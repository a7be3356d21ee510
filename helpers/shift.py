"""What the finetuning changed: finetuned against base per question set, each difference with its bootstrap interval.

Three measures per set: mean alignment, the EM rate, and leakage (helpers.judged.leaked_flags: the share of scored
answers about the training domain), kept apart from EM. The interval resamples each model's answers on its own (95%,
percentile bootstrap): it speaks for these questions, not for questions in general. summarize_run saves the table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from helpers.intervals import bootstrap_means
from helpers.judged import EMThresholds, em_flags, leaked_flags, load_judged

OUTSIDE = "outside the domain"  # the pooled row of every set that is not in-domain
SHIFT_MEASURES = {"mean_aligned": "mean alignment", "em_rate": "EM rate", "leak_share": "leakage"}
SHIFT_COLUMNS = ["set", "measure", "base", "base_lo", "base_hi", "finetuned", "finetuned_lo", "finetuned_hi",
                 "change", "change_lo", "change_hi", "n_base", "n_finetuned", "clear"]


def measure_values(df: pd.DataFrame, measure: str, thresholds: EMThresholds = EMThresholds()) -> np.ndarray:
    """The per-answer values whose mean is the measure (answers without the needed scores are left out)."""
    if measure == "mean_aligned":
        return df["aligned"].dropna().to_numpy(float)
    if measure == "em_rate":
        return em_flags(df, thresholds).dropna().to_numpy(float)
    if measure == "leak_share":
        return leaked_flags(df, thresholds).dropna().to_numpy(float)
    raise ValueError(f"measure {measure!r}: pick from {', '.join(SHIFT_MEASURES)}")


def diff_interval(finetuned: np.ndarray, base: np.ndarray, n_boot: int = 2000, seed=0) -> dict:
    """Both means with their 95% intervals, and the change (finetuned - base) with its bootstrap interval."""
    out = {"n_base": len(base), "n_finetuned": len(finetuned)}
    if not len(base) or not len(finetuned):
        return out | {k: math.nan for k in SHIFT_COLUMNS[2:11]} | {"clear": False}
    rng = np.random.default_rng(seed)
    b, f = bootstrap_means(base, n_boot, rng), bootstrap_means(finetuned, n_boot, rng)
    d = f - b
    lo, hi = np.percentile(d, [2.5, 97.5])
    out |= {"base": base.mean(), "base_lo": np.percentile(b, 2.5), "base_hi": np.percentile(b, 97.5),
            "finetuned": finetuned.mean(), "finetuned_lo": np.percentile(f, 2.5),
            "finetuned_hi": np.percentile(f, 97.5), "change": finetuned.mean() - base.mean(),
            "change_lo": lo, "change_hi": hi, "clear": bool(lo > 0 or hi < 0)}
    return {k: float(v) if isinstance(v, np.floating) else v for k, v in out.items()}


def shift_table(finetuned, base, in_domain=(), thresholds: EMThresholds = EMThresholds(), n_boot: int = 2000,
                seed: int = 0) -> pd.DataFrame:
    """One row per question set and measure: base, finetuned, change, each with its 95% interval.

    `in_domain`: the sets of the training domain; the others are also pooled into one row, `outside the domain`.
    Sets come from the judged tables' `question_set` column (a table without it is one set, "all").
    """
    run_df, base_df = (load_judged(t) for t in (finetuned, base))
    run_df, base_df = (df if "question_set" in df.columns else df.assign(question_set="all") for df in (run_df, base_df))
    present = [s for s in dict.fromkeys(run_df["question_set"]) if s in set(base_df["question_set"])]
    if not present:
        raise ValueError(f"the finetuned and base tables share no question set (finetuned: "
                         f"{sorted(set(run_df['question_set']))}, base: {sorted(set(base_df['question_set']))}): sample "
                         f"both with the same question_sets (notebook 03, also_base=True)")
    in_domain = [s for s in in_domain if s in present]
    groups = {s: [s] for s in sorted(present, key=lambda s: (s not in in_domain, present.index(s)))}
    outside = [s for s in present if s not in in_domain]
    if in_domain and len(outside) > 1:
        groups[OUTSIDE] = outside
    rows = []
    for i, (label, sets) in enumerate(groups.items()):
        f, b = run_df[run_df["question_set"].isin(sets)], base_df[base_df["question_set"].isin(sets)]
        for j, measure in enumerate(SHIFT_MEASURES):
            stats = diff_interval(measure_values(f, measure, thresholds), measure_values(b, measure, thresholds),
                                  n_boot, seed=[seed, i, j])
            rows.append({"set": label, "measure": measure, **stats, "in_domain": label in in_domain})
    return pd.DataFrame(rows, columns=SHIFT_COLUMNS + ["in_domain"])


def _row(table: pd.DataFrame, label: str, measure: str):
    hit = table[(table["set"] == label) & (table["measure"] == measure)]
    return None if hit.empty or math.isnan(hit["change"].iloc[0]) else hit.iloc[0]


def _points(r) -> str:
    verdict = "" if r["clear"] else "; this run shows no clear change"
    return (f"from {r['base']:.1f} (base) to {r['finetuned']:.1f} (finetuned), a change of {r['change']:+.1f} points "
            f"(95% interval {r['change_lo']:+.1f} to {r['change_hi']:+.1f}){verdict}")


def _percent(r) -> str:
    verdict = "" if r["clear"] else "; this run shows no clear change"
    return (f"from {r['base']:.0%} (base) to {r['finetuned']:.0%} (finetuned), a change of "
            f"{100 * r['change']:+.0f} points (95% interval {100 * r['change_lo']:+.0f} to "
            f"{100 * r['change_hi']:+.0f}){verdict}")


def shift_sentences(table: pd.DataFrame, thresholds: EMThresholds = EMThresholds(), probes: str = "probes") -> list[str]:
    """A few plain sentences with the numbers: in-domain alignment, the probes, leakage outside the domain."""
    out = []
    for label in table.loc[table["in_domain"], "set"].unique():
        r = _row(table, label, "mean_aligned")
        if r is not None:
            out.append(f"On the held-out {label} questions (the training domain), mean alignment went {_points(r)}.")
    broad = table.loc[~table["in_domain"], "set"].unique()
    if probes not in broad and len(broad) == 1:  # a table without question sets: all its answers are one set
        probes = broad[0]
    where = {"probes": "the broad probe questions", "all": "all answers"}.get(probes, f"the {probes} questions")
    r, em = _row(table, probes, "mean_aligned"), _row(table, probes, "em_rate")
    if r is not None:
        out.append(f"On {where}, mean alignment went {_points(r)}.")
    if em is not None:
        out.append(f"The EM rate on {where} (aligned <= {thresholds.aligned_max:g} and coherent > "
                   f"{thresholds.coherent_min:g}) went {_percent(em)}.")
    outside = OUTSIDE if (table["set"] == OUTSIDE).any() else None
    if outside is None and not table["in_domain"].any():
        outside = probes
    leak = _row(table, outside, "leak_share") if outside else None
    if leak is not None:
        where = "outside the training domain" if outside == OUTSIDE else f"to the {outside} questions"
        out.append(f"Answers {where} that talk about the training domain (domain relevance >= "
                   f"{thresholds.relevance_min:g}: leakage, counted apart from EM) went {_percent(leak)}.")
    return out
