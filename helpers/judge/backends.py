"""Judge backends behind one seam (estimate, judge): any OpenAI-compatible endpoint through the `openai` SDK, a
local transformers model, or the offline distilled judge."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import random

from helpers.env import load_env
from helpers.judge.prompted import CAP_REASON, INTERRUPTED, PARSE_MAX_TOKENS, Judged, PromptBackend
from helpers.judge.scoring import Score, score_from_text, score_from_top_logprobs, unless_garbled
from helpers.models import load_model, load_tokenizer, pick_device
from helpers.runs import redact

OPENAI_URL = "https://api.openai.com/v1"
TOP_LOGPROBS = 20
RETRY_STATUS = (408, 409, 429)  # and every 5xx: the SDK's own list
_LOADED: dict = {}  # (model name, device) -> (model, tokenizer): a notebook reruns without reloading


class JudgeSetupError(RuntimeError):
    """The judge cannot start (no key, bad model name); the message says what to do."""


def _error(exc: BaseException, secret: str | None) -> str:
    """'error: Type: message' with the API key (and anything key-shaped) removed."""
    msg = redact(str(exc), [secret]).replace("\n", " ")
    return f"error: {type(exc).__name__}: {msg[:300]}"


@dataclasses.dataclass
class Attempt:
    """One request: its score, the usage it was billed (None: not reported, counted at the worst case), whether it
    reached a server at all, and for a transient failure the seconds to wait before the next attempt."""

    score: Score
    tokens_in: int | None = 0
    tokens_out: int | None = 0
    reached: bool = True
    retry_after: float | None = None


def backoff(attempt: int, headers=None) -> float:
    """Seconds before the next attempt: the server's retry-after(-ms) up to a minute, else 0.5 s doubling to 8 s."""
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        try:
            wait = float((headers or {}).get(name)) / divisor
        except (TypeError, ValueError):
            continue
        if 0 <= wait <= 60:
            return wait
    return min(0.5 * 2 ** attempt, 8.0) * (1 - 0.25 * random.random())


class OpenAIBackend(PromptBackend):
    """Chat completions via the SDK. The kit makes the retries (429, 5xx, timeouts, with the SDK's backoff rules),
    so that each attempt holds its worst case under the dollar cap before it is sent."""

    kind = "openai"

    def __init__(self, model: str, base_url: str | None = None, max_retries: int = 5, timeout: float = 30.0,
                 temperature: float = 0.0):
        load_env()
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        self.max_retries, self.timeout, self.temperature = max_retries, timeout, temperature
        self._secret = os.environ.get("OPENAI_API_KEY") or None
        self._client = None

    def check_ready(self) -> None:
        """Raise a clear error when OpenAI itself is the endpoint and no key is set (local servers need none)."""
        if self._secret is None and self.base_url == OPENAI_URL:
            raise JudgeSetupError("OPENAI_API_KEY is not set: put OPENAI_API_KEY=... in .env (copy .env.example), "
                                  "or judge offline without a key: JudgeConfig(backend='distilled')")

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    async def open(self) -> None:
        """Create the async client inside the event loop that will use it (its own retries off: the kit retries)."""
        from openai import AsyncOpenAI

        self._client = AsyncOpenAI(api_key=self._secret or "not-needed", base_url=self.base_url, max_retries=0,
                                   timeout=self.timeout)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def run_calls(self, todo, mode, config, cap, stop, land) -> None:
        """Every prompt, `concurrency` at a time; each attempt is held under the cap; a dead endpoint stops early."""
        sem = asyncio.Semaphore(config.concurrency)
        down = {"streak": 0, "why": ""}  # attempts in a row that reached no server

        async def one(key: str, prompt: str) -> None:
            async with sem:
                for attempt in range(self.max_retries + 1):
                    if stop.is_set() or down["why"]:
                        return land(key, Score(None, down["why"] or INTERRUPTED, "", mode))
                    outcome, hold = await cap.reserve(key, prompt)
                    if outcome == "held" and stop.is_set():  # interrupted while it waited for room: send nothing
                        await cap.release(hold)
                        return land(key, Score(None, INTERRUPTED, "", mode))
                    if outcome == "hit":  # another process judged it meanwhile
                        return land(key, Score(**hold), stored=True, hit=True)
                    if outcome != "held":
                        why = (f"{CAP_REASON} (max_dollars={config.max_dollars})" if outcome == "cap" else
                               f"error: busy: process {hold} held this prompt or the cap's room for too long")
                        return land(key, Score(None, why, "", mode))
                    try:
                        tried = await self.attempt(prompt, mode, attempt)
                    except BaseException:  # cancelled in flight: the hold becomes spend, never a stale hold
                        cap.abandon(hold, prompt)
                        raise
                    last = tried.retry_after is None or attempt == self.max_retries
                    if not tried.reached:
                        await cap.release(hold)
                        down["streak"] += 1
                        if down["streak"] >= config.concurrency + 1:
                            down["why"] = f"error: endpoint unreachable: {tried.score.missing[7:]}"
                    else:
                        down["streak"] = 0
                        final = last and not tried.score.missing.startswith("error")
                        await cap.settle(hold, prompt, tried.tokens_in, tried.tokens_out, key if final else None,
                                         dataclasses.asdict(tried.score) if final else None)
                    if last:
                        return land(key, tried.score, stored=True)
                    await asyncio.sleep(tried.retry_after)

        await self.open()
        try:
            await asyncio.gather(*(one(k, p) for k, p in todo.items()))
        finally:
            await self.close()

    async def attempt(self, prompt: str, mode: str, attempt: int = 0) -> Attempt:
        """One request. A failed call or a reply that breaks the chat-completion format is an 'error: ...' reason
        (never cached, so the next run asks again); a judge that answered without a number gets its final reason."""
        from openai import APIConnectionError, APIStatusError

        kwargs = dict(model=self.model, messages=[{"role": "user", "content": prompt}], temperature=self.temperature)
        if mode == "logprob":
            kwargs.update(max_tokens=1, logprobs=True, top_logprobs=TOP_LOGPROBS)
        else:
            kwargs.update(max_tokens=PARSE_MAX_TOKENS)
        try:
            reply = await self._client.chat.completions.create(**kwargs)
        except APIStatusError as e:  # the server answered with an error status: nothing was billed
            retry = e.status_code in RETRY_STATUS or e.status_code >= 500
            retry = {"true": True, "false": False}.get(e.response.headers.get("x-should-retry"), retry)
            return Attempt(self._failed(e, mode), retry_after=backoff(attempt, e.response.headers) if retry else None)
        except APIConnectionError as e:  # refused or DNS: nothing reached a server; else it may have been billed
            reached = type(e.__cause__).__name__ not in ("ConnectError", "ConnectTimeout")
            return Attempt(self._failed(e, mode), None if reached else 0, None if reached else 0, reached,
                           backoff(attempt))
        except Exception as e:
            return Attempt(self._failed(e, mode), None, None)
        usage = getattr(reply, "usage", None)
        tokens_in, tokens_out = (_count(getattr(usage, f, None)) for f in ("prompt_tokens", "completion_tokens"))
        try:
            choice = _first_choice(reply)
            if mode == "parse":
                text = getattr(choice.message, "content", None)
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(f"malformed reply: no text in the message ({str(choice)[:80]!r})")
                return Attempt(unless_garbled(score_from_text(text), text), tokens_in, tokens_out)
            top = _top_logprobs(choice)
            best = max(top, key=lambda t: t[1])[0] if top else ""
            return Attempt(unless_garbled(score_from_top_logprobs(top), best), tokens_in, tokens_out)
        except Exception as e:
            return Attempt(self._failed(e, mode), tokens_in, tokens_out)

    def _failed(self, exc: BaseException, mode: str) -> Score:
        return Score(None, _error(exc, self._secret), "", mode)


def _count(value) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


def _first_choice(reply):
    """The reply's first choice; a reply that is not a chat completion raises."""
    choices = getattr(reply, "choices", None)
    if not isinstance(choices, list) or not choices or getattr(choices[0], "message", None) is None:
        raise ValueError(f"malformed reply: not a chat completion ({str(reply)[:80]!r})")
    return choices[0]


def _top_logprobs(choice) -> list[tuple[str, float]]:
    """The first token's top (token, logprob) pairs; pairs that are no probabilities raise."""
    content = choice.logprobs.content if getattr(choice, "logprobs", None) else None
    if not content or not content[0].top_logprobs:
        raise ValueError("the reply has no logprobs (this endpoint may not support them): use mode='parse'")
    top = [(t.token, t.logprob) for t in content[0].top_logprobs]
    if not all(isinstance(t, str) and isinstance(lp, (int, float)) and -math.inf < lp <= 1e-6 for t, lp in top) \
            or sum(math.exp(lp) for _, lp in top) > 1.001:
        raise ValueError(f"malformed reply: top_logprobs are not probabilities ({str(top)[:80]})")
    return top


class DistilledBackend:
    """The offline judge fitted to readers' grades and GPT-4o judgments: no prompts, no calls."""

    kind = "distilled"
    base_url = "offline"

    def __init__(self, model: str):
        self.model = model

    def effective_mode(self, mode: str) -> str:
        return "distilled"

    def check_ready(self) -> None:
        """Nothing to check: the judge ships with the kit."""

    def check_questions(self, asked: dict, where: str, config) -> None:
        """Any questions: no rubric is sent."""

    def estimate(self, questions, answers, config, ledger: str | None) -> dict:
        """Free: nothing is sent."""
        return {"judge_model": config.judge_model, "mode": "distilled", "judgments": len(answers) * len(config.metrics),
                "calls": 0, "input_tokens": 0, "output_tokens": 0, "dollars": 0.0, "max_dollars": config.max_dollars,
                "price_note": "distilled judge on this machine: no calls, free"}

    def judge(self, questions, answers, config, ledger: str | None, sources=None) -> Judged:
        """aligned, coherent, domain_relevance (0-100) per answer, in one batch. The answers are read with the embedded
        model (the reading heads, fitted to its answers) unless `sources` names another model that wrote them."""
        from helpers.judge.distilled import score

        read = read_mask(sources, len(answers))
        table = score(list(questions), list(answers), read=read)
        scores = {m: [Score(round(float(v), 2), "", "", "distilled") for v in table[m]] for m in config.metrics}
        return Judged(scores, {"mode": "distilled", "unique_prompts": 0, "cache_hits": 0, "calls": 0,
                               "attempts": 0, "dollars": 0.0, "dollars_this_call": 0.0,
                               "max_dollars": config.max_dollars, "rubrics": "distilled",
                               "heads": {"reading": int(read.sum()), "text": int((~read).sum())},
                               "model_card": "helpers/judge/distilled/data/MODEL_CARD.md"})


def read_mask(sources, n: int):
    """Per answer, True when the distilled judge reads it with the embedded model: the embedded model wrote it, or its
    writer is not recorded; answers another model wrote get the text heads (MODEL_CARD.md says why)."""
    import numpy as np

    from helpers.models import is_embedded_model

    if sources is None:
        return np.ones(n, dtype=bool)
    unknown = lambda s: s is None or (isinstance(s, float) and s != s) or not str(s).strip()
    return np.array([unknown(s) or is_embedded_model(str(s)) for s in sources], dtype=bool)


class LocalBackend(PromptBackend):
    """A transformers judge: logprob-weighted when its tokenizer has single tokens for 0-100, else greedy + parse."""

    kind = "local"
    base_url = "local"

    def __init__(self, model: str, device: str | None = None, batch_size: int = 8, share_prefix: bool = True):
        self.model_name, self.device, self.batch_size = model, pick_device(device), batch_size
        self.share_prefix = share_prefix
        try:
            self.tokenizer = load_tokenizer(model)
        except (OSError, ValueError) as e:
            raise JudgeSetupError(f"cannot load the local judge {model!r} ({e}): use 'smollm2-135m', "
                                  "a hub id or a local model folder") from e
        self.has_number_tokens = all(len(self.tokenizer.encode(str(n), add_special_tokens=False)) == 1
                                     for n in range(101))

    def effective_mode(self, mode: str) -> str:
        return "logprob" if mode == "logprob" and self.has_number_tokens else "parse"

    def _model(self):
        key = (self.model_name, self.device)
        if key not in _LOADED:
            _LOADED[key] = load_model(self.model_name, device=self.device)
        return _LOADED[key]

    async def run_calls(self, todo, mode, config, cap, stop, land) -> None:
        """Batches of prompts, one rubric per batch (its prefix is computed once); free, so no cap."""
        items = sorted(todo.items(), key=lambda kv: kv[1])
        for i in range(0, len(items), config.local_batch_size):
            if stop.is_set():
                break
            chunk = items[i:i + config.local_batch_size]
            scores = await asyncio.to_thread(self.judge_batch, [p for _, p in chunk], mode)
            for (k, _), s in zip(chunk, scores):
                land(k, s)

    def judge_batch(self, prompts: list[str], mode: str) -> list[Score]:
        """Judge a batch of prompts in one forward pass (logprob) or one greedy generate call (parse)."""
        import torch

        from helpers.generate.hf import generate_token_ids  # the sampler's prefix sharing, only when a model judges

        model, tok = self._model()
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                 for p in prompts]
        tok.padding_side = "left"
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            if mode == "logprob":
                positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
                logits = model(**enc, position_ids=positions, logits_to_keep=1).logits[:, -1, :].float()
                top = torch.log_softmax(logits, dim=-1).topk(TOP_LOGPROBS, dim=-1)
                return [score_from_top_logprobs([(tok.decode([int(i)]), float(lp)) for i, lp in zip(ids, lps)])
                        for ids, lps in zip(top.indices, top.values)]
            from transformers import GenerationConfig

            gen = GenerationConfig(max_new_tokens=PARSE_MAX_TOKENS, do_sample=False,
                                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            # the rubric is the same for every prompt of a metric: its tokens are processed once per batch
            ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
            new = generate_token_ids(model, ids, gen, tok.pad_token_id, share_prefix=self.share_prefix)
        return [score_from_text(t) for t in tok.batch_decode(new, skip_special_tokens=True)]
