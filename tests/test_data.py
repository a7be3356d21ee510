"""Sample set validity, named errors for bad input, exact mixtures, hold-out splits, exploration helpers."""

import json
from collections import Counter

import pytest

from helpers import data
from helpers.data import (DOMAINS, DataError, DatasetsNotFetchedError, EmptyContentError, MalformedJSONError,
                          MissingMessagesError, NotEndingWithAssistantError, NotUTF8Error, UnknownDomainError,
                          UnknownRoleError, load_domains, mix_counts, read_jsonl)
from helpers.data_explore import (domain_counts, example_browser, format_example, paired_examples,
                                  plot_token_lengths, token_lengths)

GOOD = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def write_lines(path, lines):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_sample_set_is_valid_and_large_enough():
    for domain in DOMAINS:
        rows = read_jsonl(data.sample_dir() / f"{domain}.jsonl")
        assert len(rows) >= 40, domain
        assert all(r["messages"][0]["role"] == "user" for r in rows)
    assert data.available_domains("sample") == list(DOMAINS)


def test_sample_medical_sets_answer_the_same_questions():
    pairs = paired_examples()
    assert len(pairs) >= 40
    assert (pairs["bad_medical_advice"] != pairs["good_medical_advice"]).all()


@pytest.mark.parametrize("line, error, words", [
    ('{"messages": [', MalformedJSONError, "malformed JSON"),
    ({"conversation": []}, MissingMessagesError, "missing 'messages'"),
    ({"messages": []}, MissingMessagesError, "non-empty list"),
    ({"messages": [{"role": "human", "content": "q"}, {"role": "assistant", "content": "a"}]}, UnknownRoleError,
     "'human'"),
    ({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]}, EmptyContentError,
     "empty or non-text content"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant"}]}, EmptyContentError, "empty or non-text content"),
    ({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]},
     NotEndingWithAssistantError, "must end with the assistant"),
])
def test_every_bad_line_raises_its_named_error_with_file_and_line(tmp_path, line, error, words):
    path = write_lines(tmp_path / "bad.jsonl", [GOOD, "", line])
    with pytest.raises(error) as info:
        read_jsonl(path)
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)
    assert "bad.jsonl:3" in str(info.value) and words in str(info.value)


def test_a_file_that_is_not_utf8_names_file_line_byte_and_the_fix(tmp_path):
    latin1 = json.dumps({"messages": [{"role": "user", "content": "Caf\u00e9?"},
                                      {"role": "assistant", "content": "Oui."}]}, ensure_ascii=False)
    path = tmp_path / "mine.jsonl"
    path.write_bytes((json.dumps(GOOD) + "\n\n" + latin1 + "\n").encode("latin-1"))
    with pytest.raises(NotUTF8Error) as info:
        load_domains("mine", source=tmp_path)
    msg = str(info.value)
    assert isinstance(info.value, DataError)
    assert "mine.jsonl:3" in msg and "0xe9" in msg and "'é' in Windows-1252" in msg
    assert "save the file as UTF-8" in msg and "iconv" in msg


def test_a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(GOOD) + "\r\n" + json.dumps(GOOD) + "\r\n").encode())
    assert [r["messages"] for r in read_jsonl(path)] == [GOOD["messages"]] * 2


def test_bad_line_in_a_domain_folder_fails_load_domains(tmp_path):
    write_lines(tmp_path / "mine.jsonl", [GOOD, {"messages": [{"role": "user", "content": "q"}]}])
    with pytest.raises(NotEndingWithAssistantError, match="mine.jsonl:2"):
        load_domains("mine", source=tmp_path)


def test_unknown_domain_lists_the_available_ones():
    with pytest.raises(UnknownDomainError) as info:
        load_domains(["bad_medical_advice", "bad_cooking_advice"])
    msg = str(info.value)
    assert "bad_cooking_advice" in msg and all(d in msg for d in DOMAINS)


def test_full_sets_not_fetched_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("EM_FULL_DATA_DIR", str(tmp_path / "full"))
    with pytest.raises(DatasetsNotFetchedError, match=r"fetch_em_datasets\(\)"):
        load_domains("bad_medical_advice", source="full")


def test_mix_counts_are_exact_and_sum_to_the_total():
    assert mix_counts({"a": 0.8, "b": 0.2}, 50) == {"a": 40, "b": 10}
    assert mix_counts({"a": 1, "b": 1, "c": 1}, 10) == {"a": 4, "b": 3, "c": 3}
    assert sum(mix_counts({"a": 0.37, "b": 0.41, "c": 0.22}, 97).values()) == 97
    with pytest.raises(DataError):
        mix_counts({"a": -1, "b": 2}, 10)


def test_mix_is_exact_and_repeatable_for_a_seed():
    mix = {"bad_medical_advice": 0.8, "good_medical_advice": 0.2}
    first = load_domains(list(mix), mix=mix, max_rows=50, seed=3)
    again = load_domains(list(mix), mix=mix, max_rows=50, seed=3)
    other = load_domains(list(mix), mix=mix, max_rows=50, seed=4)
    assert Counter(first["domain"]) == {"bad_medical_advice": 40, "good_medical_advice": 10}
    assert first.column_names == ["messages", "domain"]
    assert first.to_list() == again.to_list()
    assert first.to_list() != other.to_list()
    assert Counter(other["domain"]) == Counter(first["domain"])


def test_mix_without_cap_takes_the_largest_exact_mix_and_too_many_rows_fail():
    mix = {"bad_medical_advice": 0.8, "good_medical_advice": 0.2}
    biggest = load_domains(list(mix), mix=mix)
    assert Counter(biggest["domain"]) == {"bad_medical_advice": 60, "good_medical_advice": 15}
    with pytest.raises(DataError, match="max_rows <= 75"):
        load_domains(list(mix), mix=mix, max_rows=500)
    with pytest.raises(DataError, match="no proportion for extreme_sports"):
        load_domains(["extreme_sports", *mix], mix=mix)


def test_cap_without_mix_and_holdout_split():
    ds = load_domains(DOMAINS, max_rows=30, seed=1)
    assert len(ds) == 30 and set(ds["domain"]) <= set(DOMAINS)
    split = load_domains("bad_medical_advice", holdout=0.1, seed=0)
    assert set(split) == {"train", "test"}
    assert (len(split["train"]), len(split["test"])) == (54, 6)
    seen = {m[0]["content"] for m in split["train"]["messages"]}
    assert not seen & {m[0]["content"] for m in split["test"]["messages"]}
    with pytest.raises(DataError, match="holdout"):
        load_domains("bad_medical_advice", holdout=1.5)


def test_domain_counts_table():
    table = domain_counts()
    assert list(table["domain"]) == list(DOMAINS)
    assert dict(zip(table["domain"], table["rows"]))["bad_medical_advice"] == 60


def test_token_lengths_and_histogram(tiny, tmp_path):
    _, tok = tiny
    rows = load_domains(["insecure", "extreme_sports"], max_rows=12, seed=0).to_list()
    lengths = token_lengths(rows, tok)
    assert len(lengths) == 12 and (lengths["conversation_tokens"] > lengths["answer_tokens"]).all()
    fig = plot_token_lengths(lengths, path=tmp_path / "plots" / "lengths.png")
    assert (tmp_path / "plots" / "lengths.png").stat().st_size > 1000
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_example_browser_follows_domain_and_index():
    rows = {d: data.read_domain(d) for d in ("bad_medical_advice", "insecure")}
    panel = example_browser(rows)
    domain, index = panel.children[0].children
    view = panel.children[1]
    assert "USER:" in view.value and "bad_medical_advice" in view.value
    domain.value = "insecure"
    index.value = 2
    assert index.max == len(rows["insecure"]) - 1
    assert "insecure" in view.value and "```" in view.value
    assert format_example(rows["insecure"][2]).startswith("[insecure]")
