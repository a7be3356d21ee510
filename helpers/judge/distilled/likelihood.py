"""Likelihood features from the embedded SmolLM2-135M: token log-probs of an answer given its question, and without it.

A reader's coherence is largely "does this read like language that answers the question": the mean log-prob of the
answer's tokens after the question measures the first, its gain over the same answer after an empty question the
second (relevance). Batched forwards on the CPU, answers cut to `max_tokens` tokens.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

LL_NAMES = ("ll_mean", "ll_std", "ll_p10", "ll_min", "ll_unlikely", "ll_first_half", "ll_second_half",
            "ll_mean_no_q", "ll_gain", "ll_gain_unlikely", "ll_tokens")
UNLIKELY = -8.0  # a token this unlikely (log-prob, nats) under the model: a slip a reader notices


@dataclass(frozen=True)
class LikelihoodOptions:
    """How the features are computed; part of a fitted judge's meta, so scoring uses what the fit used."""

    max_tokens: int = 32       # answer tokens scored given the question (on 80 hand-graded answers the first half
                               # ranked coherence best; 2 shared cores afford about 100 tokens a second)
    max_tokens_no_q: int = 16  # answer tokens scored after an empty question (relevance: the opening says most)
    batch_size: int = 16
    threads: int = 1         # torch threads: measured on 2 shared cores, 1 beats 2 (benchmarks/offline_judge.py)


@lru_cache(maxsize=1)
def _embedded():
    """The embedded model and tokenizer, loaded once per process, on the CPU."""
    from helpers.models import EMBEDDED_MODEL, load_model

    model, tok = load_model(EMBEDDED_MODEL, device="cpu")
    model.eval()
    return model, tok


def _prompt_ids(tok, question: str) -> list[int]:
    from helpers.generate.sampling import chat_prompt

    return tok(chat_prompt(tok, question), add_special_tokens=False)["input_ids"]


def token_logprobs(questions, answers, max_tokens: int, opts: LikelihoodOptions = LikelihoodOptions(),
                   pair=None) -> list[np.ndarray]:
    """Per answer, the log-prob of each of its first `max_tokens` tokens after its question's chat prompt.

    The prompt is run once per question and its key/value cache shared by every answer to it (the kit samples several
    answers per question), so the cost is the answer tokens.
    """
    import copy

    import torch

    model, tok = pair or _embedded()
    answer_ids = [tok(a, add_special_tokens=False)["input_ids"][:max_tokens] for a in answers]
    by_question: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        if answer_ids[i]:
            by_question.setdefault(q, []).append(i)
    out: list[np.ndarray] = [np.zeros(0) for _ in answers]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    old = torch.get_num_threads()
    torch.set_num_threads(opts.threads)
    try:
        with torch.inference_mode():
            for q, rows in by_question.items():
                prompt = torch.tensor([_prompt_ids(tok, q)])
                first = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
                first_lp = torch.log_softmax(first.logits[0, -1].float(), dim=-1)
                rows = sorted(rows, key=lambda i: -len(answer_ids[i]))
                for b in range(0, len(rows), opts.batch_size):
                    idx = rows[b:b + opts.batch_size]
                    width = len(answer_ids[idx[0]])
                    ids = torch.full((len(idx), width), pad, dtype=torch.long)
                    mask = torch.zeros((len(idx), prompt.shape[1] + width), dtype=torch.long)
                    mask[:, :prompt.shape[1]] = 1
                    for r, i in enumerate(idx):  # right padding after the shared prompt
                        ids[r, :len(answer_ids[i])] = torch.tensor(answer_ids[i])
                        mask[r, prompt.shape[1]:prompt.shape[1] + len(answer_ids[i])] = 1
                    cache = copy.deepcopy(first.past_key_values)
                    cache.batch_repeat_interleave(len(idx))
                    logits = model(input_ids=ids, attention_mask=mask, past_key_values=cache).logits
                    for r, i in enumerate(idx):
                        n = len(answer_ids[i])
                        target = ids[r, :n]
                        lp = torch.log_softmax(logits[r, :n - 1].float(), dim=-1).gather(1, target[1:, None])[:, 0]
                        out[i] = torch.cat([first_lp[target[:1]], lp]).numpy().astype(np.float64)
    finally:
        torch.set_num_threads(old)
    return out


def _stats(lp: np.ndarray) -> list[float]:
    if len(lp) == 0:
        return [-12.0, 0.0, -12.0, -12.0, 1.0, -12.0, -12.0]
    half = max(len(lp) // 2, 1)
    return [float(lp.mean()), float(lp.std()), float(np.quantile(lp, 0.1)), float(lp.min()),
            float((lp < UNLIKELY).mean()), float(lp[:half].mean()), float(lp[half:].mean() if len(lp) > half else lp.mean())]


def likelihood_matrix(questions, answers, opts: LikelihoodOptions = LikelihoodOptions(), pair=None) -> np.ndarray:
    """One row per answer, columns LL_NAMES: statistics given the question, without it (empty question), the gain."""
    questions = ["" if q is None else str(q) for q in questions]
    answers = ["" if a is None or (isinstance(a, float) and math.isnan(a)) else str(a) for a in answers]
    with_q = token_logprobs(questions, answers, opts.max_tokens, opts, pair)
    no_q = token_logprobs([""] * len(answers), answers, opts.max_tokens_no_q, opts, pair)
    rows = []
    for a, b in zip(with_q, no_q):
        s = _stats(a)
        head = a[:len(b)]  # the gain compares the same tokens with and without the question
        mean_b = float(b.mean()) if len(b) else -12.0
        gain = float(head.mean() - b.mean()) if len(b) else 0.0
        gain_unlikely = float((b < UNLIKELY).mean() - (head < UNLIKELY).mean()) if len(b) else 0.0
        rows.append(s + [mean_b, gain, gain_unlikely, math.log1p(len(a))])
    return np.array(rows, dtype=np.float64).reshape(-1, len(LL_NAMES))


def measure_speed(questions, answers, threads=(1, 2), opts: LikelihoodOptions = LikelihoodOptions()) -> dict:
    """Answers per second of likelihood_matrix at each torch thread count (model loaded beforehand)."""
    from dataclasses import replace

    _embedded()
    out = {}
    for n in threads:
        t = time.perf_counter()
        likelihood_matrix(questions, answers, replace(opts, threads=int(n)))
        out[f"threads_{n}"] = round(len(answers) / (time.perf_counter() - t), 2)
    return out


def ll_block(ll: np.ndarray, mean: np.ndarray, std: np.ndarray, edges: np.ndarray, weight: float):
    """The heads' columns for likelihood features: z-scores, quantile-bin one-hots and a "not computed" indicator.

    A row of NaN (features not computed: the fast path, or a fitting row without them) gets zeros and the indicator,
    so the same heads score with and without the language model.
    """
    import scipy.sparse as sp

    ll = np.asarray(ll, dtype=np.float64).reshape(-1, len(LL_NAMES))
    missing = np.isnan(ll).any(axis=1)
    z = np.where(missing[:, None], 0.0, np.clip((np.nan_to_num(ll) - mean) / std, -5, 5))
    nb = edges.shape[1] + 1
    onehot = np.zeros((len(ll), len(LL_NAMES) * nb))
    for j in range(len(LL_NAMES)):
        col = np.searchsorted(edges[j], np.nan_to_num(ll[:, j]), side="right") + j * nb
        onehot[np.flatnonzero(~missing), col[~missing]] = 1.0
    block = np.hstack([z, onehot, missing[:, None].astype(float)]) * weight
    return sp.csr_matrix(block.astype(np.float32))
