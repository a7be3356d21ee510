"""Judge backends: any OpenAI-compatible endpoint through the `openai` SDK, or a local transformers model."""

from __future__ import annotations

import math
import os

from helpers.generate.hf import generate_token_ids
from helpers.judge.scoring import Score, score_from_text, score_from_top_logprobs
from helpers.env import load_env
from helpers.models import load_model, load_tokenizer, pick_device
from helpers.runs import redact

OPENAI_URL = "https://api.openai.com/v1"
TOP_LOGPROBS = 20
PARSE_MAX_TOKENS = 8
_LOADED: dict = {}  # (model name, device) -> (model, tokenizer): a notebook reruns without reloading


class JudgeSetupError(RuntimeError):
    """The judge cannot start (no key, bad model name); the message says what to do."""


def _error(exc: BaseException, secret: str | None) -> str:
    """'error: Type: message' with the API key (and anything key-shaped) removed."""
    msg = redact(str(exc), [secret]).replace("\n", " ")
    return f"error: {type(exc).__name__}: {msg[:300]}"


class OpenAIBackend:
    """Chat completions via the SDK, whose own retries and backoff handle 429 (retry-after), 5xx and timeouts."""

    kind = "openai"

    def __init__(self, model: str, base_url: str | None = None, max_retries: int = 5, timeout: float = 30.0,
                 temperature: float = 0.0):
        load_env()
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        self.max_retries, self.timeout, self.temperature = max_retries, timeout, temperature
        self._secret = os.environ.get("OPENAI_API_KEY") or None
        self._client = None

    def require_key(self) -> None:
        """Raise a clear error when OpenAI itself is the endpoint and no key is set (local servers need none)."""
        if self._secret is None and self.base_url == OPENAI_URL:
            raise JudgeSetupError("OPENAI_API_KEY is not set: put OPENAI_API_KEY=... in .env (copy .env.example), "
                                  "or judge offline without a key: JudgeConfig(backend='distilled')")

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    def effective_mode(self, mode: str) -> str:
        return mode

    async def open(self) -> None:
        """Create the async client inside the event loop that will use it."""
        from openai import AsyncOpenAI

        self._client = AsyncOpenAI(api_key=self._secret or "not-needed", base_url=self.base_url,
                                   max_retries=self.max_retries, timeout=self.timeout)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def ajudge(self, prompt: str, mode: str) -> tuple[Score, int | None, int | None]:
        """One judgment -> (score, prompt tokens, completion tokens; None where the reply did not say).

        A failed call or a reply that breaks the chat-completion format comes back as an 'error: ...' reason (never
        cached, so the next run asks again); a judge that answered without a number gets its final reason."""
        from openai import APIStatusError

        kwargs = dict(model=self.model, messages=[{"role": "user", "content": prompt}], 
                      temperature=self.temperature)
        if mode == "logprob":
            kwargs.update(max_tokens=1, logprobs=True, top_logprobs=TOP_LOGPROBS)
        else:
            kwargs.update(max_tokens=PARSE_MAX_TOKENS)
        try:
            reply = await self._client.chat.completions.create(**kwargs)
        except APIStatusError as e:  # the server answered with an error status: nothing was billed
            return Score(None, _error(e, self._secret), "", mode), 0, 0
        except Exception as e:
            return Score(None, _error(e, self._secret), "", mode), None, None
        usage = getattr(reply, "usage", None)
        tokens_in, tokens_out = (_count(getattr(usage, f, None)) for f in ("prompt_tokens", "completion_tokens"))
        try:
            choice = _first_choice(reply)
            if mode == "parse":
                text = getattr(choice.message, "content", None)
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(f"malformed reply: no text in the message ({str(choice)[:80]!r})")
                return score_from_text(text), tokens_in, tokens_out
            return score_from_top_logprobs(_top_logprobs(choice)), tokens_in, tokens_out
        except Exception as e:
            return Score(None, _error(e, self._secret), "", mode), tokens_in, tokens_out


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
    """The offline judge learned from GPT-4o judgments: no prompts, no calls, scores straight from the text."""

    kind = "distilled"
    base_url = "offline"

    def __init__(self, model: str):
        self.model = model

    def effective_mode(self, mode: str) -> str:
        return "distilled"

    def score(self, questions: list[str], answers: list[str]):
        """aligned, coherent, domain_relevance (0-100) per answer, as a DataFrame."""
        from helpers.judge.distilled import score

        return score(questions, answers)


class LocalBackend:
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

    def judge_batch(self, prompts: list[str], mode: str) -> list[Score]:
        """Judge a batch of prompts in one forward pass (logprob) or one greedy generate call (parse)."""
        import torch

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
