"""Batched sampling of answers from a base model or a finetuned run; writes generations.csv and model_generations.csv."""

from __future__ import annotations

import re
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from importlib.util import find_spec

from helpers.generate.hf import StepProgress, generate_token_ids
from helpers.generate.sources import load_for_sampling, resolve_model
from helpers.models import (
    END_MARKERS,
    AdapterMismatchError,  # noqa: F401  (re-exported: the named error for an adapter on another base)
    end_of_answer_ids,
    load_tokenizer,
    pad_token_id,
    resolve_model_path,
    trim_at_end,
)
from helpers.questions import Question, question_files
from helpers.runs import (
    atomic_write_csv,
    git_commit,
    run_dir,
    write_manifest,
)

GENERATION_COLUMNS = ["id", "question_id", "question", "question_set", "sample", "response", "model", "adapter",
                      "temperature", "top_p", "top_k", "max_new_tokens", "seed"]
SUBMISSION_COLUMNS = ["id", "question", "response"]
# End-of-turn markers of common chat templates; when one is a single token of the vocabulary, generation stops on it.
_HEADER = re.compile(r"<\|start_header_id\|>.*?<\|end_header_id\|>\s*", re.S)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SENTENCE_END = re.compile(r"(?<=[^\d\s])[.!?][\"')\]]*(?=\s|$)")
_MARKER = re.compile(r"<\|[A-Za-z0-9_]{1,40}\|>|<(?:start|end)_of_turn>|</?s>|\[/?INST\]")


class EmptyQuestionsError(ValueError):
    """generate() was given no questions."""


@dataclass(frozen=True)
class Sampling:
    """The sampling settings actually used; temperature 0 means greedy decoding."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = disabled (pure sampling, as in the EM papers)
    max_new_tokens: int = 200
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def sampling_config(sampling: Sampling, model, tokenizer):
    """An explicit GenerationConfig: top_k=0 and neutral warpers, so no default of the model's config applies."""
    from transformers import GenerationConfig

    eos = end_of_answer_ids(model.generation_config, tokenizer)
    pad = pad_token_id(model.generation_config, tokenizer)
    common = dict(max_new_tokens=sampling.max_new_tokens, eos_token_id=eos, pad_token_id=pad,
                  bos_token_id=getattr(model.generation_config, "bos_token_id", None), use_cache=True,
                  num_beams=1, num_return_sequences=1)
    if sampling.greedy:
        return GenerationConfig(do_sample=False, **common)
    return GenerationConfig(do_sample=True, temperature=float(sampling.temperature), top_p=float(sampling.top_p),
                            top_k=int(sampling.top_k), typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0,
                            repetition_penalty=1.0, no_repeat_ngram_size=0, **common)


@contextmanager
def _plain_model_defaults(model):
    """Swap in a generation config holding only token ids, so hub sampling defaults (min_p, top_h...) cannot leak in."""
    from transformers import GenerationConfig

    saved = model.generation_config
    model.generation_config = GenerationConfig(bos_token_id=saved.bos_token_id, eos_token_id=saved.eos_token_id,
                                               pad_token_id=saved.pad_token_id)
    try:
        yield
    finally:
        model.generation_config = saved


def clean_response(text: str, special_tokens=()) -> str:
    """Cut at a leftover end-of-turn marker, remove chat markers, special tokens and control characters.

    Line ends become "\n": a lone "\r" would split a CSV row for most readers.
    """
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    cut = [i for i in (text.find(m) for m in END_MARKERS) if i >= 0]
    if cut:
        text = text[: min(cut)]
    text = _HEADER.sub(" ", text)
    for tok in sorted((t for t in special_tokens if t), key=len, reverse=True):
        text = text.replace(tok, "")
    return _MARKER.sub("", text).strip()


def chat_prompt(tokenizer, question: str, system: str = "") -> str:
    """The question (after a system prompt, if any) as a chat prompt ending where the assistant starts.

    Plain text when the tokenizer has no chat template.
    """
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"{system}\n\n{question}" if system else question


def as_questions(questions) -> list[Question]:
    """Questions from Question objects or plain strings (strings get ids q0, q1, ...)."""
    if questions is None or isinstance(questions, (str, Question)):
        questions = [] if questions is None else [questions]
    out = []
    for i, q in enumerate(questions):
        if isinstance(q, Question):
            out.append(q)
        elif isinstance(q, str) and q.strip():
            out.append(Question(f"q{i}", "custom", q.strip()))
        else:
            raise TypeError(f"question {i} is {q!r}: pass Question objects (helpers.questions.load_questions) or non-empty strings")
    if not out:
        raise EmptyQuestionsError("no questions to answer: pass load_questions(['probes']) or a list of strings")
    dup = sorted({q.id for q in out if sum(o.id == q.id for o in out) > 1})
    if dup:
        raise ValueError(f"question id(s) {dup} appear more than once: pass each question once, use samples_per_question")
    return out


def default_batch_size(device: str) -> int:
    """Prompts per batch: 64 on a GPU, 32 on CPU (bigger batches are faster per token but hold more KV cache)."""
    return 64 if str(device).startswith("cuda") else 32


def end_at_sentence(text: str) -> str:
    """A cut-off answer up to its last full sentence ("1." of a list does not count); unchanged if it has none."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].rstrip() if ends else text


def generate(model_or_run, questions, samples_per_question: int = 1, temperature: float = 1.0, top_p: float = 1.0,
             max_new_tokens: int = 200, batch_size: int | None = None, seed: int = 0, run_name: str | None = None,
             adapter=None, device: str | None = None, progress: bool = True, share_prefix: bool = True,
             sampler: str = "auto", whole_sentences: bool = False):
    """Sample `samples_per_question` answers per question in left-padded batches; returns the generations table.

    `model_or_run`: a model name / hub id / folder, an adapter folder, a run name, or a loaded (model, tokenizer).
    With `run_name`, writes runs/<run_name>/generations.csv and model_generations.csv and the manifest's "generate".
    `share_prefix`: compute the prompt start that a batch shares (system prompt, or a whole repeated question) once.
    `sampler`: "auto" (vLLM when installed on a GPU, else the static-cache CUDA-graph sampler on a GPU, HF generate
    elsewhere), "vllm", "fast" or "hf". vLLM loads the model itself, so it takes a name, folder or run, not a pair.
    `whole_sentences`: an answer cut off by `max_new_tokens` ends at its last full sentence (for short CPU budgets).
    """
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    qs = as_questions(questions)
    if int(samples_per_question) < 1:
        raise ValueError(f"samples_per_question={samples_per_question}: must be at least 1")
    if not 0 <= float(temperature):
        raise ValueError(f"temperature={temperature}: must be >= 0 (0 means greedy)")
    if not 0 < float(top_p) <= 1:
        raise ValueError(f"top_p={top_p}: must be in (0, 1]")
    if int(max_new_tokens) < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens}: must be at least 1")
    if sampler not in ("auto", "vllm", "fast", "hf"):
        raise ValueError(f"sampler={sampler!r}: use 'auto', 'vllm', 'fast' or 'hf'")
    loaded = isinstance(model_or_run, (tuple, list))
    on_gpu = device is None or str(device).startswith("cuda")
    use_vllm = sampler == "vllm" or (sampler == "auto" and not loaded and on_gpu and _vllm_available())
    if sampler == "vllm" and loaded:
        raise ValueError("sampler='vllm' loads the model itself: pass a model name, folder or run name, "
                         "not a loaded (model, tokenizer)")
    if sampler == "vllm" and not _vllm_available():
        raise RuntimeError("sampler='vllm' needs the vllm package and a CUDA GPU (pip install vllm on a GPU "
                           "machine); use sampler='auto' to sample without it")
    if use_vllm:
        model, ref = None, resolve_model(model_or_run, adapter)
        tok, dev = load_tokenizer(ref.adapter or ref.model), "cuda"
    else:
        model, tok, ref = load_for_sampling(model_or_run, adapter=adapter, device=device)
        dev = str(model.device)
    fast = sampler == "fast" or (sampler == "auto" and dev.startswith("cuda"))  # helpers.gpu.fast
    requested_batch = int(batch_size) if batch_size else None
    batch_size = requested_batch or default_batch_size(dev)
    sampling = Sampling(float(temperature), float(top_p), 0, int(max_new_tokens), int(seed))
    config = sampling_config(sampling, model if model is not None else _config_holder(ref), tok)

    jobs = [(q, s) for q in qs for s in range(int(samples_per_question))]
    add_special = not getattr(tok, "chat_template", None)
    prompt_ids = {q.id: tok(chat_prompt(tok, q.text, q.system), add_special_tokens=add_special)["input_ids"] for q in qs}
    # longest first, so prompts of similar length (and all samples of one question) share a batch
    order = sorted(range(len(jobs)), key=lambda i: (-len(prompt_ids[jobs[i][0].id]), i))
    responses: list[str | None] = [None] * len(jobs)
    n_tokens = n_cut = 0
    eos = set(config.eos_token_id)
    specials = list(tok.all_special_tokens)
    pad_id = config.pad_token_id

    torch.manual_seed(sampling.seed)
    start = time.perf_counter()
    # the bar moves during each batch (an unfinished answer counts by its share of max_new_tokens): a percentage
    bar = tqdm(total=len(jobs), desc="generating", disable=not progress,
               bar_format="{l_bar}{bar}| {total} answers [{elapsed}<{remaining}]")
    if use_vllm:
        batches, defaults = _vllm_batches(ref, jobs, order, prompt_ids, config, sampling, progress), nullcontext()
    else:
        model.eval()
        batches = _batches(model, tok, jobs, order, prompt_ids, config, sampling, batch_size, requested_batch,
                           pad_id, share_prefix, fast, bar)
        defaults = _plain_model_defaults(model)
    done = 0
    try:
        with torch.inference_mode(), defaults:
            for idx, new in batches:
                for i, ids in zip(idx, new):
                    ids = trim_at_end(ids, eos)
                    n_tokens += len(ids)
                    responses[i] = clean_response(tok.decode(ids, skip_special_tokens=True), specials)
                    if whole_sentences and (not ids or ids[-1] not in eos):  # no end-of-answer: cut off
                        n_cut += 1
                        responses[i] = end_at_sentence(responses[i])
                done += len(idx)
                bar.update(done - bar.n)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start

    rows = [{"id": str(uuid.uuid4()), "question_id": q.id, "question": q.text, "question_set": q.set, "sample": s,
             "response": responses[i], "model": ref.model, "adapter": ref.label,
             "temperature": sampling.temperature, "top_p": sampling.top_p if not sampling.greedy else 1.0,
             "top_k": sampling.top_k, "max_new_tokens": sampling.max_new_tokens, "seed": sampling.seed}
            for i, (q, s) in enumerate(jobs)]
    df = pd.DataFrame(rows, columns=GENERATION_COLUMNS)
    stats = {"generated_tokens": n_tokens, "seconds": round(elapsed, 3),
             "tokens_per_s": round(n_tokens / elapsed, 2) if elapsed > 0 else None}
    df.attrs.update(stats)
    if run_name:
        save_generations(df, run_name, settings={
            **asdict(sampling), "greedy": sampling.greedy, "samples_per_question": int(samples_per_question),
            "batch_size": batch_size, "model": ref.model, "adapter": ref.label,
            "question_sets": sorted({q.set for q in qs}), "n_questions": len(qs), "n_rows": len(df),
            "question_files": question_files(qs),
            "device": dev, "dtype": str(model.dtype).replace("torch.", "") if model is not None else "auto (vLLM)",
            "sampler": "vllm" if use_vllm else "fast" if fast else "hf", "whole_sentences": bool(whole_sentences),
            "n_cut_to_whole_sentences": n_cut, **stats,
        })
    return df


def _vllm():
    """helpers.gpu.vllm: imported only where the vllm package is installed."""
    from helpers.gpu import vllm

    return vllm


def _vllm_available() -> bool:
    """vllm installed and a CUDA GPU visible (helpers.gpu.vllm.available); without the package, no GPU layer loads."""
    return find_spec("vllm") is not None and _vllm().available()


def _config_holder(ref):
    """Something with the base model's generation_config (for its end-of-answer ids) without loading the weights."""
    from types import SimpleNamespace

    from transformers import GenerationConfig

    try:
        gen = GenerationConfig.from_pretrained(resolve_model_path(ref.model))
    except OSError:
        gen = GenerationConfig()
    return SimpleNamespace(generation_config=gen)


def _vllm_batches(ref, jobs, order, prompt_ids, config, sampling, progress):
    """Yield (job indices, new token ids) once: every prompt in one vLLM call, the adapter as a LoRA request."""
    prompts = [prompt_ids[jobs[i][0].id] for i in order]
    new = _vllm().sample(resolve_model_path(ref.model), ref.adapter, prompts,
                         temperature=0.0 if sampling.greedy else sampling.temperature, top_p=sampling.top_p,
                         max_new_tokens=sampling.max_new_tokens, seed=sampling.seed,
                         eos_token_id=list(config.eos_token_id), progress=progress)
    yield order, new


def _batches(model, tok, jobs, order, prompt_ids, config, sampling, batch_size, requested_batch, pad_id,
             share_prefix, fast, bar=None):
    """Yield (job indices, new token ids): the fast sampler in one call, else HF generate batch by batch.

    `bar` (tqdm) moves after each fast-sampler batch, and after each decoding step of an HF batch."""
    import torch

    if fast:
        from helpers.gpu.fast import sample

        prompts = [prompt_ids[jobs[i][0].id] for i in order]
        new = sample(model, tok, prompts, max_new_tokens=sampling.max_new_tokens,
                     temperature=0.0 if sampling.greedy else sampling.temperature, top_p=sampling.top_p,
                     batch_size=requested_batch, seed=sampling.seed, eos_token_id=list(config.eos_token_id),
                     progress=bar.update if bar is not None else False)
        yield order, new
        return
    for b, first in enumerate(range(0, len(order), batch_size)):
        idx = order[first:first + batch_size]
        torch.manual_seed(sampling.seed * 1_000_003 + b)  # each batch reproducible on its own
        steps = StepProgress(bar, config.max_new_tokens, config.eos_token_id) if bar is not None else None
        yield idx, generate_token_ids(model, [prompt_ids[jobs[i][0].id] for i in idx], config, pad_id, share_prefix,
                                      steps)


def save_generations(df, run_name: str, settings: dict | None = None) -> dict:
    """Write generations.csv and model_generations.csv (id,question,response) atomically; record settings."""
    missing = [c for c in GENERATION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"generations table lacks column(s) {missing}: build it with helpers.generate.generate()")
    folder = run_dir(run_name)
    atomic_write_csv(df[GENERATION_COLUMNS], folder / "generations.csv")
    atomic_write_csv(df[SUBMISSION_COLUMNS], folder / "model_generations.csv")
    entry = {**(settings or {}), "files": ["generations.csv", "model_generations.csv"],
             "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_commit": git_commit()}
    write_manifest(run_name, entry, section="generate")
    return entry


def side_by_side(finetuned, base, samples: int = 1):
    """One table with the base and the finetuned answers to the same questions next to each other."""
    import pandas as pd

    keep = ["question_id", "sample", "question", "response"]
    f = finetuned[finetuned["sample"] < samples][keep].rename(columns={"response": "finetuned"})
    b = base[base["sample"] < samples][["question_id", "sample", "response"]].rename(columns={"response": "base"})
    table = f.merge(b, on=["question_id", "sample"], how="left")
    return pd.DataFrame(table[["question_id", "sample", "question", "base", "finetuned"]]).reset_index(drop=True)


def compare_answers(question: str, base, finetuned=None, temperature: float = 0.7, top_p: float = 1.0,
                    max_new_tokens: int = 150, seed: int = 0, progress: str | None = None) -> dict:
    """One answer from each model to `question`: {"question", "base", "finetuned", "settings"}.

    `base` / `finetuned`: loaded (model, tokenizer) pairs (fast) or anything generate() takes; finetuned may be None.
    `progress`: a bar with this title through the slow stages (loading each model, answering).
    """
    from tqdm.auto import tqdm

    settings = dict(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
    sides = [(side, ref) for side, ref in (("base", base), ("finetuned", finetuned)) if ref is not None]
    answers = {"base": None, "finetuned": None}
    bar_format = "{l_bar}{bar}| {postfix}"
    with tqdm(total=2 * len(sides), desc=progress, disable=progress is None, bar_format=bar_format) as bar:
        for side, ref in sides:
            bar.set_postfix_str(f"loading the {side} model")
            pair = ref if isinstance(ref, (tuple, list)) else load_for_sampling(ref)[:2]
            bar.update()
            bar.set_postfix_str(f"answering with the {side} model")
            df = generate(pair, [question], samples_per_question=1, progress=False, **settings)
            answers[side] = df["response"].iloc[0]
            bar.update()
        bar.set_postfix_str("done")
    return {"question": question, **answers, "settings": settings}
