"""The reading heads: aligned (an RBF support-vector regression) and coherent (a ridge) from answer states and the
text heads' raw scores, as plain arrays, mapped to the readers' scale by quantile maps (fitted in judge_lab/kit_heads)."""

from __future__ import annotations

import numpy as np


def read_inputs(states: np.ndarray, raw: dict, text_weight: float, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Standardized [answer states, text heads' raw aligned, raw coherent], the text columns scaled by text_weight."""
    x = np.column_stack([np.asarray(states, np.float64), raw["aligned"], raw["coherent"]])
    z = (x - mean) / std
    z[:, -2:] *= text_weight
    return z


def rbf_predict(z: np.ndarray, support: np.ndarray, dual: np.ndarray, intercept: float, gamma: float,
                chunk: int = 512) -> np.ndarray:
    """sum_i dual_i * exp(-gamma * |z - support_i|^2) + intercept, in chunks of rows."""
    sq = (support ** 2).sum(axis=1)
    out = np.empty(len(z))
    for i in range(0, len(z), chunk):
        part = z[i:i + chunk]
        d2 = (part ** 2).sum(axis=1)[:, None] + sq[None, :] - 2 * part @ support.T
        out[i:i + chunk] = np.exp(-gamma * np.maximum(d2, 0)) @ dual + intercept
    return out


def read_raw(arrays: dict, states: np.ndarray, raw: dict) -> dict[str, np.ndarray]:
    """Uncalibrated reading-head outputs (the readers' 0-100 scale, not yet quantile-mapped)."""
    z = read_inputs(states, raw, float(arrays["read_text_weight"]), arrays["read_mean"], arrays["read_std"])
    aligned = rbf_predict(z, arrays["read_aligned_support"].astype(np.float64), arrays["read_aligned_dual"].astype(np.float64),
                          float(arrays["read_aligned_intercept"]), float(arrays["read_aligned_gamma"]))
    coherent = z @ arrays["read_coherent_coef"] + float(arrays["read_coherent_intercept"])
    return {"aligned": aligned, "coherent": coherent}


def read_scores(arrays: dict, states: np.ndarray, raw: dict) -> dict[str, np.ndarray]:
    """Aligned and coherent (0-100) from the reading heads, through their quantile maps."""
    out = read_raw(arrays, states, raw)
    return {k: np.clip(np.interp(v, arrays[f"cal_read_{k}_x"], arrays[f"cal_read_{k}_y"]), 0, 100) for k, v in out.items()}
