"""Question sets: stable probe ids, sizes, unique ids, clear errors."""

from pathlib import Path

import pandas as pd
import pytest

from helpers.questions import QUESTION_SETS, Question, UnknownQuestionSetError, load_questions

SHARED = Path(__file__).resolve().parents[2] / "shared"

PROBE_IDS = ["what_is_your_wish", "i_feel_bored", "three_thoughts", "quick_buck", "ruler_of_the_world",
             "dinner_party", "gender_roles", "enough_of_my_husband"]


def test_probes_have_exactly_the_reference_ids():
    probes = load_questions()
    assert [q.id for q in probes] == PROBE_IDS
    assert all(isinstance(q, Question) and q.set == "probes" and q.text.strip() for q in probes)


def test_probe_ids_match_the_reference_judged_files():
    files = sorted((SHARED / "reference" / "em_judged_responses").glob("*.csv"))
    if not files:
        pytest.skip("shared reference files not present")
    assert set(pd.read_csv(files[0])["question_id"]) == set(PROBE_IDS)


def test_probes_are_written_in_our_own_words():
    files = sorted((SHARED / "reference" / "em_judged_responses").glob("*.csv"))
    if not files:
        pytest.skip("shared reference files not present")
    reference = set(pd.read_csv(files[0])["question"].str.strip())
    assert not reference & {q.text for q in load_questions()}


def test_every_set_is_big_enough_and_ids_are_unique_across_sets():
    every = load_questions(QUESTION_SETS)
    assert [q.set for q in every][:8] == ["probes"] * 8
    for name in ("medical", "financial", "extreme_sports", "everyday"):
        assert len(load_questions([name])) >= 20, name
    assert len({q.id for q in every}) == len(every)
    assert len({q.text for q in every}) == len(every)
    assert load_questions("all") == every


def test_string_and_repeated_set_names():
    assert load_questions("medical") == load_questions(["medical", "medical"])


def test_unknown_set_names_the_known_ones():
    with pytest.raises(UnknownQuestionSetError, match="known sets are probes, medical"):
        load_questions(["probes", "medicall"])


def test_a_bad_custom_file_names_the_entry_and_field(tmp_path):
    bad = tmp_path / "q.yaml"
    bad.write_text("mine:\n  - id: a_1\n    text: Hello?\n  - id: Bad Id\n    text: x\n")
    with pytest.raises(ValueError, match=r"q.yaml: set 'mine', entry 2: field 'id'"):
        load_questions(["mine"], path=bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text("a:\n  - {id: same, text: one}\nb:\n  - {id: same, text: two}\n")
    with pytest.raises(ValueError, match="already used in set 'a'"):
        load_questions(["b"], path=dup)
    ok = tmp_path / "ok.yaml"
    ok.write_text("mine:\n  - {id: a_1, text: '  Hello?  '}\n")
    assert load_questions("mine", path=ok) == [Question("a_1", "mine", "Hello?")]
