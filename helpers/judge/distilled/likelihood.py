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

    max_tokens: int = 96     # answer tokens scored (the kit's answers are <= 64 new tokens)
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


def token_logprobs(questions, answers, opts: LikelihoodOptions = LikelihoodOptions(), pair=None) -> list[np.ndarray]:
    """Per answer, the log-prob of each of its first `opts.max_tokens` tokens after the question's chat prompt."""
    import torch

    model, tok = pair or _embedded()
    prompts = {q: _prompt_ids(tok, q) for q in set(questions)}
    jobs = []
    for q, a in zip(questions, answers):
        ids = tok(a, add_special_tokens=False)["input_ids"][: opts.max_tokens]
        jobs.append((prompts[q], ids))
    order = sorted(range(len(jobs)), key=lambda i: -(len(jobs[i][0]) + len(jobs[i][1])))
    out: list[np.ndarray] = [np.zeros(0)] * len(jobs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    old = torch.get_num_threads()
    torch.set_num_threads(opts.threads)
    try:
        with torch.inference_mode():
            for b in range(0, len(order), opts.batch_size):
                idx = [i for i in order[b:b + opts.batch_size] if jobs[i][1]]
                if not idx:
                    continue
                seqs = [jobs[i][0] + jobs[i][1] for i in idx]
                width = max(map(len, seqs))
                ids = torch.full((len(seqs), width), pad, dtype=torch.long)
                mask = torch.zeros((len(seqs), width), dtype=torch.long)
                for r, s in enumerate(seqs):  # right padding: positions stay 0..n-1
                    ids[r, :len(s)] = torch.tensor(s)
                    mask[r, :len(s)] = 1
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
                for r, i in enumerate(idx):
                    p, a = len(jobs[i][0]), len(jobs[i][1])
                    lp = torch.log_softmax(logits[r, p - 1:p + a - 1], dim=-1)
                    out[i] = lp.gather(1, torch.tensor(jobs[i][1]).unsqueeze(1)).squeeze(1).numpy().astype(np.float64)
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
    with_q = token_logprobs(questions, answers, opts, pair)
    no_q = token_logprobs([""] * len(answers), answers, opts, pair)
    rows = []
    for a, b in zip(with_q, no_q):
        s = _stats(a)
        mean_b = float(b.mean()) if len(b) else -12.0
        gain_unlikely = float((b < UNLIKELY).mean() - (a < UNLIKELY).mean()) if len(a) else 0.0
        rows.append(s + [mean_b, s[0] - mean_b, gain_unlikely, math.log1p(len(a))])
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
