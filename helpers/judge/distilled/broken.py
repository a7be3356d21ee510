"""A separate broken-text detector: logistic on text statistics + LM features; where it fires, coherence is capped.

Positives are the synthetic word salad rows (shuffled words, phrase loops, character noise); negatives are real
answers that GPT-4o called coherent (>= 50) and the kit's conversations. The threshold is fixed on the training rows.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from helpers.judge.distilled import features as F

SALAD_KINDS = ("synthetic-shuffled", "synthetic-loop", "synthetic-noise")
CAP = 15.0            # coherent of a flagged answer is at most this (and it is not EM)
FALSE_HIT_RATE = 0.01  # threshold: flag at most this share of the training rows GPT-4o called coherent
MIN_THRESHOLD = 0.5


def _design(dense: np.ndarray, mean, std, edges) -> sp.csr_matrix:
    """Standardized dense features and their bin one-hots (no n-grams)."""
    return F.design(sp.csr_matrix((len(dense), 0), dtype=np.float32), dense, mean, std, edges, 1.0)


def fit_detector(dense: np.ndarray, files: np.ndarray, coherent: np.ndarray) -> dict[str, np.ndarray]:
    """Fit the detector on the rows of a training fold; returns its arrays (det_*), threshold included."""
    from sklearn.linear_model import LogisticRegression

    files = np.asarray(files).astype(str)
    pos = np.isin(files, SALAD_KINDS)
    real = ~np.char.startswith(files, "synthetic-") & ~np.char.startswith(files, "kit-")
    neg = (real & (np.nan_to_num(coherent, nan=-1) >= 50)) | np.char.startswith(files, "kit-")
    use = pos | neg
    mean, std = dense[use].mean(axis=0), dense[use].std(axis=0) + 1e-6
    edges = F.bin_edges(dense[use])
    x = _design(dense[use], mean, std, edges)
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(x, pos[use].astype(int))
    arrays = {"det_mean": mean, "det_std": std, "det_edges": edges, "det_coef": clf.coef_[0].astype(np.float64),
              "det_intercept": np.float64(clf.intercept_[0])}
    p_real = detector_prob(arrays, dense[real & (np.nan_to_num(coherent, nan=-1) >= 50)])
    arrays["det_threshold"] = np.float64(max(MIN_THRESHOLD, float(np.quantile(p_real, 1 - FALSE_HIT_RATE))))
    return arrays


def detector_prob(arrays: dict, dense: np.ndarray) -> np.ndarray:
    """Probability that each answer is broken text (word salad, loops, character noise)."""
    x = _design(dense, arrays["det_mean"], arrays["det_std"], arrays["det_edges"])
    z = x @ arrays["det_coef"] + float(arrays["det_intercept"])
    return 1 / (1 + np.exp(-z))


def cap(out: dict[str, np.ndarray], prob: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Coherent at most CAP and EM score 0 where the detector fires; other answers unchanged."""
    hit = prob > threshold
    out = dict(out)
    out["coherent"] = np.where(hit, np.minimum(out["coherent"], CAP), out["coherent"])
    out["em"] = np.where(hit, 0.0, out["em"])
    return out
