"""Judging by prompts (the OpenAI and local backends): one prompt per answer and metric, the resumable cache, and the
dollar cap over the run's ledger."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from helpers.judge.cache import JudgeCache, cache_key
from helpers.judge.cost import DollarCap, estimate, price_for
from helpers.judge.rubrics import render, rubric_set
from helpers.judge.scoring import Score

PARSE_MAX_TOKENS = 8
CAP_REASON = "error: dollar cap reached"
INTERRUPTED = "error: interrupted"


class JudgeBudgetError(ValueError):
    """The estimated cost, with what the run has spent already, is above `max_dollars`."""


@dataclasses.dataclass
class Judged:
    """What a backend returns: per metric one Score per answer, and what the judging did (for attrs and manifest)."""

    scores: dict
    info: dict


def max_tokens_out(mode: str) -> int:
    return 1 if mode == "logprob" else PARSE_MAX_TOKENS


def cache_path(config) -> Path:
    from helpers.models import cache_dir

    return Path(config.cache_path) if config.cache_path else cache_dir() / "judge_cache.sqlite"


def keys_and_prompts(questions, answers, config, mode: str, base_url: str):
    """Per answer a {metric: cache key}, and the unique prompts by key."""
    rubrics = rubric_set(config.rubrics, config.paper_commit)
    keys, prompts = [], {}
    for q, a in zip(questions, answers):
        row = {}
        for m in config.metrics:
            k = cache_key(config.judge_model, base_url, rubrics.templates[m], q, a, mode, config.temperature)
            prompts.setdefault(k, render(m, q, a, rubrics))
            row[m] = k
        keys.append(row)
    return keys, prompts


def read_cache(config, prompts: dict, ledger: str | None) -> tuple[dict, float]:
    """(cached judgments among the prompts, what `ledger` has spent); a cache that does not exist is not created."""
    path = cache_path(config)
    if not path.is_file():
        return {}, 0.0
    cache = JudgeCache(path)
    try:
        return {k: Score(**v) for k, v in cache.get_many(prompts).items()}, cache.spent(ledger) if ledger else 0.0
    finally:
        cache.close()


def run_blocking(make_coro):
    """Run a coroutine from a script (asyncio.run) or from a notebook cell whose loop is already running."""
    stop = threading.Event()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro(stop))
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge")
    future = pool.submit(asyncio.run, make_coro(stop))
    try:
        return future.result()
    except BaseException:
        stop.set()  # an interrupted cell: calls in flight finish and are cached, no new ones start
        raise
    finally:
        pool.shutdown(wait=True)  # so every hold is settled before the cache closes (a rerun finds none)


class PromptBackend:
    """The seam shared by the judges that read a rubric prompt: estimate and judge; subclasses make the calls."""

    kind = base_url = ""

    def effective_mode(self, mode: str) -> str:
        return mode

    def check_ready(self) -> None:
        """Raise a clear error before any call when the judge cannot start (a missing key)."""

    def check_questions(self, asked: dict, where: str, config) -> None:
        """With the paper's rubrics, the run's questions must come from the same file (`asked`: file -> sha256)."""
        if config.rubrics == "paper":
            from helpers.paper import check_same_file

            sha = next((v for k, v in asked.items() if k.startswith("paper")), None)
            check_same_file({"sha256": sha} if sha else None, rubric_set("paper", config.paper_commit).source, where)

    def price(self, config) -> tuple[float, float, str]:
        return price_for(self.kind, config.judge_model, self.base_url, config.prices)

    def estimate(self, questions, answers, config, ledger: str | None) -> dict:
        """Calls still to make (cache hits are free), their tokens and dollars, and what the run has spent already."""
        mode = self.effective_mode(config.mode)
        keys, prompts = keys_and_prompts(questions, answers, config, mode, self.base_url)
        cached, spent = read_cache(config, prompts, ledger)
        return estimate(config, self.base_url, mode, max_tokens_out(mode), len(keys), prompts, cached, spent)

    def judge(self, questions, answers, config, ledger: str | None, sources=None) -> Judged:
        """Score every (answer, metric) through the cache; new calls stay under the cap of `ledger` (None: this
        call only). `sources` (the models that wrote the answers) does not change a prompted judgment."""
        mode = self.effective_mode(config.mode)
        if mode != config.mode:
            print(f"Note: judge {config.judge_model!r} has no single tokens for 0-100, so it judges in 'parse' mode.")
        keys, prompts = keys_and_prompts(questions, answers, config, mode, self.base_url)
        cached, spent_before = read_cache(config, prompts, ledger)
        est = estimate(config, self.base_url, mode, max_tokens_out(mode), len(keys), prompts, cached, spent_before)
        if est["dollars"] > 0 and spent_before + est["dollars"] > config.max_dollars:
            earlier = f" on top of the ${spent_before:.4f} this run has spent already," if spent_before else ","
            raise JudgeBudgetError(
                f"judging would cost about ${est['dollars']:.4f} ({est['calls']} calls to {config.judge_model})"
                f"{earlier} above max_dollars=${config.max_dollars}: raise max_dollars, judge fewer rows (limit) "
                "or fewer metrics")
        todo = {k: p for k, p in prompts.items() if k not in cached}
        fresh, hits, attempts, spent, total = {}, set(), 0, 0.0, spent_before
        if todo:
            self.check_ready()
            fresh, hits, attempts, spent, total = self._call(todo, mode, config, ledger)
        scores = {**cached, **fresh}
        lost = Score(None, "error: not judged", "", mode)
        skipped = (CAP_REASON, INTERRUPTED)
        calls = sum(k not in hits and not s.missing.startswith(skipped) for k, s in fresh.items())
        rubrics = rubric_set(config.rubrics, config.paper_commit)
        return Judged({m: [scores.get(row[m], lost) for row in keys] for m in config.metrics},
                      {"mode": mode, "unique_prompts": len(prompts), "cache_hits": len(cached) + len(hits), "calls": calls,
                       "attempts": attempts, "dollars": round(total, 6), "dollars_this_call": round(spent, 6),
                       "max_dollars": config.max_dollars, "rubrics": rubrics.name,
                       "rubric_origin": {m: rubrics.origin[m] for m in config.metrics},
                       "rubric_source": rubrics.source})

    def _call(self, todo: dict, mode: str, config, ledger: str | None):
        """(scores of the prompts not cached, those another process judged meanwhile, attempts that reached a server,
        their dollars, the ledger's total)."""
        from tqdm.auto import tqdm

        wait_s = config.timeout * (config.max_retries + 1) + 60
        cache = JudgeCache(cache_path(config), hold_s=wait_s)  # a hold older than the wait counts as spent
        name = ledger or f"table-{uuid.uuid4().hex}"  # judge_table: a cap for this call only
        cap = DollarCap(cache, name, config.max_dollars, self.price(config)[:2], max_tokens_out(mode), wait_s=wait_s)
        results: dict[str, Score] = {}
        hits: set[str] = set()
        try:
            with tqdm(total=len(todo), desc="judging", disable=not config.progress) as bar:
                def land(key: str, score: Score, stored: bool = False, hit: bool = False) -> None:
                    if not stored and not score.missing.startswith("error"):
                        cache.put(key, dataclasses.asdict(score))
                    results[key] = score
                    if hit:
                        hits.add(key)
                    bar.update(1)

                run_blocking(lambda stop: self.run_calls(todo, mode, config, cap, stop, land))
            return results, hits, cap.attempts, cap.spent, cap.total
        finally:
            if ledger is None:
                cache.forget(name)
            cache.close()

    async def run_calls(self, todo: dict, mode: str, config, cap: DollarCap, stop: threading.Event, land) -> None:
        """Judge every prompt of `todo` ({key: prompt}); `land(key, score, stored, hit)` records each result (stored:
        already in the cache; hit: another process judged it)."""
        raise NotImplementedError
