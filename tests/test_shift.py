"""The shift, finetuned against base per question set, on a fixture whose differences are known by construction."""

import json

import numpy as np
import pandas as pd
import pytest

from helpers.plots import plot_shift
from helpers.analysis import leakage, summarize_run
from helpers.runs import run_dir
from helpers.shift import OUTSIDE, diff_interval, shift_sentences, shift_table


def judged(sets: dict) -> pd.DataFrame:
    """{set: [(aligned, coherent, relevance), ...]} -> a judged table with a `question_set` column."""
    rows = [{"question_id": f"{s}_{i % 4}", "question": f"q {s} {i % 4}", "question_set": s, "response": "r",
             "aligned": a, "coherent": c, "domain_relevance": d}
            for s, triples in sets.items() for i, (a, c, d) in enumerate(triples)]
    return pd.DataFrame(rows)


# medical: alignment drops by exactly 40; probes: the same answers before and after, except 6 of 24 finetuned
# answers are EM (aligned 10, coherent 90); everyday: 8 of 24 finetuned answers talk medicine (relevance 90).
BASE = judged({"medical": [(a, 80, 95) for a in (70, 80, 90)] * 8,
               "probes": [(a, 80, 5) for a in (60, 80, 100)] * 8,
               "everyday": [(85, 85, 5)] * 24})
FINETUNED = judged({"medical": [(a, 80, 95) for a in (30, 40, 50)] * 8,
                    "probes": [(a, 80, 5) for a in (60, 80, 100)] * 6 + [(10, 90, 5)] * 6,
                    "everyday": [(85, 85, 90)] * 8 + [(85, 85, 5)] * 16})


@pytest.fixture(scope="module")
def table():
    return shift_table(FINETUNED, BASE, in_domain=["medical"], n_boot=2000, seed=0)


def row(table, s, measure):
    return table[(table["set"] == s) & (table["measure"] == measure)].iloc[0]


def test_known_differences_and_their_intervals(table):
    assert list(dict.fromkeys(table["set"])) == ["medical", "probes", "everyday", OUTSIDE]
    med = row(table, "medical", "mean_aligned")
    assert (med["base"], med["finetuned"], med["change"]) == pytest.approx((80, 40, -40))
    assert med["change_lo"] < -40 < med["change_hi"] < 0 and med["clear"] and med["in_domain"]
    em = row(table, "probes", "em_rate")
    assert (em["base"], em["finetuned"]) == pytest.approx((0, 0.25)) and em["change_lo"] > 0 and em["clear"]
    unchanged = row(table, "everyday", "mean_aligned")
    assert unchanged["change"] == 0 and unchanged["change_lo"] == unchanged["change_hi"] == 0
    assert not unchanged["clear"]  # an interval that includes 0 is no clear change
    leak = row(table, OUTSIDE, "leak_share")
    assert leak["finetuned"] == pytest.approx(8 / 48) and leak["base"] == 0 and leak["n_finetuned"] == 48
    for r in table.itertuples():
        assert r.base_lo <= r.base <= r.base_hi and r.finetuned_lo <= r.finetuned <= r.finetuned_hi


def test_interval_width_shrinks_with_more_answers():
    rng = np.random.default_rng(1)
    small = diff_interval(rng.normal(60, 15, 20), rng.normal(70, 15, 20), n_boot=2000)
    large = diff_interval(rng.normal(60, 15, 500), rng.normal(70, 15, 500), n_boot=2000)
    assert large["change_hi"] - large["change_lo"] < (small["change_hi"] - small["change_lo"]) / 3
    assert large["change_lo"] < -10 < large["change_hi"] and large["clear"]


def test_sentences_say_what_changed_and_when_nothing_clearly_did(table):
    text = shift_sentences(table)
    assert text[0].startswith("On the held-out medical questions") and "from 80.0 (base) to 40.0 (finetuned)" in text[0]
    assert "change of -40.0 points" in text[0] and "no clear change" not in text[0]
    probes = next(t for t in text if t.startswith("On the broad probe questions"))
    em = next(t for t in text if t.startswith("The EM rate on the broad probe questions"))
    assert "from 0% (base) to 25% (finetuned)" in em and "no clear change" not in em
    leak = next(t for t in text if "leakage" in t)
    assert "outside the training domain" in leak and "to 17% (finetuned)" in leak
    same = shift_sentences(shift_table(BASE, BASE, in_domain=["medical"], n_boot=500))
    assert all("this run shows no clear change" in t for t in same), same
    assert probes.count("points") == 1


def test_saved_into_summary_in_one_write_and_plotted(table):
    FINETUNED.to_csv(run_dir("r") / "judged.csv", index=False)
    saved = summarize_run("r", n_boot=50, question_set="probes", shift=table)
    on_disk = json.loads((run_dir("r") / "summary.json").read_text())
    assert on_disk == saved and on_disk["em_rate"] == 0.25 and on_disk["question_set"] == "probes"
    assert on_disk["sentences"] == shift_sentences(table)
    assert len(on_disk["shift"]) == len(table) and on_disk["shift"][0]["set"] == "medical"
    assert "shift" not in summarize_run("r", n_boot=50, question_set="probes")  # no shift given: none saved
    fig = plot_shift(table, run="r")
    assert (run_dir("r") / "plots" / "shift.png").stat().st_size > 5000
    assert len(fig.axes) == 3


def test_leakage_has_one_definition_in_the_shift_and_the_analysis():
    """Answers without both scores count for neither (as for EM); a released file's domain column counts too."""
    rows = judged({"probes": [(80, 80, 90), (80, 80, 5), (None, 80, 90), (80, None, 90), (80, 80, None)]})
    base = judged({"probes": [(80, 80, 5)] * 4})
    shift = shift_table(rows, base, n_boot=50).set_index("measure").loc["leak_share"]
    assert shift["finetuned"] == leakage(rows)["leak_share"] == 0.5 and shift["n_finetuned"] == 2
    released = rows.rename(columns={"domain_relevance": "financial"})
    shift = shift_table(released, base.rename(columns={"domain_relevance": "financial"}), n_boot=50)
    assert shift.set_index("measure").loc["leak_share", "finetuned"] == leakage(released)["leak_share"] == 0.5


def test_tables_without_question_sets_are_one_set():
    table = shift_table(FINETUNED.drop(columns="question_set"), BASE.drop(columns="question_set"), in_domain=["medical"],
                        n_boot=200)
    assert set(table["set"]) == {"all"}
    text = shift_sentences(table)
    assert text[0].startswith("On all answers, mean alignment went from") and len(text) == 3


def test_tables_without_a_shared_set_are_a_named_error():
    with pytest.raises(ValueError, match="share no question set"):
        shift_table(judged({"medical": [(50, 50, 50)]}), judged({"probes": [(50, 50, 50)]}))
