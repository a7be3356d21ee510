"""What judging costs: the price of a judge model (from JudgeConfig.prices), the estimate before a run, and the hard
dollar cap during it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

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
    """The hard dollar cap over a ledger that every process judging the run shares (the cache database): each attempt
    holds its worst case there before it is sent, so calls in flight, retries, other processes and calls killed in
    flight all count; a call waits for room while others are in flight, and is refused when it could never fit."""

    def __init__(self, cache, ledger: str, cap: float, price: tuple[float, float], max_tokens_out: int,
                 wait_s: float = 600.0):
        self.cache, self.ledger, self.cap, self.pin, self.pout = cache, ledger, cap, price[0], price[1]
        self.max_tokens_out, self.wait_s = max_tokens_out, wait_s
        self.spent, self.attempts = 0.0, 0  # what this call's attempts cost, and how many were billed or held
        self._room: asyncio.Condition | None = None

    @property
    def total(self) -> float:
        """What the run has spent or holds, every process and earlier call included."""
        return self.cache.spent(self.ledger)

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.pin + tokens_out * self.pout) / 1e6

    def worst_case(self, prompt: str) -> float:
        return self.cost(max_prompt_tokens(prompt), self.max_tokens_out)

    async def reserve(self, key: str, prompt: str) -> tuple[str, object]:
        """('held', hold) once the attempt's worst case is held; ('hit', judgment) when another process cached the
        key meanwhile; ('cap', None) when the cap has no room; ('busy', pid) when a call of pid held the key or
        the room for longer than `wait_s`."""
        self._room = self._room or asyncio.Condition()
        deadline = time.monotonic() + self.wait_s
        while True:
            outcome, value = self.cache.reserve(self.ledger, key, self.worst_case(prompt), self.cap)
            if outcome != "wait":
                return outcome, value
            if time.monotonic() > deadline:
                return "busy", value
            async with self._room:  # woken by a call of this process, or polls for the others
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._room.wait(), 0.2)

    async def settle(self, hold: int, prompt: str, tokens_in: int | None, tokens_out: int | None,
                     key: str | None = None, value: dict | None = None) -> float:
        """Replace the hold by the real usage (the worst case where the reply did not say), with the judgment."""
        cost = self.cost(max_prompt_tokens(prompt) if tokens_in is None else tokens_in,
                         self.max_tokens_out if tokens_out is None else tokens_out)
        self.cache.settle(hold, self.ledger, cost, key, value)
        self.spent += cost
        self.attempts += 1
        await self._wake()
        return cost

    def abandon(self, hold: int, prompt: str) -> None:
        """A call cancelled in flight (an interrupt): it may have been billed, so its worst case stays spent."""
        cost = self.worst_case(prompt)
        self.cache.settle(hold, self.ledger, cost)
        self.spent += cost
        self.attempts += 1

    async def release(self, hold: int) -> None:
        """The request never reached a server: nothing was billed, the hold goes."""
        self.cache.release(hold)
        await self._wake()

    async def _wake(self) -> None:
        async with self._room:
            self._room.notify_all()


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
