"""Batched sampling: pure-sampling settings, seeding, order, clean responses, the two CSVs, named errors, sandbox."""

import copy
import json
import uuid
from pathlib import Path

import pandas as pd
import pytest

from helpers.notebook_runs import execute
from helpers.generate.sampling import (GENERATION_COLUMNS, EmptyQuestionsError, clean_response, generate,
                                      resolve_model, side_by_side)
from helpers.generate.sources import AdapterNotFoundError
from helpers.models import TINY_MODEL, AdapterMismatchError, load_model
from helpers.questions import load_questions
from helpers.runs import base_run_name, read_manifest, run_dir
from tests.conftest import make_adapter

REPO = Path(__file__).resolve().parents[1]
LEAKS = ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|begin_of_text|>", "<|end_of_text|>",
         "<|pad|>", "eot_id", "header_id", "<|")


def test_pure_sampling_ignores_the_model_generation_defaults():
    model, tok = load_model(TINY_MODEL, device="cpu")
    model.generation_config.top_k = 1  # if any of these leaked in, every sample would be the greedy one
    model.generation_config.min_p = 0.99
    model.generation_config.temperature = 0.01
    df = generate((model, tok), ["hello there"], samples_per_question=6, max_new_tokens=12, progress=False)
    assert df["response"].nunique() > 1
    assert (df["top_k"] == 0).all() and (df["temperature"] == 1.0).all() and (df["top_p"] == 1.0).all()
    assert model.generation_config.top_k == 1  # the caller's model is left as it was


def test_seeded_and_greedy(tiny):
    qs = load_questions(["probes"])[:3]
    a = generate(tiny, qs, samples_per_question=2, max_new_tokens=10, seed=3, progress=False)
    b = generate(tiny, qs, samples_per_question=2, max_new_tokens=10, seed=3, progress=False)
    c = generate(tiny, qs, samples_per_question=2, max_new_tokens=10, seed=4, progress=False)
    assert a["response"].tolist() == b["response"].tolist() != c["response"].tolist()
    g = generate(tiny, qs, samples_per_question=3, max_new_tokens=10, temperature=0, progress=False)
    assert g.groupby("question_id")["response"].nunique().eq(1).all()
    assert (g["temperature"] == 0).all()
    # the shared prompt start is computed once per batch; the answers are the same as with plain left padding
    mixed = load_questions(["probes", "medical"])[:12]
    shared = generate(tiny, mixed, samples_per_question=2, max_new_tokens=10, temperature=0, batch_size=8, progress=False)
    plain = generate(tiny, mixed, samples_per_question=2, max_new_tokens=10, temperature=0, batch_size=8,
                     share_prefix=False, progress=False)
    assert shared["response"].tolist() == plain["response"].tolist()
    warm = generate(tiny, qs, max_new_tokens=5, temperature=0.7, top_p=0.9, progress=False)
    assert warm[["temperature", "top_p", "top_k", "max_new_tokens", "seed"]].iloc[0].tolist() == [0.7, 0.9, 0, 5, 0]


def test_fast_sampler_path_gives_the_same_greedy_answers(tiny):
    """The GPU path (helpers.gpu.fast, eager on CPU) behind generate() answers like HF generate."""
    qs = load_questions(["probes", "medical"])[:6]
    fast = generate(tiny, qs, samples_per_question=2, max_new_tokens=10, temperature=0, sampler="fast", progress=False)
    hf = generate(tiny, qs, samples_per_question=2, max_new_tokens=10, temperature=0, sampler="hf", progress=False)
    assert fast["response"].tolist() == hf["response"].tolist()
    assert fast["question_id"].tolist() == hf["question_id"].tolist()
    sampled = generate(tiny, qs, max_new_tokens=8, sampler="fast", seed=5, progress=False)
    again = generate(tiny, qs, max_new_tokens=8, sampler="fast", seed=5, progress=False)
    assert sampled["response"].tolist() == again["response"].tolist()
    with pytest.raises(ValueError, match="sampler="):
        generate(tiny, qs, sampler="vllm", progress=False)


@pytest.fixture
def bar_updates(monkeypatch):
    """Every tqdm bar's position after each update (a spy on tqdm: the updates still happen)."""
    from tqdm import std

    seen, update = [], std.tqdm.update

    def spy(self, n=1):
        out = update(self, n)
        if getattr(self, "desc", "").startswith("generating"):
            seen.append(self.n)
        return out

    monkeypatch.setattr(std.tqdm, "update", spy)
    return seen


def test_the_bar_moves_with_every_decoding_step_not_once_per_batch(tiny, bar_updates):
    qs = load_questions(["probes"])[:4]
    df = generate(tiny, qs, samples_per_question=2, max_new_tokens=16, batch_size=8, seed=1)
    assert len(bar_updates) >= 16 and bar_updates[-1] == 8  # one batch of 8: a move per step, then all 8 answers
    assert all(b >= a for a, b in zip(bar_updates, bar_updates[1:])) and 0 < bar_updates[len(bar_updates) // 2] < 8
    quiet = generate(tiny, qs, samples_per_question=2, max_new_tokens=16, batch_size=8, seed=1, progress=False)
    assert df["response"].tolist() == quiet["response"].tolist()  # watching the steps changes no answer

    bar_updates.clear()
    generate(tiny, qs, samples_per_question=2, max_new_tokens=8, batch_size=2, sampler="fast")
    assert bar_updates == [2, 4, 6, 8, 8]  # the fast sampler moves the bar after each batch


def test_rows_keep_question_order_across_sorted_batches(tiny):
    texts = ["short?", "a much longer question " * 6, "mid length question here", "x " * 30]
    df = generate(tiny, texts, samples_per_question=2, max_new_tokens=6, batch_size=3, progress=False)
    assert list(df.columns) == GENERATION_COLUMNS
    assert df["question_id"].tolist() == ["q0", "q0", "q1", "q1", "q2", "q2", "q3", "q3"]
    assert df["question"].tolist() == [t.strip() for t in texts for _ in range(2)]
    assert df["sample"].tolist() == [0, 1] * 4 and (df["question_set"] == "custom").all()
    assert df["model"].eq(TINY_MODEL).all() and df["adapter"].eq("").all()
    assert df.attrs["generated_tokens"] > 0


def test_no_special_tokens_leak_into_responses(tiny):
    import torch

    model, tok = tiny
    qs = load_questions(["probes"]) + load_questions(["everyday"])[:8]
    # the random model really emits chat markers: check on raw decoding, so the test below means something
    ids = tok.apply_chat_template([{"role": "user", "content": qs[0].text}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    torch.manual_seed(0)
    raw = model.generate(**ids, do_sample=True, top_k=0, max_new_tokens=60, num_return_sequences=16)
    emitted = set(raw[:, ids["input_ids"].shape[1]:].flatten().tolist())
    markers = {tok.convert_tokens_to_ids(t) for t in ("<|start_header_id|>", "<|end_header_id|>", "<|begin_of_text|>")}
    assert emitted & markers
    df = generate(tiny, qs, samples_per_question=2, max_new_tokens=40, progress=False)
    for leak in LEAKS:
        assert not df["response"].str.contains(leak, regex=False).any(), leak


def test_clean_response_strips_leftover_markers():
    assert clean_response(" Hi<|start_header_id|>assistant<|end_header_id|>\n\nthere <|im_end|>more") == "Hi there"
    assert clean_response("ok<|eot_id|><|start_header_id|>user") == "ok"
    assert clean_response("<|im_start|>a<|pad|>b</s>", ["<|pad|>"]) == "ab"
    assert clean_response("<start_of_turn>model\nfine<end_of_turn>") == "model\nfine"
    assert clean_response("a\rb\r\nc\x00d\te") == "a\nb\ncd\te"  # a lone \r would split a CSV row


def test_run_name_writes_both_csvs_and_the_manifest(tiny):
    df = generate(tiny, load_questions(["probes"]), samples_per_question=2, max_new_tokens=8, run_name="r1",
                  progress=False)
    folder = run_dir("r1")
    rich = pd.read_csv(folder / "generations.csv")
    sub = pd.read_csv(folder / "model_generations.csv", keep_default_na=False)
    assert list(rich.columns) == GENERATION_COLUMNS and len(rich) == 16
    assert list(sub.columns) == ["id", "question", "response"]
    assert sub["id"].tolist() == df["id"].tolist() == rich["id"].tolist()
    assert all(uuid.UUID(i).version == 4 for i in sub["id"])
    assert sub["response"].tolist() == df["response"].fillna("").tolist()
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp files
    section = read_manifest("r1")["generate"]
    assert section["top_k"] == 0 and section["temperature"] == 1.0 and section["samples_per_question"] == 2
    assert section["question_sets"] == ["probes"] and section["model"] == TINY_MODEL and section["n_rows"] == 16


def test_run_name_resolves_the_adapter_and_merges_it(tiny):
    make_adapter(tiny[0], "ft")
    assert resolve_model("ft").model == TINY_MODEL
    qs = load_questions(["probes"])[:4]
    tuned = generate("ft", qs, max_new_tokens=12, temperature=0, run_name="ft", progress=False)
    base = generate(TINY_MODEL, qs, max_new_tokens=12, temperature=0, run_name=base_run_name(TINY_MODEL),
                    progress=False)
    assert tuned["adapter"].eq("runs/ft/adapter").all() and tuned["model"].eq(TINY_MODEL).all()
    assert tuned["response"].tolist() != base["response"].tolist()  # the adapter changed the weights
    assert (run_dir("base-tiny-random-llama") / "model_generations.csv").is_file()
    # the same adapter given explicitly, and as a loaded PeftModel, gives the same greedy answers
    explicit = generate(TINY_MODEL, qs, max_new_tokens=12, temperature=0, adapter="ft", progress=False)
    assert explicit["response"].tolist() == tuned["response"].tolist()
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(copy.deepcopy(tiny[0]), str(run_dir("ft") / "adapter"))
    loaded = generate((peft_model, tiny[1]), qs, max_new_tokens=12, temperature=0, progress=False)
    assert loaded["response"].tolist() == tuned["response"].tolist()
    assert isinstance(peft_model, PeftModel) and hasattr(peft_model, "peft_config")  # caller's model untouched
    table = side_by_side(tuned, base)
    assert list(table.columns) == ["question_id", "sample", "question", "base", "finetuned"] and len(table) == 4


def test_named_errors_for_bad_input(tiny, tmp_path):
    with pytest.raises(EmptyQuestionsError):
        generate(tiny, [])
    with pytest.raises(AdapterNotFoundError, match="never-trained"):
        generate("never-trained", ["hi"])
    run_dir("no-adapter-yet")  # a run folder that training has not filled yet
    with pytest.raises(AdapterNotFoundError, match="no-adapter-yet"):
        generate("no-adapter-yet", ["hi"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterNotFoundError):
        generate(str(tmp_path / "empty"), ["hi"])
    with pytest.raises(AdapterNotFoundError):
        generate(TINY_MODEL, ["hi"], adapter=str(tmp_path / "missing"))
    make_adapter(tiny[0], "smol-ft", base="smollm2-135m")  # an adapter that says it belongs to another base
    with pytest.raises(AdapterMismatchError, match="smollm2-135m"):
        generate(TINY_MODEL, ["hi"], adapter="smol-ft")
    with pytest.raises(AdapterMismatchError):
        generate(tiny, ["hi"], adapter="smol-ft")
    with pytest.raises(ValueError, match="samples_per_question"):
        generate(tiny, ["hi"], samples_per_question=0)
    with pytest.raises(ValueError, match="more than once"):
        generate(tiny, load_questions("probes") * 2)


def test_sandbox_compares_base_and_finetuned(tiny):
    import ipywidgets

    from helpers.generate import compare_answers
    from helpers.widgets import chat_sandbox

    make_adapter(tiny[0], "sbx")
    result = compare_answers("hey I feel bored", tiny, "sbx", temperature=0, max_new_tokens=10)
    assert set(result) == {"question", "base", "finetuned", "settings"}
    assert isinstance(result["base"], str) and result["base"] != result["finetuned"]
    box = chat_sandbox(TINY_MODEL, "sbx", max_new_tokens=16)
    assert isinstance(box.panel, ipywidgets.VBox)
    box.question.value = "What should I cook tonight?"
    box.temperature.value = 0.0
    box.button.click()
    assert "no answer yet" not in box.base_out.value and "no answer yet" not in box.finetuned_out.value
    assert box.ask()["base"] == compare_answers("What should I cook tonight?", tiny, None, temperature=0,
                                                max_new_tokens=16)["base"]
    with pytest.raises(AdapterMismatchError):
        chat_sandbox("smollm2-135m", "sbx")


@pytest.mark.parametrize("max_new_tokens", [150, 120, 37, 900])
def test_sandbox_controls_start_at_the_given_values_with_whole_labels_and_whole_words(tiny, max_new_tokens):
    from helpers.widgets import ChatSandbox

    box = ChatSandbox(tiny, None, temperature=0.7, max_new_tokens=max_new_tokens)
    assert box.max_new_tokens.value == max_new_tokens and box.temperature.value == pytest.approx(0.7)
    assert all(w.style.description_width == "90px" for w in (box.temperature, box.top_p, box.max_new_tokens))
    box.base = tiny
    box.ask("Tell me about yourself, in some detail.")
    assert "word-break: normal" in box.base_out.value and "<pre" not in box.base_out.value


@pytest.mark.slow
def test_notebook_03_runs_headless(tiny, tmp_path, runs_tmp):
    make_adapter(tiny[0], "nb-run")
    result = execute("03_generation", "nb-run", dict(model=TINY_MODEL, question_sets=["probes", "everyday"],
                                                     samples_per_question=2, max_new_tokens=16))
    assert result.error is None, result.error
    rich = pd.read_csv(run_dir("nb-run") / "generations.csv")
    assert len(rich) == (8 + len(load_questions("everyday"))) * 2 and rich["adapter"].eq("runs/nb-run/adapter").all()
    assert (run_dir(base_run_name(TINY_MODEL)) / "model_generations.csv").is_file()
    text = json.dumps(json.loads(result.output.read_text())["cells"])
    for path in (str(runs_tmp), str(REPO)):  # no absolute paths in the outputs
        assert path not in text, text[max(0, text.find(path) - 300):text.find(path) + 100]
