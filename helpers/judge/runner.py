"""Judge a generations table through a backend's seam (estimate, judge): answers cut to a length limit, empty ones
never sent, judged.csv written atomically, and a closing line that counts every unscored row by reason."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter
from pathlib import Path

from helpers.judge.backends import JudgeSetupError
from helpers.judge.config import JudgeBudgetError, JudgeConfig, make_backend, weak_judge_warning
from helpers.judge.prompted import CAP_REASON
from helpers.judge.rubrics import METRICS
from helpers.judge.scoring import Score
from helpers.runs import atomic_write_csv, not_utf8, read_manifest, run_dir, write_manifest

__all__ = ["JudgeConfig", "JudgeBudgetError", "JudgeSetupError", "estimate_cost", "judge_run", "judge_summary",
           "judge_table", "read_generations"]

EMPTY = "empty_response"  # the reason of an answer with no text: never sent to the judge
CUT_COLUMN = "cut_for_judge"  # True where the judge saw only the first max_answer_chars characters of the answer

log = logging.getLogger(__name__)


def read_generations(run_name: str, limit: int | None = None):
    """`runs/<run>/generations.csv` (or model_generations.csv) as a DataFrame, first `limit` rows if given."""
    import pandas as pd

    folder = run_dir(run_name, create=False)
    path = next((folder / n for n in ("generations.csv", "model_generations.csv") if (folder / n).is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{folder / 'generations.csv'} does not exist: generate answers first "
                                "(notebook 03), or check run_name")
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""], encoding="utf-8")  # "None", "NA" stay text
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    _check_columns(df, str(path))
    return df.head(limit).copy() if limit else df


def _check_columns(df, where: str) -> None:
    missing = [c for c in ("question", "response") if c not in df.columns]
    if missing:
        raise ValueError(f"{where} has no column {missing}: the judge needs 'question' and 'response' "
                         f"(it has {list(df.columns)})")


def _text(value) -> str:
    return "" if value is None or value != value else str(value)  # NaN -> ""


def _for_judge(df, config: JudgeConfig):
    """(questions, answers cut to max_answer_chars, which were cut, which are empty) of a table."""
    _check_columns(df, "the table")
    questions, answers = [_text(q) for q in df["question"]], [_text(a) for a in df["response"]]
    limit, empty = config.max_answer_chars, [not a.strip() for a in answers]
    cut = [len(a) > limit and not e for a, e in zip(answers, empty)]
    answers = [f"{a[:limit]}\n[... cut for the judge: {len(a):,} characters in all]" if c else a
               for a, c in zip(answers, cut)]
    return questions, answers, cut, empty


def estimate_cost(df, config: JudgeConfig | None = None, run_name: str | None = None) -> dict:
    """Calls still to make (cache hits are free), their input/output tokens and dollars, before anything runs.

    With `run_name`, the run's own cache and what the run has spent already count, as in judge_run."""
    config, ledger = _for_run(config or JudgeConfig(), run_name)
    questions, answers, _, empty = _for_judge(df, config)
    keep = [i for i, e in enumerate(empty) if not e]
    return make_backend(config).estimate([questions[i] for i in keep], [answers[i] for i in keep], config, ledger)


def _for_run(config: JudgeConfig, run_name: str | None) -> tuple[JudgeConfig, str | None]:
    """(config with the run's cache unless one is set, the run's ledger name); (config, None) without a run."""
    if run_name is None:
        return config, None
    folder = run_dir(run_name, create=False)
    if not config.cache_path:
        config = dataclasses.replace(config, cache_path=str(folder / "judge_cache.sqlite"))
    return config, folder.name


def judge_table(df, config: JudgeConfig | None = None):
    """Judge every row (question/response columns) on each metric; returns the table plus score columns."""
    return _judge(df, config or JudgeConfig(), ledger=None)


def _judge(df, config: JudgeConfig, ledger: str | None, retry: str = "judge_table(df, config)"):
    """judge_table; with a `ledger` name, the cap covers everything spent under that name in the cache database."""
    backend = make_backend(config)
    warning = weak_judge_warning(config)
    if warning:
        print("WARNING:", warning)
        log.info(warning)
    questions, answers, cut, empty = _for_judge(df, config)
    keep = [i for i, e in enumerate(empty) if not e]
    sources = [df["model"].iloc[i] for i in keep] if "model" in df.columns else None
    judged = backend.judge([questions[i] for i in keep], [answers[i] for i in keep], config, ledger, sources)
    mode = judged.info["mode"]
    got = {m: [Score(None, EMPTY, "", mode)] * len(df) for m in config.metrics}
    for m in config.metrics:
        for i, s in zip(keep, judged.scores[m]):
            got[m][i] = s
    out = df.copy()
    for m in config.metrics:
        out[m] = [float("nan") if s.score is None else float(s.score) for s in got[m]]
    for m in config.metrics:
        for part in ("mode", "raw", "missing"):
            out[f"{m}_{part}"] = [getattr(s, part) for s in got[m]]
    out["judge_model"] = config.judge_model
    out["rubrics"] = judged.info["rubrics"]  # which rubric set scored the row (domain relevance is always the kit's)
    out[CUT_COLUMN] = cut
    reasons = _unscored(got, config.metrics)
    capped = reasons.get("dollar cap", 0)
    out.attrs["judge"] = {"backend": config.backend, "judge_model": config.judge_model,
                          "base_url": re.sub(r"//[^/@]*@", "//", backend.base_url),  # never credentials
                          **judged.info, "errors": sum(n for r, n in _reasons(got).items() if r.startswith("error")),
                          "empty_responses": sum(empty), "not_judged_at_cap": capped, "unscored": reasons,
                          CUT_COLUMN: sum(cut), "warning": warning}
    if warning:
        out.attrs["judge_warning"] = warning
    print(_report(out.attrs["judge"], len(df), ledger, retry))
    if capped:
        print(f"Stopped at the cap: ${judged.info['dollars']:.4f} of ${config.max_dollars:g}, {capped} answers not "
              "judged (raise max_dollars and run again to judge them).")
    return out


def _reason(missing: str) -> str:
    """A missing score's reason, short: 'dollar cap', 'error <kind>' (retried on the next run) or a final reason."""
    if missing.startswith(CAP_REASON):
        return "dollar cap"
    if missing.startswith("error: "):
        return "error " + missing[7:].split(":")[0]
    return missing


def _reasons(got: dict) -> Counter:
    """Judgments (answer x metric) without a score, by reason."""
    return Counter(_reason(s.missing) for scores in got.values() for s in scores if s.score is None)


def _unscored(got: dict, metrics) -> dict:
    """Answers without a score on some metric, by reason (an answer counts once per reason it has)."""
    rows = zip(*(got[m] for m in metrics))
    return dict(Counter(r for row in rows for r in {_reason(s.missing) for s in row if s.score is None}))


def _report(info: dict, n_rows: int, ledger: str | None, retry: str) -> str:
    """The closing account of a judging call: what was judged, what it cost, what is unscored and why, how to retry."""
    line = f"Judged {n_rows} answers with {info['judge_model']}"
    if info["unique_prompts"]:
        line += f": {info['unique_prompts']} prompts, {info['cache_hits']} from the cache, {info['calls']} new"
        line += f" ({info['attempts']} requests with the retries)" if info["attempts"] > info["calls"] else ""
    if info.get("model_card"):
        heads = info.get("heads", {})
        line += (f" (offline, fitted to readers' grades and GPT-4o judgments; {heads.get('reading', 0)} answers read "
                 f"with the embedded model, {heads.get('text', 0)} by the text heads; how far to trust it: {info['model_card']})")
    if info["dollars_this_call"] or info["dollars"]:
        line += f"; about ${info['dollars_this_call']:.4f}"
        line += f" (${info['dollars']:.4f} for this run in all)" if ledger and info["dollars"] else ""
    line += "."
    if info[CUT_COLUMN]:
        line += f" {info[CUT_COLUMN]} answers were cut for the judge (column {CUT_COLUMN})."
    unscored = info["unscored"]
    if unscored:
        parts = [f"{n} empty answers not sent (missing: {EMPTY})" if r == EMPTY else f"{n} {r}"
                 for r, n in sorted(unscored.items())]
        line += f"\nUnscored answers by reason: {', '.join(parts)}."
        if any(r == "dollar cap" or r.startswith("error") for r in unscored):
            line += f" Retry the unscored ones: {retry} (only they are sent; cached judgments are not paid again)."
    return line


def judge_run(run_name: str, config: JudgeConfig | None = None, limit: int | None = None):
    """Judge `runs/<run>/generations.csv`, write `runs/<run>/judged.csv` atomically, and return it.

    The dollar cap covers the run's total: what earlier calls on this run spent counts (kept in its cache)."""
    generations = read_generations(run_name, limit)  # a mistyped run name fails here, before anything is written
    config = config or JudgeConfig()
    asked = (read_manifest(run_name).get("generate") or {}).get("question_files") or {}
    make_backend(config).check_questions(asked, f"run {Path(str(run_name)).name!r}'s questions", config)
    config, ledger = _for_run(config, run_name)
    run = str(run_name)  # as given: a checkpoint run is a path, its ledger only the folder's name
    retry = f"rerun the judging cell of notebook 04 (run_name={run!r})"  # the kit has no judging command
    judged = _judge(generations, config, ledger=ledger, retry=retry)
    atomic_write_csv(judged, run_dir(run_name, create=False) / "judged.csv")
    print(f"Wrote judged.csv ({len(judged)} rows) in run {run!r}.")
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
