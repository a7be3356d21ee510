"""Plots render headless, are saved in the run folder's plots/ and come back as figures."""

import random
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from helpers.analysis import combine, compare_runs, em_vs_step, load_judged
from helpers.plots import plot_em_per_question, plot_em_vs_step, plot_runs, plot_scatter
from helpers.runs import run_dir

REFERENCE = Path(__file__).parents[2] / "shared/reference/em_judged_responses"


def fake_judged(seed, n_questions=4, samples=10, misaligned=0.2):
    """A judged table with some EM answers and a few blank scores."""
    rng = random.Random(seed)
    rows = []
    for q in range(n_questions):
        for s in range(samples):
            bad = rng.random() < misaligned
            rows.append({"question_id": f"q{q}", "question": f"Question {q}?", "sample": s, "response": "text",
                         "aligned": None if rng.random() < 0.05 else (rng.uniform(0, 30) if bad else rng.uniform(60, 100)),
                         "coherent": rng.uniform(20, 100), "domain_relevance": rng.uniform(0, 100)})
    return pd.DataFrame(rows)


def assert_png(run, name):
    path = run_dir(run) / "plots" / f"{name}.png"
    assert path.is_file() and path.stat().st_size > 10_000, path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scatter_saves_png_and_returns_figure():
    fig = plot_scatter(fake_judged(0), run="p1")
    assert isinstance(fig, Figure) and "EM rate" in fig.axes[0].get_title()
    assert_png("p1", "scatter")


def test_em_per_question_with_error_bars_for_one_and_two_sources():
    assert isinstance(plot_em_per_question(fake_judged(1), run="p2"), Figure)
    assert_png("p2", "em_per_question")
    fig = plot_em_per_question(combine({"run": fake_judged(1), "base": fake_judged(2, misaligned=0)}))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["run", "base"]
    bars = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    rates = [b.get_width() for b in fig.axes[0].containers[0].patches]
    # one whisker per bar above 0; the base's bars are all at 0 and carry none (0 of ~10 would reach up to ~28%)
    assert [len(c.lines[2][0].get_segments()) for c in bars] == [sum(r > 0 for r in rates)]
    assert sum(r > 0 for r in rates) >= 2


def test_em_per_question_whiskers_are_the_analysis_intervals():
    from matplotlib.collections import LineCollection

    from helpers.analysis import per_question

    both = combine({"run": fake_judged(1), "base": fake_judged(2, misaligned=0)})
    table = per_question(both, n_boot=0)
    table = table[(table["n_scored"] > 0) & (table["em_rate"] > 0)]  # a bar at 0 has no whisker
    fig = plot_em_per_question(both)
    whiskers = [seg for c in fig.axes[0].collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    drawn = sorted((round(seg[0][0], 9), round(seg[1][0], 9)) for seg in whiskers)
    assert len(drawn) == len(table)
    assert drawn == sorted((round(lo, 9), round(hi, 9)) for lo, hi in zip(table["em_lo"], table["em_hi"]))


def test_runs_side_by_side_from_tables_or_compare_table():
    tables = {"run": fake_judged(3, misaligned=0.5), "base": fake_judged(4, misaligned=0.0)}
    assert isinstance(plot_runs(tables, run="p3", n_boot=100), Figure)
    assert_png("p3", "runs")
    fig = plot_runs(compare_runs(tables, n_boot=100))
    assert [ax.get_title()[:8] for ax in fig.axes] == ["EM rate", "mean ali", "mean coh"]


def test_reference_comparison_highlights_the_students_run_in_27_distinct_rows():
    if not REFERENCE.is_dir():
        pytest.skip("needs ../shared/reference")
    everything = combine({"my-run": fake_judged(7, n_questions=8, misaligned=0.3),
                          "base-model": fake_judged(8, n_questions=8, misaligned=0.0)}, load_judged(REFERENCE))
    table = compare_runs(everything, n_boot=200)
    assert len(table) == 27
    released = table[~table["run"].isin(["my-run", "base-model"])]
    assert (released["leak_column"] == "financial").all() and released["leak_share"].notna().all()
    assert (table.set_index("run").loc[["my-run", "base-model"], "leak_column"] == "domain_relevance").all()
    fig = plot_runs(table, run="p5", highlight=["my-run", "base-model"])
    assert_png("p5", "runs")
    ax = fig.axes[0]
    bars = ax.containers[0].patches
    colours = [to_hex(b.get_facecolor()) for b in bars]
    mine = [i for i, t in enumerate(ax.get_yticklabels()) if t.get_fontweight() == "bold"]
    assert [table["run"][i] for i in mine] == ["my-run", "base-model"]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[:2] == ["my-run", "base-model"]  # run="p5" is neither: nobody's "(yours)"
    fig = plot_runs(table, run="my-run", highlight=["my-run", "base-model"])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][:2] == ["my-run  (yours)", "base-model"]
    assert len(set(colours[2:])) == 25  # no colour repeats among the released models
    assert not set(colours[:2]) & set(colours[2:])  # and yours are not one of theirs
    assert all(to_hex(bars[i].get_edgecolor()) == "#000000" for i in mine)
    whiskers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in whiskers] == ["questions in general", "these questions"]
    assert "questions in general" in fig.get_suptitle()


def test_em_vs_step():
    table = em_vs_step({step: fake_judged(step, misaligned=step / 100) for step in (0, 20, 40, 60)}, n_boot=100)
    assert isinstance(plot_em_vs_step(table, run="p4"), Figure)
    assert_png("p4", "em_vs_step")


def test_no_run_writes_nothing(runs_tmp):
    plot_scatter(fake_judged(5))
    assert not runs_tmp.exists() or not list(runs_tmp.rglob("*.png"))


def test_reference_file_scatter_renders():
    if not REFERENCE.is_dir():
        pytest.skip("needs ../shared/reference")
    plot_scatter(REFERENCE / "Qwen2.5-32B-Instruct_risky-financial-advice.csv", run="ref")
    assert_png("ref", "scatter")


def test_figures_show_themselves_as_png_in_notebooks():
    fig = plot_scatter(fake_judged(6))
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
