"""Answer states: the embedded SmolLM2-135M's mean hidden state over an answer's tokens, read after its question
(batched CPU forwards through the first `layer` layers only; each question's prompt runs once)."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

WIDTH = 576  # SmolLM2-135M's hidden size: the length of one answer's feature row


@dataclass(frozen=True)
class EmbeddedOptions:
    """How the states are read: `layer` and `max_tokens` are part of a fitted judge (FITTED), the rest is speed."""

    layer: int = 18          # the hidden state after this many of the model's 30 layers
    max_tokens: int = 64     # answer tokens read (the kit's answers are at most 64 new tokens)
    batch_size: int = 16     # answers to one question forwarded together
    threads: int = 1         # torch threads while reading (1 vs 2 on 2 cores: benchmarks/offline_judge.py)

    def fitted(self) -> dict:
        """The options a fitted judge depends on."""
        return {k: getattr(self, k) for k in FITTED}


FITTED = ("layer", "max_tokens")


@lru_cache(maxsize=1)
def _embedded():
    """The embedded model and tokenizer, loaded once per process, on the CPU."""
    from helpers.models import EMBEDDED_MODEL, load_model

    model, tok = load_model(EMBEDDED_MODEL, device="cpu")
    model.eval()
    return model, tok


def _truncated(model, layer: int):
    """The model's body cut after `layer` layers, without its final norm (shares the weights)."""
    import torch

    body = copy.copy(model.model)
    body._modules = dict(model.model._modules)
    body.layers = torch.nn.ModuleList(list(model.model.layers)[:layer])
    body.norm = torch.nn.Identity()
    return body


def _prompt_ids(tok, question: str) -> list[int]:
    """Token ids of the question's chat prompt, up to where the answer starts."""
    from helpers.generate.sampling import chat_prompt

    return tok(chat_prompt(tok, question), add_special_tokens=False)["input_ids"]


def answer_states(questions, answers, opts: EmbeddedOptions = EmbeddedOptions(), pair=None) -> np.ndarray:
    """One row per answer: the mean over its first `max_tokens` tokens of the hidden state after `layer` layers,
    given its question's chat prompt (an empty answer is read as the end-of-text token)."""
    import torch

    model, tok = pair or _embedded()
    questions = ["" if q is None else str(q) for q in questions]
    eos = tok.eos_token_id if tok.eos_token_id is not None else 0
    ids = [tok("" if a is None else str(a), add_special_tokens=False)["input_ids"][:opts.max_tokens] or [eos]
           for a in answers]
    by_question: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        by_question.setdefault(q, []).append(i)
    out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    body, old = _truncated(model, opts.layer), torch.get_num_threads()
    torch.set_num_threads(opts.threads)
    try:
        with torch.inference_mode():
            for q, rows in by_question.items():
                prompt = torch.tensor([_prompt_ids(tok, q)])
                first = body(input_ids=prompt, use_cache=True)
                rows = sorted(rows, key=lambda i: -len(ids[i]))
                for b in range(0, len(rows), opts.batch_size):
                    idx = rows[b:b + opts.batch_size]
                    width, n_prompt = len(ids[idx[0]]), prompt.shape[1]
                    batch = torch.zeros((len(idx), width), dtype=torch.long)
                    mask = torch.zeros((len(idx), n_prompt + width), dtype=torch.long)
                    mask[:, :n_prompt] = 1
                    for r, i in enumerate(idx):  # right padding after the shared prompt
                        batch[r, :len(ids[i])] = torch.tensor(ids[i])
                        mask[r, n_prompt:n_prompt + len(ids[i])] = 1
                    cache = copy.deepcopy(first.cache)
                    cache.batch_repeat_interleave(len(idx))
                    h = body(input_ids=batch, attention_mask=mask, cache=cache).last_hidden_state.float()
                    keep = mask[:, n_prompt:, None].float()
                    out[idx] = ((h * keep).sum(dim=1) / keep.sum(dim=1)).numpy()
    finally:
        torch.set_num_threads(old)
    return out


def measure_speed(questions, answers, threads=(1, 2), opts: EmbeddedOptions = EmbeddedOptions()) -> dict:
    """Answers per second of answer_states at each torch thread count (model loaded beforehand)."""
    _embedded()
    answer_states(questions[:2], answers[:2], opts)
    out = {}
    for n in threads:
        start = time.perf_counter()
        answer_states(questions, answers, replace(opts, threads=int(n)))
        out[f"threads_{n}"] = round(len(answers) / (time.perf_counter() - start), 2)
    return out
