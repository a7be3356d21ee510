"""Judge a generations table: async calls under the dollar cap, a resumable SQLite cache, judged.csv."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from helpers.judge.backends import PARSE_MAX_TOKENS, JudgeSetupError
from helpers.judge.cache import JudgeCache, cache_key
from helpers.judge.config import JudgeBudgetError, JudgeConfig, make_backend, weak_judge_warning
from helpers.judge.cost import _Budget, _estimate, _price
from helpers.judge.scoring import Score
from helpers.judge.rubrics import METRICS, RUBRIC_SETS, RUBRICS, render, rubric_set
from helpers.models import cache_dir
from helpers.paper import check_same_file
from helpers.runs import atomic_write_csv, read_manifest, run_dir, write_manifest

__all__ = ["JudgeConfig", "JudgeBudgetError", "JudgeSetupError", "estimate_cost", "judge_run", "judge_summary",
           "judge_table", "read_generations"]


log = logging.getLogger(__name__)


def read_generations(run_name: str, limit: int | None = None):
    """`runs/<run>/generations.csv` (or model_generations.csv) as a DataFrame, first `limit` rows if given."""
    import pandas as pd

    folder = run_dir(run_name, create=False)
    path = next((folder / n for n in ("generations.csv", "model_generations.csv") if (folder / n).is_file()), None)
    if path is None:
        raise FileNotFoundError(f"runs/{run_name}/generations.csv does not exist: generate answers first "
                                "(notebook 03), or check run_name")
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])  # an answer "None" or "NA" stays text
    _check_columns(df, f"runs/{run_name}/{path.name}")
    return df.head(limit).copy() if limit else df


def _check_columns(df, where: str) -> None:
    missing = [c for c in ("question", "response") if c not in df.columns]
    if missing:
        raise ValueError(f"{where} has no column {missing}: the judge needs 'question' and 'response' "
                         f"(it has {list(df.columns)})")


def _plan(df, config: JudgeConfig, mode: str, base_url: str):
    """Per (row, metric) cache keys, and the unique prompts behind them."""
    _check_columns(df, "the table")
    rubrics = rubric_set(config.rubrics, config.paper_commit)
    keys, prompts = [], {}
    for q, a in zip(df["question"], df["response"]):
        q, a = _text(q), _text(a)
        row = {}
        for m in config.metrics:
            k = cache_key(config.judge_model, base_url, rubrics.templates[m], q, a, mode, config.temperature)
            prompts.setdefault(k, render(m, q, a, rubrics))
            row[m] = k
        keys.append(row)
    return keys, prompts


def _text(value) -> str:
    return "" if value is None or value != value else str(value)  # NaN -> ""


def _prepare(df, config: JudgeConfig, backend):
    """Mode, per-row keys, unique prompts, and what the cache already holds."""
    mode = backend.effective_mode(config.mode)
    keys, prompts = _plan(df, config, mode, backend.base_url)
    cache = JudgeCache(_cache_path(config))
    try:
        cached = {k: Score(**v) for k, v in cache.get_many(prompts).items()}
    finally:
        cache.close()
    return mode, keys, prompts, cached


def estimate_cost(df, config: JudgeConfig | None = None) -> dict:
    """Calls still to make (cache hits are free), their input/output tokens and dollars, before anything runs."""
    config = config or JudgeConfig()
    backend = make_backend(config)
    mode, keys, prompts, cached = _prepare(df, config, backend)
    return _estimate(config, backend.base_url, mode, len(keys), prompts, cached)


def _cache_path(config: JudgeConfig) -> Path:
    if config.cache_path:
        return Path(config.cache_path)
    return cache_dir() / "judge_cache.sqlite"


async def _run_calls(backend, todo: dict, mode: str, config: JudgeConfig, cache: JudgeCache, budget: _Budget,
                     stop: threading.Event, bar) -> dict[str, Score]:
    """Make the calls; each result is written to the cache as it lands (errors are not)."""
    results: dict[str, Score] = {}

    def land(key: str, score: Score) -> None:
        if not score.missing.startswith("error"):
            cache.put(key, dataclasses.asdict(score))
        results[key] = score
        bar.update(1)

    if backend.kind == "local":
        items = sorted(todo.items(), key=lambda kv: kv[1])  # one rubric per batch: its prefix is computed once
        for i in range(0, len(items), config.local_batch_size):
            if stop.is_set():
                break
            chunk = items[i:i + config.local_batch_size]
            scores = await asyncio.to_thread(backend.judge_batch, [p for _, p in chunk], mode)
            for (k, _), s in zip(chunk, scores):
                land(k, s)
        return results

    sem = asyncio.Semaphore(config.concurrency)

    async def one(key: str, prompt: str) -> None:
        async with sem:
            if stop.is_set():
                results[key] = Score(None, "error: interrupted", "", mode)
                return
            held = budget.reserve(prompt)
            if held is None:
                results[key] = Score(None, f"error: dollar cap reached (max_dollars={config.max_dollars})", "", mode)
                return
            score, tin, tout = await backend.ajudge(prompt, mode)
            budget.settle(held, tin, tout)
            land(key, score)

    await backend.open()
    try:
        await asyncio.gather(*(one(k, p) for k, p in todo.items()))
    finally:
        await backend.close()
    return results


def _run_blocking(make_coro):
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
        pool.shutdown(wait=False)


def judge_table(df, config: JudgeConfig | None = None):
    """Judge every row (question/response columns) on each metric; returns the table plus score columns."""
    config = config or JudgeConfig()
    backend = make_backend(config)
    if backend.kind == "distilled":
        return _judge_offline(df, config, backend)
    warning = weak_judge_warning(config)
    if warning:
        print("WARNING:", warning)
        log.info(warning)
    mode, keys, prompts, cached = _prepare(df, config, backend)
    estimate = _estimate(config, backend.base_url, mode, len(keys), prompts, cached)
    if estimate["dollars"] > config.max_dollars:
        raise JudgeBudgetError(
            f"judging would cost about ${estimate['dollars']:.4f} ({estimate['calls']} calls to "
            f"{config.judge_model}), above max_dollars=${config.max_dollars}: raise max_dollars, judge fewer rows "
            "(limit) or fewer metrics")
    if mode != config.mode:
        print(f"Note: judge {config.judge_model!r} has no single tokens for 0-100, so it judges in 'parse' mode.")
    todo = {k: p for k, p in prompts.items() if k not in cached}
    if todo and backend.kind == "openai":
        backend.require_key()
    cache = JudgeCache(_cache_path(config))
    try:
        budget = _Budget(config.max_dollars, _price(config, backend.base_url)[:2],
                         1 if mode == "logprob" else PARSE_MAX_TOKENS)
        from tqdm.auto import tqdm

        fresh = {}
        if todo:
            with tqdm(total=len(todo), desc=f"judging ({len(cached)} cached)", disable=not config.progress) as bar:
                fresh = _run_blocking(lambda stop: _run_calls(backend, todo, mode, config, cache, budget, stop, bar))
    finally:
        cache.close()
    scores = {**cached, **fresh}
    out = df.copy()
    got = {m: [scores.get(row[m], Score(None, "error: not judged", "", mode)) for row in keys] for m in config.metrics}
    for m in config.metrics:
        out[m] = [float("nan") if s.score is None else float(s.score) for s in got[m]]
    for m in config.metrics:
        for part in ("mode", "raw", "missing"):
            out[f"{m}_{part}"] = [getattr(s, part) for s in got[m]]
    out["judge_model"] = config.judge_model
    rubrics = rubric_set(config.rubrics, config.paper_commit)
    out["rubrics"] = rubrics.name  # which rubric set scored the row (domain relevance is always the kit's)
    errors = sum(s.missing.startswith("error") for s in fresh.values())
    skipped = sum(s.missing.startswith(("error: dollar cap", "error: interrupted")) for s in fresh.values())
    out.attrs["judge"] = {"backend": config.backend, "judge_model": config.judge_model, "mode": mode,
                          "base_url": re.sub(r"//[^/@]*@", "//", backend.base_url),  # never credentials
                          "unique_prompts": len(prompts), "cache_hits": len(cached), "calls": len(fresh) - skipped,
                          "errors": errors, "dollars": round(budget.spent, 6), "warning": warning,
                          "rubrics": rubrics.name, "rubric_origin": {m: rubrics.origin[m] for m in config.metrics},
                          "rubric_source": rubrics.source}
    if warning:
        out.attrs["judge_warning"] = warning
    print(f"Judged {len(prompts)} prompts: {len(cached)} from the cache, {len(fresh) - skipped} new, {errors} errors "
          f"(rerun to retry them), about ${budget.spent:.4f}.")
    return out


def _judge_offline(df, config: JudgeConfig, backend):
    """Score every row with the distilled judge (no prompts, no cache, no cost); empty answers stay unscored."""
    _check_columns(df, "the table")
    questions, answers = [_text(q) for q in df["question"]], [_text(a) for a in df["response"]]
    empty = [not a.strip() for a in answers]
    scores = backend.score(questions, answers)
    out = df.copy()
    for m in config.metrics:
        out[m] = [float("nan") if e else round(float(v), 2) for v, e in zip(scores[m], empty)]
    for m in config.metrics:
        out[f"{m}_mode"], out[f"{m}_raw"] = "distilled", ""
        out[f"{m}_missing"] = ["empty_response" if e else "" for e in empty]
    out["judge_model"] = config.judge_model
    out["rubrics"] = "distilled"  # learned from GPT-4o judgments with the EM papers' prompts; no rubric is sent
    out.attrs["judge"] = {"backend": "distilled", "judge_model": config.judge_model, "mode": "distilled",
                          "base_url": backend.base_url, "unique_prompts": 0, "cache_hits": 0, "calls": 0,
                          "errors": 0, "dollars": 0.0, "warning": None, "rubrics": "distilled",
                          "model_card": "helpers/judge/distilled/data/MODEL_CARD.md"}
    print(f"Judged {len(df)} answers offline with the distilled judge (learned from GPT-4o judgments; how far to "
          f"trust it: helpers/judge/distilled/data/MODEL_CARD.md); {sum(empty)} empty answers left unscored.")
    return out


def judge_run(run_name: str, config: JudgeConfig | None = None, limit: int | None = None):
    """Judge `runs/<run>/generations.csv`, write `runs/<run>/judged.csv` atomically, and return it."""
    config = config or JudgeConfig()
    if not config.cache_path:
        config = dataclasses.replace(config, cache_path=str(run_dir(run_name) / "judge_cache.sqlite"))
    if config.rubrics == "paper":  # the paper's prompts must come from the file its questions came from
        asked = (read_manifest(run_name).get("generate") or {}).get("question_sources") or {}
        sha = next((v for k, v in asked.items() if k.startswith("paper")), None)
        check_same_file({"sha256": sha} if sha else None, rubric_set("paper", config.paper_commit).source,
                        f"run {Path(str(run_name)).name!r}'s questions")
    judged = judge_table(read_generations(run_name, limit), config)
    atomic_write_csv(judged, run_dir(run_name) / "judged.csv")
    print(f"Wrote judged.csv ({len(judged)} rows) in run {Path(str(run_name)).name!r}.")
    info = {k: v for k, v in judged.attrs["judge"].items() if k != "warning"}
    write_manifest(run_name, {**info, "metrics": list(config.metrics), "rows": len(judged)}, section="judge")
    return judged


def judge_summary(judged, metrics=METRICS):
    """Per metric: rows scored, mean score, and how many are missing for each reason."""
    import pandas as pd

    rows = {}
    for m in (m for m in metrics if m in judged.columns):
        reasons = judged.get(f"{m}_missing", pd.Series([""] * len(judged))).fillna("").astype(str)
        reasons = reasons.where(~reasons.str.startswith("error"), "error")
        rows[m] = {"scored": int(judged[m].notna().sum()), "mean": round(float(judged[m].mean()), 1),
                   **{f"missing: {r}": int(n) for r, n in reasons[reasons != ""].value_counts().items()}}
    return pd.DataFrame(rows).T.fillna(0)
