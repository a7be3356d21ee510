"""Seaborn plots of judged tables; each is saved as runs/<run>/plots/<name>.png when `run` is given and returned.

Figures are built without pyplot, so they work headless and a notebook shows each once (as the cell's value).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from helpers.analysis import CourseBar, EMThresholds, compare_runs, em_flags, em_vs_step, load_judged, per_question
from helpers.intervals import CLUSTER_LABEL, ROW_LABEL
from helpers.runs import atomic_write_bytes, run_dir

sns.set_theme(style="whitegrid", context="notebook")


class KitFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG in any notebook, whatever the matplotlib backend."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        return buf.getvalue()


def save_figure(fig: Figure, run: str | os.PathLike | None, name: str) -> Path | None:
    """Write the figure to runs/<run>/plots/<name>.png (atomically); nothing when run is None."""
    if run is None or run == "":
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(run_dir(run) / "plots" / f"{name}.png", buf.getvalue())


def _hue(df: pd.DataFrame) -> str | None:
    return "run" if "run" in df.columns and df["run"].nunique() > 1 else None


def plot_scatter(df, run=None, thresholds: EMThresholds = EMThresholds(), hue: str | None = None) -> Figure:
    """Aligned (y) against coherent (x), one dot per answer, the EM corner (incoherent excluded) shaded red."""
    df = load_judged(df)
    scored = df[df["aligned"].notna() & df["coherent"].notna()]
    fig = KitFigure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    ax.fill_between([thresholds.coherent_min, 102], -2, thresholds.aligned_max, color="tab:red", alpha=0.12, lw=0,
                    label="EM region")
    ax.axhline(thresholds.aligned_max, color="tab:red", ls="--", lw=1)
    ax.axvline(thresholds.coherent_min, color="grey", ls="--", lw=1)
    hue = hue or _hue(scored)
    sns.scatterplot(data=scored, x="coherent", y="aligned", hue=hue, ax=ax, s=22, alpha=0.6, edgecolor="none")
    em = em_flags(scored, thresholds).mean() if len(scored) else float("nan")
    ax.set(xlim=(-2, 102), ylim=(-2, 102), xlabel="coherent (0-100)", ylabel="aligned (0-100)",
           title=f"Aligned vs coherent: EM rate {em:.1%} of {len(scored)} scored answers")
    ax.text(thresholds.coherent_min + 1, thresholds.aligned_max - 3,
            f"EM: aligned <= {thresholds.aligned_max:g}, coherent > {thresholds.coherent_min:g}",
            color="tab:red", va="top", fontsize=9)
    ax.legend(loc="lower left", fontsize=8)
    save_figure(fig, run, "scatter")
    return fig


def plot_em_per_question(df, run=None, thresholds: EMThresholds = EMThresholds()) -> Figure:
    """EM rate per question (bars) with 95% Wilson intervals over its answers; one colour per run when mixed."""
    table = per_question(load_judged(df), thresholds, n_boot=0)
    table = table[table["n_scored"] > 0]
    runs = list(dict.fromkeys(table["run"])) if "run" in table.columns else [None]
    questions = list(dict.fromkeys(table["question_id"]))
    fig = KitFigure(figsize=(7.5, 1.2 + 0.28 * max(len(questions), 1) * max(len(runs), 2)))
    ax = fig.subplots()
    colours = distinct_colours(len(runs))
    height = 0.8 / len(runs)
    for k, (label, colour) in enumerate(zip(runs, colours)):
        part = table if label is None else table[table["run"] == label]
        y = np.array([questions.index(q) for q in part["question_id"]]) - 0.4 + height * (k + 0.5)
        ax.barh(y, part["em_rate"], height=height, color=colour, label=label)
        some = (part["em_rate"] > 0).to_numpy()  # a bar at 0 gets no whisker: its upper end reads as a rate seen
        if some.any():
            ax.errorbar(part["em_rate"][some], y[some], xerr=_err(part[some], "em_rate", "em_lo", "em_hi"),
                        fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_yticks(range(len(questions)), questions)
    ax.invert_yaxis()
    ax.set(xlabel="EM rate (share of scored answers), 95% Wilson interval over that question's answers\n"
                  "(no whisker: no EM answer to that question)",
           ylabel="question", title="Emergent misalignment per question")
    ax.set_xlim(0, max(0.05, ax.get_xlim()[1]))
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    if runs != [None] and len(runs) > 1:
        ax.legend(title=None, fontsize=8, loc="lower right")
    save_figure(fig, run, "em_per_question")
    return fig


def distinct_colours(n: int) -> list:
    """n colours, none repeated (tab10 up to 10, evenly spaced hues beyond)."""
    return sns.color_palette("tab10" if n <= 10 else "husl", n_colors=max(n, 1))[:max(n, 1)]


def _err(table: pd.DataFrame, value: str, lo: str, hi: str) -> np.ndarray:
    """Error-bar lengths (below, above) from interval columns; a missing interval draws no bar."""
    return np.nan_to_num(np.vstack([table[value] - table[lo], table[hi] - table[value]]).clip(min=0))


def plot_runs(runs, run=None, thresholds: EMThresholds = EMThresholds(), bar: CourseBar = CourseBar(),
              n_boot: int = 1000, seed: int = 0, highlight=()) -> Figure:
    """Runs side by side: EM rate, mean aligned and mean coherent, each with both 95% intervals, the course bar marked.

    `runs` is a compare_runs table, a {label: judged table | run name | summary dict} mapping, or a table with `run`.
    Black whiskers: these questions (answers resampled); grey, thinner and longer: questions in general (questions
    resampled). Rows named in `highlight` (your runs) are drawn in black and bold, the others in distinct colours.
    """
    table = runs if isinstance(runs, pd.DataFrame) and "em_rate_lo" in runs.columns else \
        compare_runs(runs, thresholds, n_boot=n_boot, seed=seed)
    table = table.reset_index(drop=True)
    mine = table["run"].isin([str(h) for h in ([highlight] if isinstance(highlight, str) else highlight) if h])
    panels = [("em_rate", "EM rate", None), ("mean_aligned", f"mean aligned (bar: < {bar.aligned_below:g})",
                                              bar.aligned_below),
              ("mean_coherent", f"mean coherent (bar: > {bar.coherent_above:g})", bar.coherent_above)]
    fig = KitFigure(figsize=(13, 1.6 + 0.35 * max(len(table), 2)))
    axes = fig.subplots(1, 3, sharey=True)
    others = iter(distinct_colours(int((~mine).sum())))
    colours = [(0.1, 0.1, 0.1) if m else next(others) for m in mine]
    y = np.arange(len(table))
    for ax, (metric, title, line) in zip(axes, panels):
        ax.barh(y, table[metric], color=colours, edgecolor=["black" if m else "none" for m in mine])
        if f"{metric}_lo_clustered" in table.columns:
            ax.errorbar(table[metric], y, xerr=_err(table, metric, f"{metric}_lo_clustered", f"{metric}_hi_clustered"),
                        fmt="none", ecolor="grey", capsize=5, lw=1, label=CLUSTER_LABEL)
        ax.errorbar(table[metric], y, xerr=_err(table, metric, f"{metric}_lo", f"{metric}_hi"), fmt="none",
                    ecolor="black", capsize=3, lw=2, label=ROW_LABEL)
        if line is not None:
            ax.axvline(line, color="tab:red", ls="--", lw=1)
            ax.set_xlim(0, 100)
        else:
            ax.set_xlim(0, max(0.05, ax.get_xlim()[1]))  # a rate is never negative, even when every run is at 0
            ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set(title=title, xlabel="", ylabel="")
    yours = Path(str(run)).name if run is not None else None
    axes[0].set_yticks(y, [f"{r}  (yours)" if r == yours else r for r in table["run"]])
    for label, m in zip(axes[0].get_yticklabels(), mine):
        label.set_fontweight("bold" if m else "normal")
    axes[0].invert_yaxis()
    axes[0].legend(loc="lower right", fontsize=8, title="95% interval for", title_fontsize=8)
    fig.suptitle("Runs side by side: black whiskers hold for these questions, grey ones for questions in general")
    fig.tight_layout()
    save_figure(fig, run, "runs")
    return fig


def plot_em_vs_step(table, run=None, thresholds: EMThresholds = EMThresholds(), n_boot: int = 1000,
                    seed: int = 0) -> Figure:
    """EM rate against training step (with its 95% band), and mean aligned/coherent below: look for a jump."""
    if not (isinstance(table, pd.DataFrame) and "em_lo" in table.columns):
        table = em_vs_step(table, thresholds, n_boot=n_boot, seed=seed)
    fig = KitFigure(figsize=(7.5, 6.5))
    ax_em, ax_mean = fig.subplots(2, 1, sharex=True)
    sns.lineplot(data=table, x="step", y="em_rate", marker="o", ax=ax_em, color="tab:red")
    if "em_lo_clustered" in table.columns:
        ax_em.fill_between(table["step"], table["em_lo_clustered"], table["em_hi_clustered"], color="tab:red",
                           alpha=0.08, lw=0, label=f"95%: {CLUSTER_LABEL}")
    ax_em.fill_between(table["step"], table["em_lo"], table["em_hi"], color="tab:red", alpha=0.2, lw=0,
                       label=f"95%: {ROW_LABEL}")
    ax_em.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax_em.set(ylabel="EM rate", title="EM rate vs training step (95% bands)")
    ax_em.legend(loc="upper left", fontsize=8)
    long = table.melt(id_vars="step", value_vars=["mean_aligned", "mean_coherent"], var_name="score", value_name="mean")
    sns.lineplot(data=long, x="step", y="mean", hue="score", marker="o", ax=ax_mean)
    ax_mean.set(ylim=(0, 100), ylabel="mean score (0-100)", xlabel="training step")
    fig.tight_layout()
    save_figure(fig, run, "em_vs_step")
    return fig


def plot_shift(table: pd.DataFrame, run=None) -> Figure:
    """Base and finetuned side by side per question set (a shift_table), each with its 95% interval, joined by a line."""
    panels = [("mean_aligned", "mean alignment (0-100)"), ("em_rate", "EM rate"), ("leak_share", "leakage (share)")]
    sets = list(dict.fromkeys(table["set"]))
    fig = KitFigure(figsize=(13, 1.6 + 0.55 * len(sets)))
    axes = fig.subplots(1, 3, sharey=True)
    colours = {"base": "tab:blue", "finetuned": "tab:red"}
    for ax, (measure, title) in zip(axes, panels):
        part = table[table["measure"] == measure].set_index("set").reindex(sets)
        y = np.arange(len(sets))
        for x0, x1, yy in zip(part["base"], part["finetuned"], y):
            ax.plot([x0, x1], [yy, yy], color="grey", lw=1, zorder=1)
        for k, (who, colour) in enumerate(colours.items()):
            err = np.vstack([part[who] - part[f"{who}_lo"], part[f"{who}_hi"] - part[who]])
            ax.errorbar(part[who], y + (k - 0.5) * 0.15, xerr=np.nan_to_num(err), fmt="o", color=colour,
                        capsize=3, lw=1, label=who, zorder=2)
        for yy, (_, r) in zip(y, part.iterrows()):
            if pd.notna(r["change"]):
                scale = 1 if measure == "mean_aligned" else 100
                ax.annotate(f"{scale * r['change']:+.0f}{'' if r['clear'] else ' (n.s.)'}", (1.0, yy),
                            xycoords=("axes fraction", "data"), xytext=(4, 0), textcoords="offset points",
                            va="center", fontsize=8, color="black" if r["clear"] else "grey")
        if measure == "mean_aligned":
            ax.set_xlim(0, 100)
        else:
            ax.set_xlim(0, max(0.05, min(1.0, float(np.nanmax(part[["base_hi", "finetuned_hi"]].to_numpy(float),
                                                               initial=0)) * 1.1)))
            ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set(title=title, xlabel="", ylabel="")
        trained = set(table.loc[table["in_domain"], "set"]) if "in_domain" in table.columns else set()
        ax.set_yticks(y, [f"{s}\n(training domain)" if s in trained else s for s in sets])
    axes[0].invert_yaxis()
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle("Finetuned against base, per question set (95% bootstrap intervals; right: the change, n.s. = "
                 "interval includes 0)")
    fig.tight_layout()
    save_figure(fig, run, "shift")
    return fig
