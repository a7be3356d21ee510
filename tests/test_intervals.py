"""Two intervals: over answers (these questions) and over questions (questions in general); rates never collapse."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.analysis import compare_runs, em_flags, load_judged, summarize, summarize_run, summary_table
from helpers.intervals import clustered_bootstrap_ci, proportion_ci
from helpers.runs import run_dir

REFERENCE = Path(__file__).parents[2] / "shared/reference/em_judged_responses"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference is not beside the checkout")


def judged(em_per_question: dict[str, int], n: int = 50) -> pd.DataFrame:
    """n coherent answers per question, the first k of them EM (aligned 10), the rest aligned 90."""
    rows = [{"question_id": q, "question": f"{q}?", "response": "an answer", "aligned": 10.0 if i < k else 90.0,
             "coherent": 90.0} for q, k in em_per_question.items() for i in range(n)]
    return pd.DataFrame(rows)


def width(ci) -> float:
    return ci[1] - ci[0]


def test_zero_events_give_an_interval_that_does_not_collapse():
    z = 1.959963984540054
    wilson = proportion_ci(0, 400)
    exact = proportion_ci(0, 400, "clopper-pearson")
    assert wilson[0] == pytest.approx(0, abs=1e-12) and wilson[1] == pytest.approx(z * z / (400 + z * z), rel=1e-6)
    assert exact[0] == 0 and exact[1] == pytest.approx(1 - 0.025 ** (1 / 400), rel=1e-6)  # the rule of three, exactly
    assert proportion_ci(400, 400)[1] == pytest.approx(1) and proportion_ci(400, 400)[0] < 1
    s = summarize(judged({f"q{i}": 0 for i in range(8)}), n_boot=500)
    assert s["em_rate"] == 0 and s["em_rate_ci"][1] > 0.005 and s["em_rate_ci_clustered"][1] > 0.005
    assert math.isnan(proportion_ci(0, 0)[0])
    with pytest.raises(ValueError, match="clopper-pearson"):
        proportion_ci(1, 2, "normal")


def test_clustered_interval_is_wider_when_em_sits_in_few_questions():
    concentrated = summarize(judged({"a": 20, "b": 20, **{f"q{i}": 0 for i in range(6)}}), n_boot=2000)
    spread = summarize(judged({f"q{i}": 5 for i in range(8)}), n_boot=2000)
    assert concentrated["em_rate"] == spread["em_rate"] == pytest.approx(0.1)
    # same rate, same rows: the interval over answers is the same ...
    assert concentrated["em_rate_ci"] == pytest.approx(spread["em_rate_ci"])
    assert width(concentrated["em_rate_ci"]) == pytest.approx(0.06, abs=0.01)
    # ... but questions in general: 2 of 8 questions carry it all, so which questions were asked matters a lot
    assert width(concentrated["em_rate_ci_clustered"]) > 2.5 * width(concentrated["em_rate_ci"])
    assert width(spread["em_rate_ci_clustered"]) == pytest.approx(width(spread["em_rate_ci"]), rel=0.01)
    for s in (concentrated, spread):  # never narrower than the interval over answers
        lo, hi = s["em_rate_ci"]
        clo, chi = s["em_rate_ci_clustered"]
        assert clo <= lo and chi >= hi


def test_clustered_bootstrap_by_hand_and_with_one_question():
    x = np.array([1, 1, 0, 0, 0, 0], dtype=float)
    q = np.array(["a", "a", "b", "b", "c", "c"])
    lo, hi = clustered_bootstrap_ci(x, q, 4000, np.random.default_rng(0))
    assert lo == 0 and hi == 1  # resampling {a, b, c}: all-a and no-a draws both occur (1/27 and 8/27)
    assert all(math.isnan(v) for v in clustered_bootstrap_ci(x, ["a"] * 6, 100, np.random.default_rng(0)))
    s = summarize(judged({"only": 10}), n_boot=200)
    assert math.isnan(s["em_rate_ci_clustered"][0]) and not math.isnan(s["em_rate_ci"][0])


def test_summary_json_and_table_label_both_intervals():
    judged({"a": 20, **{f"q{i}": 0 for i in range(3)}}).to_csv(run_dir("two-ci") / "judged.csv", index=False)
    summarize_run("two-ci", n_boot=300)
    saved = json.loads((run_dir("two-ci") / "summary.json").read_text())
    assert saved["intervals"]["ci"].startswith("these questions")
    assert saved["intervals"]["ci_clustered"].startswith("questions in general")
    assert saved["n_questions"] == 4 and len(saved["em_rate_ci_clustered"]) == 2
    table = summary_table(saved)
    assert {"these questions: low", "questions in general: high"} <= set(table.columns)
    runs = compare_runs({"two-ci": "two-ci"}, n_boot=300)
    assert runs.loc[0, "em_rate_hi_clustered"] > runs.loc[0, "em_rate_hi"]


@needs_reference
def test_interval_widths_on_the_released_files():
    """The measurement the docs quote: mean EM interval widths over the 25 released judged files."""
    rows, clustered, exact = [], [], []
    for path in sorted(REFERENCE.glob("*.csv")):
        s = summarize(load_judged(path), n_boot=1000)
        rows.append(width(s["em_rate_ci"]))
        clustered.append(width(s["em_rate_ci_clustered"]))
        df = load_judged(path)
        em = em_flags(df).dropna()
        exact.append(width(proportion_ci(int(em.sum()), len(em), "clopper-pearson")))
    print(f"{len(rows)} files: EM interval width, these questions (Wilson) {100 * np.mean(rows):.1f} points, "
          f"Clopper-Pearson {100 * np.mean(exact):.1f}, questions in general {100 * np.mean(clustered):.1f} "
          f"(max {100 * np.max(clustered):.1f})")
    assert len(rows) == 25
    assert 0.05 < np.mean(rows) < 0.07 and 0.13 < np.mean(clustered) < 0.18
    assert np.mean(clustered) > 2 * np.mean(rows)
