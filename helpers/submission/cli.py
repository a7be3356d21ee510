"""`python -m helpers.submission`: check, grade, pack, autograde, base-means."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from helpers.submission.grade import EXIT_CODES, EXIT_INVALID, EXIT_PASS

EPILOG = "exit codes: " + "; ".join(f"{code} = {text}" for code, text in EXIT_CODES.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers.submission", epilog=EPILOG,
                                     description="The course's hand-in: check, grade, pack and autograde.")
    sub = parser.add_subparsers(dest="command", required=True)
    parser.commands = sub.choices  # {command: its parser}: errors name that command's flags
    p = sub.add_parser("check", help="validate model_generations.csv, training_details.md and judged.csv", epilog=EPILOG)
    p.add_argument("run", help="run folder (runs/<run>), run name or hand-in folder")
    p.add_argument("--expected-rows", type=int, default=None,
                   help="rows asked for (default: from the run's manifest; elsewhere at most 20, the course's rule)")
    p = sub.add_parser("grade", help="mean aligned/coherent of a judged run vs the base model and the course bar",
                       epilog=EPILOG)
    p.add_argument("run", help="run folder (runs/<run>) or run name")
    p.add_argument("--base-run", default=None, help="base run to compare with (default: base-<model>)")
    p.add_argument("--question-set", default="probes", help="question set to grade ('' = all answers)")
    p.add_argument("--n-boot", type=int, default=2000)
    p = sub.add_parser("pack", help="write the hand-in of a trained run: model_generations.csv (the 20 course "
                       "questions), training_details.md, train.py")
    p.add_argument("run", help="run folder (runs/<run>) or run name")
    p.add_argument("dest", help="folder to write the three files into (created if needed)")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the run's "
                   "profile: 0.8 on the embedded model, readable; 1.0 on a GPU profile, as in the papers)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus cut (default: the run's profile: 0.9 on the "
                   "embedded model, 1.0 on a GPU profile)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="answer length in tokens (default: the run's "
                   "profile: 64 on the embedded model, ending at the last full sentence; 256+ on a GPU profile)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default 0)")
    p = sub.add_parser("autograde", help="the course's grader: format checks, judge the first 20 answers, "
                       "means vs the base model, PASS/FAIL", epilog=EPILOG)
    p.add_argument("folder", help="hand-in folder with model_generations.csv")
    _judge_options(p)
    p.add_argument("--base-means", default=None, help="the base model's means: a JSON file written by `base-means` "
                   "or a judged CSV")
    p.add_argument("--base-model", default=None, help="compute the base model's means on the same questions "
                   "(generated and judged once, then cached)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="length of the base model's answers (default 256)")
    p = sub.add_parser("base-means", help="the base model's mean aligned/coherent on the course questions, as JSON")
    p.add_argument("--model", required=True, help="base model, e.g. meta-llama/Llama-3.2-1B-Instruct")
    p.add_argument("--questions-from", default=None, help="a hand-in folder whose questions to use "
                   "(default: the kit's 20 course questions)")
    p.add_argument("--out", default=None, help="write the JSON here too (autograde --base-means reads it)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="length of the base model's answers (default 256)")
    _judge_options(p)
    return parser


def _judge_options(p) -> None:
    p.add_argument("--backend", default=None, help="judge backend: openai (default, as the course), distilled (offline) or local")
    p.add_argument("--judge-model", default=None, help="judge model (default gpt-4o-mini, as the course)")
    p.add_argument("--mode", default=None, help="parse (default: a number parsed from the reply, as the course) "
                   "or logprob")
    p.add_argument("--temperature", type=float, default=None, help="judge temperature (default 0.2, as the course)")
    p.add_argument("--base-url", default=None, help="an OpenAI-compatible server (default $OPENAI_BASE_URL or OpenAI)")
    p.add_argument("--max-dollars", type=float, default=None, help="hard cap on judge spend (default: the kit's)")
    p.add_argument("--cache-dir", default=None, help="where judgments and base means are cached (default: the kit's "
                   "cache, $EM_KIT_CACHE)")


def _config(args):
    from helpers.submission.autograde import judge_config

    cache = str(Path(args.cache_dir) / "judge_cache.sqlite") if args.cache_dir else None
    return judge_config(backend=args.backend, judge_model=args.judge_model, mode=args.mode,
                        temperature=args.temperature, base_url=args.base_url, max_dollars=args.max_dollars,
                        cache_path=cache, progress=False)


def _sampling(args) -> dict:
    return {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from helpers.cli_errors import as_flags
    from helpers.judge.backends import JudgeSetupError
    from helpers.judge.config import JudgeBudgetError

    try:
        return COMMANDS[args.command](args)
    except (FileNotFoundError, ValueError, JudgeSetupError, JudgeBudgetError) as e:
        print(f"error: {as_flags(str(e), parser.commands[args.command])}", file=sys.stderr)
        return EXIT_INVALID


def _check(args) -> int:
    from helpers.submission.check import check_submission

    errors = check_submission(args.run, expected_rows=args.expected_rows)
    for e in errors[:50]:
        print(e)
    if len(errors) > 50:
        print(f"... and {len(errors) - 50} more")
    print(f"{len(errors)} problem(s) found" if errors else "submission OK: model_generations.csv and "
          "training_details.md are ready")
    return EXIT_INVALID if errors else EXIT_PASS


def _grade(args) -> int:
    from helpers.runs import run_dir
    from helpers.submission.check import run_not_found
    from helpers.submission.grade import format_grade, grade

    if not run_dir(args.run, create=False).is_dir():
        raise FileNotFoundError(run_not_found(args.run))
    result = grade(args.run, base_run=args.base_run, n_boot=args.n_boot, question_set=args.question_set)
    print(format_grade(result))
    return result["verdict"]["exit_code"]


def _pack(args) -> int:
    from helpers.submission.pack import pack

    pack(args.run, args.dest, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
         seed=args.seed)
    return EXIT_PASS


def _autograde(args) -> int:
    from helpers.submission.autograde import (autograde, base_means, format_autograde, format_problems,
                                              read_answers, read_base_means)

    config = _config(args)
    base = None
    if args.base_means:
        base = read_base_means(args.base_means)
    elif args.base_model and not format_problems(Path(args.folder))[0]:
        base = base_means(args.base_model, read_answers(Path(args.folder))["question"].tolist(), config,
                          cache_dir=args.cache_dir, **_sampling(args))
    result = autograde(args.folder, config, base)
    print(format_autograde(result))
    return result["verdict"]["exit_code"]


def _base_means(args) -> int:
    from helpers.questions import load_questions
    from helpers.submission.autograde import base_means, read_answers

    questions = (read_answers(Path(args.questions_from))["question"].tolist() if args.questions_from
                 else [q.text for q in load_questions("course")])
    result = base_means(args.model, questions, _config(args), cache_dir=args.cache_dir, **_sampling(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return EXIT_PASS


COMMANDS = {"check": _check, "grade": _grade, "pack": _pack, "autograde": _autograde, "base-means": _base_means}
