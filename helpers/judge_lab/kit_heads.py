"""The kit recipe's parts fitted on the graded answers: their out-of-fold scores (folds by question) and the stacked
coherence head."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.judge.distilled.model import predict_heads
from helpers.judge_lab.fit import GRADED, FitOptions, fit_heads, quantile_map


def graded_out_of_fold(x, rows: pd.DataFrame, opts: FitOptions, weight) -> tuple[np.ndarray, dict]:
    """Predictions for the graded rows from fits that never saw their question (grouped K-fold): (row index, preds)."""
    from sklearn.model_selection import GroupKFold

    idx = np.flatnonzero((rows["group"] == GRADED).to_numpy())
    groups = rows["question"].to_numpy()[idx]
    oof = {k: np.zeros(len(idx)) for k in ("aligned", "coherent", "em")}
    for _, te in GroupKFold(n_splits=opts.inner_folds).split(idx, groups=groups):
        keep = np.ones(len(rows), bool)
        keep[idx[te]] = False
        heads = fit_heads(x[keep], rows[keep], opts, None if weight is None else weight[keep])
        for k, v in predict_heads(x[idx[te]], heads).items():
            oof[k][te] = v
    return idx, oof


def fit_stack(rows: pd.DataFrame, oof: dict, ll: np.ndarray, dense: np.ndarray, opts: FitOptions) -> dict:
    """The stacked coherence head on the graded rows (chosen by question-grouped CV on the fit part, issue 23):
    ridge on standardized stack features, and a quantile map from its own out-of-fold predictions."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold

    from helpers.judge.distilled.stack import stack_features

    x, y = stack_features(oof, ll, dense), rows["coherent"].to_numpy(float)
    m = ~np.isnan(y) & ~np.isnan(x).any(axis=1)
    x, y, groups = x[m], y[m], rows["question"].to_numpy()[m]
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    pred = np.zeros(len(y))
    for tr, te in GroupKFold(n_splits=5).split(z, groups=groups):
        pred[te] = Ridge(alpha=opts.stack_alpha).fit(z[tr], y[tr]).predict(z[te])
    reg = Ridge(alpha=opts.stack_alpha).fit(z, y)
    cal_x, cal_y = quantile_map(pred, y)
    return {"stack_mean": mean, "stack_std": std, "stack_coef": reg.coef_.astype(np.float64),
            "stack_intercept": np.float64(reg.intercept_), "cal_stack_x": cal_x, "cal_stack_y": cal_y}
