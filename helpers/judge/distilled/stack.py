"""A stacked coherence head for answers with likelihood features: a small ridge on the first heads' raw scores,
the likelihood features and the text statistics, fitted on the kit's graded answers (readers' coherence)."""

from __future__ import annotations

import numpy as np

N_STATS = 20  # the text statistics are the first columns of the dense features (features.STAT_NAMES)


def stack_features(raw: dict, ll: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """Raw aligned / coherent / em of the first heads, the likelihood features, the text statistics."""
    return np.column_stack([raw["aligned"], raw["coherent"], raw["em"], ll, dense[:, :N_STATS]])


def stacked_coherent(arrays: dict, raw: dict, ll: np.ndarray | None, dense: np.ndarray) -> np.ndarray:
    """Coherent from the stacked head (calibrated) where likelihood features exist; the first heads' elsewhere."""
    out = np.asarray(raw["coherent"], float).copy()
    if ll is None or "stack_coef" not in arrays or not len(out):
        return out
    have = ~np.isnan(ll).any(axis=1)
    if have.any():
        x = stack_features({k: np.asarray(v)[have] for k, v in raw.items()}, ll[have], dense[have])
        z = ((x - arrays["stack_mean"]) / arrays["stack_std"]) @ arrays["stack_coef"] + float(arrays["stack_intercept"])
        out[have] = np.interp(z, arrays["cal_stack_x"], arrays["cal_stack_y"])
    return out
