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
from helpers.judge.cost import DollarCap, estimate, price_for
from helpers.judge.scoring import Score
from helpers.judge.rubrics import METRICS, RUBRIC_SETS, RUBRICS, render, rubric_set
from helpers.models import cache_dir
from helpers.paper import check_same_file
from helpers.runs import atomic_write_csv, read_manifest, run_dir, write_manifest

__all__ = ["JudgeConfig", "JudgeBudgetError", "JudgeSetupError", "estimate_cost", "judge_run", "judge_summary",
           "judge_table", "read_generations"]

EMPTY = "empty_response"  # the reason of an answer with no text: never sent to the judge

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


def _keys_and_prompts(df, config: JudgeConfig, mode: str, base_url: str):
    """Per (row, metric) cache keys (None for an empty answer, which is never sent), and the unique prompts."""
    _check_columns(df, "the table")
    rubrics = rubric_set(config.rubrics, config.paper_commit)
    keys, prompts = [], {}
    for q, a in zip(df["question"], df["response"]):
        q, a = _text(q), _text(a)
        row = {}
        if not a.strip():
            keys.append(dict.fromkeys(config.metrics))
            continue
        for m in config.metrics:
            k = cache_key(config.judge_model, base_url, rubrics.templates[m], q, a, mode, config.temperature)
            prompts.setdefault(k, render(m, q, a, rubrics))
            row[m] = k
        keys.append(row)
    return keys, prompts


def _text(value) -> str:
    return "" if value is None or value != value else str(value)  # NaN -> ""


def _max_tokens_out(mode: str) -> int:
    return 1 if mode == "logprob" else PARSE_MAX_TOKENS


def _read_cache(config: JudgeConfig, prompts: dict, ledger: str | None) -> tuple[dict, float]:
    """(cached judgments among the prompts, what `ledger` has spent); a cache that does not exist is not created."""
    path = _cache_path(config)
    if not path.is_file():
        return {}, 0.0
    cache = JudgeCache(path)
    try:
        return {k: Score(**v) for k, v in cache.get_many(prompts).items()}, cache.spent(ledger) if ledger else 0.0
    finally:
        cache.close()


def estimate_cost(df, config: JudgeConfig | None = None, run_name: str | None = None) -> dict:
    """Calls still to make (cache hits are free), their input/output tokens and dollars, before anything runs.

    With `run_name`, the run's own cache and what the run has spent already count, as in judge_run."""
    config, ledger = _for_run(config, run_name)
    backend = make_backend(config)
    if backend.kind == "distilled":
        return {"judge_model": config.judge_model, "mode": "distilled", "judgments": len(df) * len(config.metrics),
                "calls": 0, "input_tokens": 0, "output_tokens": 0, "dollars": 0.0, "max_dollars": config.max_dollars,
                "price_note": "distilled judge on this machine: no calls, free"}
    mode = backend.effective_mode(config.mode)
    keys, prompts = _keys_and_prompts(df, config, mode, backend.base_url)
    cached, spent = _read_cache(config, prompts, ledger)
    return estimate(config, backend.base_url, mode, _max_tokens_out(mode), len(keys), prompts, cached, spent)


def _for_run(config: JudgeConfig, run_name: str | None) -> tuple[JudgeConfig, str | None]:
    """(config with the run's cache unless one is set, the run's ledger name); (config, None) without a run."""
    if run_name is None:
        return config, None
    folder = run_dir(run_name, create=False)
    if not config.cache_path:
        config = dataclasses.replace(config, cache_path=str(folder / "judge_cache.sqlite"))
    return config, folder.name


def _cache_path(config: JudgeConfig) -> Path:
    if config.cache_path:
        return Path(config.cache_path)
    return cache_dir() / "judge_cache.sqlite"


async def _run_calls(backend, todo: dict, mode: str, config: JudgeConfig, cache: JudgeCache, budget: DollarCap,
                     ledger: str | None, stop: threading.Event, bar) -> dict[str, Score]:
    """Make the calls; each result is written to the cache as it lands (errors are not), with its cost."""
    results: dict[str, Score] = {}

    def land(key: str, score: Score, dollars: float = 0.0) -> None:
        final = not score.missing.startswith("error")
        if final or ledger:
            cache.put(key if final else None, dataclasses.asdict(score), ledger, dollars)
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
            held = await budget.reserve(prompt)
            if held is None:
                results[key] = Score(None, f"error: dollar cap reached (max_dollars={config.max_dollars})", "", mode)
                return
            score, tin, tout = await backend.ajudge(prompt, mode)
            land(key, score, await budget.settle(held, prompt, tin, tout))

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
    return _judge(df, config or JudgeConfig(), ledger=None)


def _judge(df, config: JudgeConfig, ledger: str | None):
    """judge_table; with a `ledger` name, the cap covers everything spent under that name in the cache database."""
    backend = make_backend(config)
    if backend.kind == "distilled":
        return _judge_offline(df, config, backend)
    warning = weak_judge_warning(config)
    if warning:
        print("WARNING:", warning)
        log.info(warning)
    mode = backend.effective_mode(config.mode)
    keys, prompts = _keys_and_prompts(df, config, mode, backend.base_url)
    cached, spent_before = _read_cache(config, prompts, ledger)
    est = estimate(config, backend.base_url, mode, _max_tokens_out(mode), len(keys), prompts, cached, spent_before)
    if est["dollars"] > 0 and spent_before + est["dollars"] > config.max_dollars:
        earlier = f" on top of the ${spent_before:.4f} this run has spent already," if spent_before else ","
        raise JudgeBudgetError(
            f"judging would cost about ${est['dollars']:.4f} ({est['calls']} calls to {config.judge_model}){earlier} "
            f"above max_dollars=${config.max_dollars}: raise max_dollars, judge fewer rows (limit) or fewer metrics")
    if mode != config.mode:
        print(f"Note: judge {config.judge_model!r} has no single tokens for 0-100, so it judges in 'parse' mode.")
    todo = {k: p for k, p in prompts.items() if k not in cached}
    budget = DollarCap(config.max_dollars, price_for(config.backend, config.judge_model, backend.base_url,
                                                     config.prices)[:2], _max_tokens_out(mode), spent_before)
    fresh = {}
    if todo:
        if backend.kind == "openai":
            backend.require_key()
        from tqdm.auto import tqdm

        cache = JudgeCache(_cache_path(config))
        try:
            with tqdm(total=len(todo), desc=f"judging ({len(cached)} cached)", disable=not config.progress) as bar:
                fresh = _run_blocking(
                    lambda stop: _run_calls(backend, todo, mode, config, cache, budget, ledger, stop, bar))
        finally:
            cache.close()
    scores = {**cached, **fresh}
    out = df.copy()
    empty, lost = Score(None, EMPTY, "", mode), Score(None, "error: not judged", "", mode)
    got = {m: [empty if row[m] is None else scores.get(row[m], lost) for row in keys] for m in config.metrics}
    for m in config.metrics:
        out[m] = [float("nan") if s.score is None else float(s.score) for s in got[m]]
    for m in config.metrics:
        for part in ("mode", "raw", "missing"):
            out[f"{m}_{part}"] = [getattr(s, part) for s in got[m]]
    out["judge_model"] = config.judge_model
    rubrics = rubric_set(config.rubrics, config.paper_commit)
    out["rubrics"] = rubrics.name  # which rubric set scored the row (domain relevance is always the kit's)
    capped = {k for k, s in fresh.items() if s.missing.startswith("error: dollar cap")}
    skipped = capped | {k for k, s in fresh.items() if s.missing == "error: interrupted"}
    errors = sum(s.missing.startswith("error") for s in fresh.values()) - len(skipped)
    n_empty = sum(row[m] is None for row in keys for m in config.metrics) // len(config.metrics)
    unjudged = sum(any(row[m] in capped for m in config.metrics) for row in keys)
    out.attrs["judge"] = {"backend": config.backend, "judge_model": config.judge_model, "mode": mode,
                          "base_url": re.sub(r"//[^/@]*@", "//", backend.base_url),  # never credentials
                          "unique_prompts": len(prompts), "cache_hits": len(cached), "calls": len(fresh) - len(skipped),
                          "errors": errors, "empty_responses": n_empty, "not_judged_at_cap": unjudged,
                          "dollars": round(budget.total, 6), "dollars_this_call": round(budget.spent, 6),
                          "max_dollars": config.max_dollars, "warning": warning,
                          "rubrics": rubrics.name, "rubric_origin": {m: rubrics.origin[m] for m in config.metrics},
                          "rubric_source": rubrics.source}
    if warning:
        out.attrs["judge_warning"] = warning
    print(_report(len(prompts), len(cached), len(fresh) - len(skipped), errors, n_empty, budget, ledger))
    if capped:
        print(f"Stopped at the cap: ${budget.total:.4f} of ${config.max_dollars:g}, {unjudged} answers not judged "
              "(raise max_dollars and run again to judge them).")
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
        out[f"{m}_missing"] = [EMPTY if e else "" for e in empty]
    out["judge_model"] = config.judge_model
    out["rubrics"] = "distilled"  # learned from GPT-4o judgments with the EM papers' prompts; no rubric is sent
    out.attrs["judge"] = {"backend": "distilled", "judge_model": config.judge_model, "mode": "distilled",
                          "base_url": backend.base_url, "unique_prompts": 0, "cache_hits": 0, "calls": 0,
                          "errors": 0, "empty_responses": sum(empty), "dollars": 0.0, "warning": None,
                          "rubrics": "distilled",
                          "model_card": "helpers/judge/distilled/data/MODEL_CARD.md"}
    print(f"Judged {len(df)} answers offline with the distilled judge (learned from GPT-4o judgments; how far to "
          f"trust it: helpers/judge/distilled/data/MODEL_CARD.md); {sum(empty)} empty answers left unscored.")
    return out


def _report(n_prompts: int, n_cached: int, n_new: int, errors: int, n_empty: int, budget: DollarCap,
            ledger: str | None) -> str:
    """The one-line account of a judging call."""
    line = f"Judged {n_prompts} prompts: {n_cached} from the cache, {n_new} new"
    if errors:
        line += f", {errors} errors (rerun to retry them)"
    if n_empty:
        line += f"; {n_empty} empty answers not sent (missing: {EMPTY})"
    line += f"; about ${budget.spent:.4f}"
    return line + (f" (${budget.total:.4f} for this run in all)." if ledger and budget.spent_before else ".")


def judge_run(run_name: str, config: JudgeConfig | None = None, limit: int | None = None):
    """Judge `runs/<run>/generations.csv`, write `runs/<run>/judged.csv` atomically, and return it.

    The dollar cap covers the run's total: what earlier calls on this run spent counts (kept in its cache)."""
    generations = read_generations(run_name, limit)  # a mistyped run name fails here, before anything is written
    config = config or JudgeConfig()
    if config.rubrics == "paper" and config.backend != "distilled":  # the prompts must match the questions' file
        asked = (read_manifest(run_name).get("generate") or {}).get("question_files") or {}
        sha = next((v for k, v in asked.items() if k.startswith("paper")), None)
        check_same_file({"sha256": sha} if sha else None, rubric_set("paper", config.paper_commit).source,
                        f"run {Path(str(run_name)).name!r}'s questions")
    config, ledger = _for_run(config, run_name)
    judged = _judge(generations, config, ledger=ledger)
    atomic_write_csv(judged, run_dir(run_name, create=False) / "judged.csv")
    print(f"Wrote judged.csv ({len(judged)} rows) in run {ledger!r}.")
    info = {k: v for k, v in judged.attrs["judge"].items() if k != "warning"}
    write_manifest(run_name, {**info, "metrics": list(config.metrics), "rows": len(judged)}, section="judge",
                   replace=True)  # a judge section from an earlier judge would mix two judges' fields
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
    table = pd.DataFrame(rows).T.fillna(0)
    return table.astype({c: float if c == "mean" else int for c in table.columns})  # counts: 153, not 153.0
