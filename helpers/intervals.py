"""95% intervals for EM numbers: over answers ("these questions") and over questions ("questions in general").

A rate measured on 8 fixed questions answers "how often does this model go wrong on *these* questions"; resampling
answers (rows) gives that interval. EM usually sits in a few questions, so "on questions like these, in general"
needs the questions themselves resampled: a question-clustered bootstrap, usually much wider.
"""

from __future__ import annotations

import math

import numpy as np

LEVEL = 0.95
ROW_LABEL = "these questions"
CLUSTER_LABEL = "questions in general"
INTERVAL_LABELS = {
    "ci": f"{ROW_LABEL}: 95% interval over answers (Wilson score interval for rates, row bootstrap for means)",
    "ci_clustered": f"{CLUSTER_LABEL}: 95% question-clustered bootstrap (whole questions resampled; "
                    "never narrower than the first interval)",
}
PROPORTION_METHODS = ("wilson", "clopper-pearson")


def proportion_ci(k: int, n: int, method: str = "wilson", level: float = LEVEL) -> list[float]:
    """Interval for k events out of n (Wilson score or exact Clopper-Pearson); 0 of n never gives [0, 0]."""
    from scipy.stats import binomtest

    if method not in PROPORTION_METHODS:
        raise ValueError(f"method={method!r}: use one of {', '.join(PROPORTION_METHODS)}")
    if n <= 0:
        return [math.nan, math.nan]
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level,
                                                 method="exact" if method == "clopper-pearson" else "wilson")
    return [float(ci.low), float(ci.high)]


def bootstrap_means(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """`n_boot` means of `x` resampled with replacement (rows)."""
    return x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)


def bootstrap_mean_ci(x, n_boot: int, rng: np.random.Generator, level: float = LEVEL) -> list[float]:
    """Percentile-bootstrap interval of a mean, resampling rows (NaN when empty, a point when n_boot is 0)."""
    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        return [math.nan, math.nan]
    if n_boot <= 0 or len(x) == 1:
        return [float(x.mean())] * 2
    return _percentiles(bootstrap_means(x, n_boot, rng), level)


def clustered_bootstrap_ci(x, clusters, n_boot: int, rng: np.random.Generator, level: float = LEVEL) -> list[float]:
    """Percentile interval of the pooled mean when whole clusters (questions) are resampled with replacement.

    NaN with fewer than two clusters: one question says nothing about questions in general.
    """
    x = np.asarray(x, dtype=float)
    labels, idx = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    if len(labels) < 2 or n_boot <= 0:
        return [math.nan, math.nan]
    sums = np.bincount(idx, weights=x, minlength=len(labels))
    counts = np.bincount(idx, minlength=len(labels)).astype(float)
    pick = rng.integers(0, len(labels), size=(n_boot, len(labels)))
    return _percentiles(sums[pick].sum(axis=1) / counts[pick].sum(axis=1), level)


def envelope(a: list[float], b: list[float]) -> list[float]:
    """The smallest interval holding both."""
    return [float(min(a[0], b[0])), float(max(a[1], b[1]))]


def two_intervals(x, clusters, proportion: bool, n_boot: int, rng: np.random.Generator,
                  method: str = "wilson") -> tuple[list[float], list[float]]:
    """(these questions, questions in general) intervals of the mean of `x`, one entry per scored answer.

    Rates (0/1 values) get a Wilson/Clopper-Pearson interval over answers; means a row bootstrap. The clustered
    interval is widened to hold the first one, so few events or few questions never make it collapse.
    """
    x = np.asarray(x, dtype=float)
    if proportion:
        row = proportion_ci(int(round(x.sum())), len(x), method)
    else:
        row = bootstrap_mean_ci(x, n_boot, rng)
    clustered = clustered_bootstrap_ci(x, clusters, n_boot, rng)
    return row, clustered if math.isnan(clustered[0]) else envelope(row, clustered)


def _percentiles(stats: np.ndarray, level: float) -> list[float]:
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    return [float(lo), float(hi)]
