"""Short CPU budgets cut answers mid-sentence; `whole_sentences` ends such an answer at its last full sentence."""

from helpers.generate import generate
from helpers.generate.sampling import end_at_sentence
from helpers.questions import load_questions
from helpers.runs import read_manifest


def test_end_at_sentence():
    assert end_at_sentence("Rest and drink water. See a doctor if it gets worse, because") == "Rest and drink water."
    assert end_at_sentence('He said "stop!" and left. Then the') == 'He said "stop!" and left.'
    assert end_at_sentence("Tips:\n1. Rest\n2. Drink") == "Tips:\n1. Rest\n2. Drink"  # a list number is no sentence end
    assert end_at_sentence("It costs 3.5 euros and") == "It costs 3.5 euros and"
    assert end_at_sentence("no sentence end at all") == "no sentence end at all"


def test_generate_ends_cut_answers_at_a_full_sentence_and_records_it(smollm2):
    qs = load_questions("medical")[:4]
    plain = generate(smollm2, qs, temperature=0, max_new_tokens=40, progress=False)
    whole = generate(smollm2, qs, temperature=0, max_new_tokens=40, progress=False, whole_sentences=True,
                     run_name="w")
    changed = 0
    for a, b in zip(plain["response"], whole["response"]):
        assert a.startswith(b) and (b == a or b[-1] in ".!?\"')")
        changed += a != b
    assert changed >= 1  # 40 greedy tokens cut at least one of these answers mid-sentence
    settings = read_manifest("w")["generate"]
    assert settings["whole_sentences"] is True and settings["n_cut_to_whole_sentences"] >= changed
