"""Judge backends: any OpenAI-compatible endpoint through the `openai` SDK, or a local transformers model."""

from __future__ import annotations

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

    async def ajudge(self, prompt: str, mode: str) -> tuple[Score, int, int]:
        """One judgment -> (score, prompt tokens, completion tokens); failures come back as an 'error: ...' reason."""
        kwargs = dict(model=self.model, messages=[{"role": "user", "content": prompt}],
                      temperature=self.temperature)
        if mode == "logprob":
            kwargs.update(max_tokens=1, logprobs=True, top_logprobs=TOP_LOGPROBS)
        else:
            kwargs.update(max_tokens=PARSE_MAX_TOKENS)
        try:
            reply = await self._client.chat.completions.create(**kwargs)
            if not getattr(reply, "choices", None):
                raise ValueError(f"the reply is not a chat completion: {str(reply)[:80]!r}")
            choice = reply.choices[0]
            usage = getattr(reply, "usage", None)
            tokens_in, tokens_out = (usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else (0, 0)
            if mode == "parse":
                return score_from_text(choice.message.content or ""), tokens_in, tokens_out
            content = choice.logprobs.content if choice.logprobs else None
            if not content or not content[0].top_logprobs:
                raise ValueError("the reply has no logprobs (this endpoint may not support them): use mode='parse'")
            return score_from_top_logprobs([(t.token, t.logprob) for t in content[0].top_logprobs]), tokens_in, tokens_out
        except Exception as e:  # recorded per row, never cached: a rerun tries again
            return Score(None, _error(e, self._secret), "", mode), 0, 0


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
