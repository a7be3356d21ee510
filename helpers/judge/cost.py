"""What judging costs: the price of a judge model (from JudgeConfig.prices), the estimate before a run, and the hard
dollar cap during it."""

from __future__ import annotations

import asyncio
import re

# The chat template around one user message, generously (OpenAI adds 7 tokens; Llama-3 templates about 30).
CHAT_OVERHEAD_TOKENS = 64
_LOCAL_HOSTS = re.compile(r"^https?://(localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])(:\d+)?(/|$)")


def price_for(backend_kind: str, judge_model: str, base_url: str, prices: dict) -> tuple[float, float, str]:
    """(USD per million input tokens, per million output tokens, how the price was chosen)."""
    if backend_kind in ("local", "distilled"):
        return 0.0, 0.0, f"{backend_kind} judge on this machine: free"
    name = next((m for m in sorted(prices, key=len, reverse=True) if judge_model.startswith(m)), None)
    if name:
        return (*prices[name], f"priced as {name}")
    if _LOCAL_HOSTS.match(base_url):
        return 0.0, 0.0, "unknown model on a local server: assumed free"
    dearest = max(prices.values(), key=lambda p: p[1])
    return (*dearest, "unknown model: priced at the dearest known rate (set JudgeConfig.prices)")


def expected_prompt_tokens(prompt: str) -> int:
    """The usual count: ~4 characters a token, plus the chat wrapper (for the estimate shown before a run)."""
    return len(prompt) // 4 + 8


def max_prompt_tokens(prompt: str) -> int:
    """A count no endpoint exceeds: a byte-level BPE token holds at least one UTF-8 byte, plus the chat template."""
    return len(prompt.encode("utf-8")) + CHAT_OVERHEAD_TOKENS


class DollarCap:
    """Spend so far (this run's earlier calls included) plus the worst case of every call in flight stays under
    the cap: a call waits for room while others are in flight, and is refused when it could never fit."""

    def __init__(self, cap: float, price: tuple[float, float], max_tokens_out: int, spent_before: float = 0.0):
        self.cap, self.pin, self.pout, self.max_tokens_out = cap, price[0], price[1], max_tokens_out
        self.spent_before, self.spent, self.reserved, self.in_flight = spent_before, 0.0, 0.0, 0
        self._room: asyncio.Condition | None = None

    @property
    def total(self) -> float:
        """What the run has spent, earlier calls included."""
        return self.spent_before + self.spent

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.pin + tokens_out * self.pout) / 1e6

    def worst_case(self, prompt: str) -> float:
        return self.cost(max_prompt_tokens(prompt), self.max_tokens_out)

    async def reserve(self, prompt: str) -> float | None:
        """Hold the call's worst case before it is sent; None when the cap leaves no room for it."""
        self._room = self._room or asyncio.Condition()
        worst = self.worst_case(prompt)
        async with self._room:
            while self.total + self.reserved + worst > self.cap + 1e-12:
                if self.in_flight == 0:
                    return None
                await self._room.wait()
            self.reserved += worst
            self.in_flight += 1
        return worst

    async def settle(self, held: float, prompt: str, tokens_in: int | None, tokens_out: int | None) -> float:
        """Replace the held worst case with the real usage (the worst case where the reply did not report it)."""
        cost = self.cost(max_prompt_tokens(prompt) if tokens_in is None else tokens_in,
                         self.max_tokens_out if tokens_out is None else tokens_out)
        async with self._room:
            self.reserved = max(0.0, self.reserved - held)
            self.in_flight -= 1
            self.spent += cost
            self._room.notify_all()
        return cost


def estimate(config, base_url: str, mode: str, max_tokens_out: int, n_rows: int, prompts: dict, cached: dict,
             spent_before: float = 0.0) -> dict:
    """Calls still to make (cache hits are free), their tokens and dollars, and what the run has spent already."""
    todo = [p for k, p in prompts.items() if k not in cached]
    pin, pout, note = price_for(config.backend, config.judge_model, base_url, config.prices)
    tin = sum(expected_prompt_tokens(p) for p in todo)
    tout = len(todo) * max_tokens_out
    return {"judge_model": config.judge_model, "mode": mode, "judgments": n_rows * len(config.metrics),
            "unique_prompts": len(prompts), "cached": len(prompts) - len(todo), "calls": len(todo),
            "input_tokens": tin, "output_tokens": tout, "dollars": round((tin * pin + tout * pout) / 1e6, 6),
            "spent_before": round(spent_before, 6), "max_dollars": config.max_dollars, "price_note": note}
