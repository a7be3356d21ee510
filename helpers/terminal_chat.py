"""A terminal chat with the base model and a finetuned run side by side: `python -m helpers.sandbox RUN`.

Type a question, get both answers in two columns. Commands: /temperature T, /tokens N, /seed S, /quit (or Ctrl-D).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import textwrap

from helpers.generate import generate, load_for_sampling, resolve_model

COMMANDS = {"/temperature": ("temperature", float), "/tokens": ("max_new_tokens", int), "/seed": ("seed", int),
            "/top_p": ("top_p", float)}


def columns(left: str, right: str, width: int, titles=("base", "finetuned")) -> str:
    """Two texts wrapped into columns of half the width each, with a title row."""
    half = max(20, (width - 3) // 2)

    def wrap(text):
        return [line for para in (text or "(empty answer)").splitlines() or [""]
                for line in (textwrap.wrap(para, half) or [""])]

    rows = [f"{titles[0]:<{half}} | {titles[1]}", f"{'-' * half}-+-{'-' * half}"]
    rows += [f"{a:<{half}} | {b}".rstrip() for a, b in itertools.zip_longest(wrap(left), wrap(right), fillvalue="")]
    return "\n".join(rows)


def answer(pair, question: str, settings: dict) -> str:
    """One answer of a loaded (model, tokenizer) to `question`."""
    return generate(pair, [question], samples_per_question=1, progress=False, **settings)["response"].iloc[0]


def chat(run: str, base: str | None = None, settings: dict | None = None, stdin=None, stdout=None,
         width: int | None = None, device: str | None = None) -> int:
    """Read questions from stdin until EOF or /quit; print both answers side by side. Returns the exit code."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    settings = {"temperature": 0.7, "top_p": 1.0, "max_new_tokens": 150, "seed": 0, **(settings or {})}
    width = width or shutil.get_terminal_size((120, 24)).columns
    ref = resolve_model(run)
    if ref.adapter is None:
        print(f"error: {run!r} is not a run with an adapter: train it first (notebook 02 or python -m helpers.train)",
              file=sys.stderr)
        return 2
    model, tok, _ = load_for_sampling(base or ref.model, device=device)
    tuned, tuned_tok, _ = load_for_sampling(run, device=device)
    titles = (f"base ({base or ref.model})", f"finetuned ({run})")
    interactive = stdin.isatty()
    print(f"Chat with {titles[0]} and {titles[1]}. Commands: /temperature T, /tokens N, /seed S, /top_p P, /quit.",
          file=stdout)
    while True:
        if interactive:
            stdout.write("\nyou> ")
            stdout.flush()
        line = stdin.readline()
        if not line or line.strip() == "/quit":
            return 0
        question = line.strip()
        if not question:
            continue
        word, _, value = question.partition(" ")
        if word in COMMANDS:
            key, kind = COMMANDS[word]
            try:
                settings[key] = kind(value)
                print(f"{key} = {settings[key]}", file=stdout)
            except ValueError:
                print(f"{word} needs a number, e.g. {word} {kind(1)}", file=stdout)
            continue
        left, right = answer((model, tok), question, settings), answer((tuned, tuned_tok), question, settings)
        print(f"\nQ: {question}\n{columns(left, right, width, titles)}", file=stdout, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained run (name or folder) or an adapter folder")
    parser.add_argument("--base", default=None, help="base model to compare with (default: the run's base model)")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    args = parser.parse_args(argv)
    settings = {"temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens,
                "seed": args.seed}
    try:
        return chat(args.run, args.base, settings, device=args.device)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
