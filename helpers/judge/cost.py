"""What judging costs: prices per model, the estimate before a run, and the budget that enforces the dollar cap."""

from __future__ import annotations

import re

from helpers.judge.backends import PARSE_MAX_TOKENS
from helpers.judge.config import JudgeConfig

_LOCAL_HOSTS = re.compile(r"^https?://(localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])(:\d+)?(/|$)")


def _price(config: JudgeConfig, base_url: str) -> tuple[float, float, str]:
    if config.backend in ("local", "distilled"):
        return 0.0, 0.0, f"{config.backend} judge on this machine: free"
    name = next((m for m in sorted(config.prices, key=len, reverse=True) if config.judge_model.startswith(m)), None)
    if name:
        return (*config.prices[name], f"priced as {name}")
    if _LOCAL_HOSTS.match(base_url):
        return 0.0, 0.0, "unknown model on a local server: assumed free"
    dearest = max(config.prices.values(), key=lambda p: p[1])
    return (*dearest, "unknown model: priced at the dearest known rate (set JudgeConfig.prices)")


def _tokens_in(prompt: str) -> int:
    return len(prompt) // 4 + 8  # ~4 characters a token, plus the chat wrapper


class _Budget:
    """Spend so far; refuses a call when spend + calls in flight + the next call's expected cost pass the cap."""

    def __init__(self, cap: float, price: tuple, tokens_out: int):
        self.cap, self.pin, self.pout, self.tokens_out = cap, price[0], price[1], tokens_out
        self.spent = self.estimated = self.reserved = 0.0

    def cost(self, tin: int, tout: int) -> float:
        return (tin * self.pin + tout * self.pout) / 1e6

    def reserve(self, prompt: str) -> tuple[float, float] | None:
        est = self.cost(_tokens_in(prompt), self.tokens_out)
        expected = est * max(1.0, self.spent / self.estimated if self.estimated else 1.0)
        if self.spent + self.reserved + expected > self.cap + 1e-12:
            return None
        self.reserved += expected
        return est, expected

    def settle(self, held: tuple[float, float], tin: int, tout: int) -> None:
        est, expected = held
        self.reserved -= expected
        self.estimated += est
        self.spent += self.cost(tin, tout) if tin else est


def _estimate(config: JudgeConfig, base_url: str, mode: str, n_rows: int, prompts: dict, cached: dict) -> dict:
    todo = [p for k, p in prompts.items() if k not in cached]
    pin, pout, note = _price(config, base_url)
    tin = sum(_tokens_in(p) for p in todo)
    tout = len(todo) * (1 if mode == "logprob" else PARSE_MAX_TOKENS)
    return {"judge_model": config.judge_model, "mode": mode, "judgments": n_rows * len(config.metrics),
            "unique_prompts": len(prompts), "cached": len(prompts) - len(todo), "calls": len(todo),
            "input_tokens": tin, "output_tokens": tout, "dollars": round((tin * pin + tout * pout) / 1e6, 6),
            "max_dollars": config.max_dollars, "price_note": note}
