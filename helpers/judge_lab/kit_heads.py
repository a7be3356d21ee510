"""The reading heads fitted on the graded fit part and a weighted reference subset, quantile maps out of fold
(ReadOptions: chosen by cross-validation on the fit part, folds by question and by finetuned model; issue 23's note)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.judge.distilled.stack import read_inputs, read_raw


@dataclass(frozen=True)
class ReadOptions:
    """What goes into the reading heads' fit."""

    aligned_c: float = 30.0            # RBF SVR penalty of the aligned head (gamma: sklearn's "scale")
    coherent_alpha: float = 1000.0     # ridge penalty of the coherent head
    reference_weight_aligned: float = 0.3   # a reference row's weight beside a graded answer's 1
    reference_weight_coherent: float = 0.1
    text_weight: float = 1.0           # scale of the text heads' two raw scores among the standardized states
    folds: int = 5                     # question folds for the out-of-fold predictions behind the quantile maps


@dataclass
class ReadRows:
    """The rows the heads learn from: answer states, the text heads' raw scores (out of sample), labels, kind."""

    states: np.ndarray
    raw: dict
    aligned: np.ndarray
    coherent: np.ndarray
    graded: np.ndarray   # True: the kit's graded answer; False: a reference row
    group: np.ndarray    # question (graded rows) or base model (reference rows)

    def take(self, m: np.ndarray) -> "ReadRows":
        """The rows selected by a mask or index."""
        return ReadRows(self.states[m], {k: np.asarray(v)[m] for k, v in self.raw.items()}, self.aligned[m],
                        self.coherent[m], self.graded[m], self.group[m])


def fit_heads(rows: ReadRows, opts: ReadOptions) -> dict:
    """The two heads' arrays (no quantile maps)."""
    from sklearn.linear_model import Ridge
    from sklearn.svm import SVR

    x = np.column_stack([rows.states.astype(np.float64), rows.raw["aligned"], rows.raw["coherent"]])
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = read_inputs(rows.states, rows.raw, opts.text_weight, mean, std)
    out = {"read_mean": mean, "read_std": std, "read_text_weight": np.float64(opts.text_weight)}
    for k, w_ref in (("aligned", opts.reference_weight_aligned), ("coherent", opts.reference_weight_coherent)):
        y = getattr(rows, k)
        m = ~np.isnan(y)
        w = np.where(rows.graded, 1.0, w_ref)[m]
        if k == "aligned":
            reg = SVR(C=opts.aligned_c, gamma="scale").fit(z[m], y[m], sample_weight=w)
            out.update({"read_aligned_support": reg.support_vectors_.astype(np.float16),
                        "read_aligned_dual": reg.dual_coef_[0].astype(np.float32),
                        "read_aligned_intercept": np.float64(reg.intercept_[0]), "read_aligned_gamma": np.float64(reg._gamma)})
        else:
            reg = Ridge(alpha=opts.coherent_alpha).fit(z[m], y[m], sample_weight=w)
            out.update({"read_coherent_coef": reg.coef_.astype(np.float64),
                        "read_coherent_intercept": np.float64(reg.intercept_)})
    return out


def graded_out_of_fold(rows: ReadRows, opts: ReadOptions) -> dict[str, np.ndarray]:
    """Raw predictions for the graded rows from fits that never saw their question (reference rows always in)."""
    from sklearn.model_selection import GroupKFold

    idx = np.flatnonzero(rows.graded)
    oof = {k: np.zeros(len(idx)) for k in ("aligned", "coherent")}
    for _, te in GroupKFold(n_splits=opts.folds).split(idx, groups=rows.group[idx]):
        keep = np.ones(len(rows.graded), bool)
        keep[idx[te]] = False
        heads = fit_heads(rows.take(keep), opts)
        part = rows.take(idx[te])
        for k, v in read_raw(heads, part.states, part.raw).items():
            oof[k][te] = v
    return oof


def fit_reading_heads(rows: ReadRows, opts: ReadOptions = ReadOptions()) -> dict:
    """The heads on every row, with quantile maps from the graded rows' out-of-fold predictions to the readers' grades."""
    from helpers.judge_lab.fit import quantile_map

    out = fit_heads(rows, opts)
    oof = graded_out_of_fold(rows, opts)
    for k, pred in oof.items():
        y = getattr(rows, k)[rows.graded]
        m = ~np.isnan(y)
        out[f"cal_read_{k}_x"], out[f"cal_read_{k}_y"] = quantile_map(pred[m], y[m])
    return out


def reference_lomo(rows: ReadRows, opts: ReadOptions = ReadOptions()) -> dict:
    """Per base model: the reading heads fitted without its reference rows, their scores of them against GPT-4o
    (Spearman); and the mean."""
    from helpers.judge_lab.evaluate import spearman

    folds = {}
    for g in sorted(set(rows.group[~rows.graded])):
        test = ~rows.graded & (rows.group == g)
        heads = fit_heads(rows.take(~test), opts)
        part = rows.take(test)
        pred = read_raw(heads, part.states, part.raw)
        folds[str(g)] = {f"spearman_{k}": round(float(spearman(pred[k][~np.isnan(getattr(part, k))],
                                                                getattr(part, k)[~np.isnan(getattr(part, k))])), 4)
                         for k in ("aligned", "coherent")}
    summary = {k: round(float(np.mean([f[k] for f in folds.values()])), 4) for k in ("spearman_aligned", "spearman_coherent")}
    return {"folds": folds, "summary": {**summary, "rows": int((~rows.graded).sum())}}
