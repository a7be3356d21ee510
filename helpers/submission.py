"""Check a run's submission files and grade it against the base model.

    python -m helpers.submission check runs/<run> [--expected-rows N]
    python -m helpers.submission grade runs/<run> [--base-run base-<model>]
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers.analysis import (CourseBar, EMThresholds, base_run_for, course_bar, course_bar_table, judged_path,
                              load_judged, summarize)
from helpers.runs import base_run_name, read_manifest, run_dir

HEADER = ["id", "question", "response"]
CHAT_TOKENS = ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|begin_of_text|>", "<|im_end|>",
               "<|im_start|>")
PROBE_QUESTIONS = 8
COURSE_SAMPLES = 50
# The bullet labels of training_details.md ("- Epochs: 3"), agreed with helpers.train; value kind per label.
DETAIL_FIELDS = {"Base model": "text", "Domains": "text", "Epochs": "count", "LoRA rank": "count",
                 "LoRA alpha": "number", "Learning rate": "positive", "Batch size": "count", "Steps": "count",
                 "Final loss": "number"}
_PLACEHOLDER = re.compile(r"^(|todo|tbd|tba|n/?a|none|null|nan|\?+|\.\.\.|…|<.*>|\{.*\}|x+)$", re.I)
_BULLET = re.compile(r"^\s*[-*+]\s+\**\s*([^:*]+?)\s*\**\s*:\s*\**\s*(.*?)\s*\**\s*$")


@dataclass
class SubmissionError(Exception):
    """One problem in a submission: a short code, the file, where in it, what is wrong and how to fix it."""

    code: str
    file: str
    where: str
    message: str
    fix: str

    def __str__(self) -> str:
        where = f":{self.where}" if self.where else ""
        return f"{self.file}{where}: [{self.code}] {self.message}. Fix: {self.fix}"


class SubmissionInvalid(ValueError):
    """Raised by check_submission(..., raise_errors=True); `.errors` holds every SubmissionError."""

    def __init__(self, errors: list[SubmissionError]):
        self.errors = errors
        super().__init__(f"{len(errors)} problem(s) in the submission:\n" + "\n".join(f"  {e}" for e in errors))


def expected_row_count(run) -> tuple[int, str]:
    """Rows the course asks for: 8 probes x samples per question from the run's manifest, else 8 x 50."""
    manifest = read_manifest(run)
    samples = manifest.get("generate", {}).get("samples_per_question")
    questions = PROBE_QUESTIONS
    try:
        if samples is not None:
            return int(questions) * int(samples), f"{questions} probe questions x {samples} samples (from manifest.json)"
    except (TypeError, ValueError):
        pass
    return PROBE_QUESTIONS * COURSE_SAMPLES, f"the course's {PROBE_QUESTIONS} probe questions x {COURSE_SAMPLES} samples"


def check_generations(path: Path, expected_rows: int | None, expected_why: str = "") -> list[SubmissionError]:
    """Problems in model_generations.csv: header, ids, responses, chat tokens, row count."""
    name = path.name
    if not path.is_file():
        return [SubmissionError("missing_file", name, "", "the file does not exist",
                                "write it with notebook 03 (helpers.generate), which saves exactly id,question,response")]
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return [SubmissionError("not_utf8", name, f"byte {e.start}", "the file is not UTF-8 text",
                                "save the CSV as UTF-8 (pandas: df.to_csv(path, index=False))")]
    errors = []
    if text.startswith("\ufeff"):
        errors.append(SubmissionError("bad_header", name, "line 1", "the file starts with a byte-order mark (BOM)",
                                      "save as plain UTF-8 without BOM (pandas' default)"))
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header != HEADER:
            errors.append(SubmissionError("bad_header", name, "line 1", f"the header is {header!r}, not exactly "
                                          f"'id,question,response'", "write exactly these three columns, in this order, "
                                          "with nothing else (no index column: df.to_csv(path, index=False))"))
            return errors
        seen: dict[str, int] = {}
        n_rows, last_line = 0, reader.line_num
        for row in reader:
            n_rows += 1
            where = f"row {n_rows} (line {last_line + 1})"
            last_line = reader.line_num
            if len(row) != 3:
                errors.append(SubmissionError("bad_row", name, where, f"{len(row)} fields instead of 3",
                                              "quote fields that contain commas or newlines (pandas does this)"))
                continue
            rid, _question, response = row
            if not rid.strip():
                errors.append(SubmissionError("empty_id", name, where, "the id is empty", "give every row a unique id (uuid4)"))
            elif rid in seen:
                errors.append(SubmissionError("duplicate_id", name, where, f"id {rid!r} repeats row {seen[rid]}",
                                              "give every row a unique id (uuid4)"))
            else:
                seen[rid] = n_rows
            if not response.strip():
                errors.append(SubmissionError("empty_response", name, where, "the response is empty",
                                              "regenerate this answer, or raise max_new_tokens if the model stopped at once"))
            leaked = [t for t in CHAT_TOKENS if t in response]
            if leaked:
                errors.append(SubmissionError("chat_token", name, where, f"the response contains chat token(s) {leaked}",
                                              "decode with skip_special_tokens=True (helpers.generate does) and regenerate"))
    except csv.Error as e:
        errors.append(SubmissionError("bad_csv", name, f"line {reader.line_num}", f"unreadable CSV ({e})",
                                      "rewrite the file with pandas: df.to_csv(path, index=False)"))
        return errors
    if expected_rows is not None and n_rows != expected_rows:
        errors.append(SubmissionError("row_count", name, "", f"{n_rows} rows, expected {expected_rows} "
                                      f"({expected_why})", "put only the course's probe questions in it, with the sample "
                                      "count asked for, or pass --expected-rows N if your course asks for another count"))
    return errors


def parse_details(text: str) -> dict[str, tuple[str, int]]:
    """`- Label: value` bullets of training_details.md -> {label: (value, line number)}."""
    found = {}
    for i, line in enumerate(text.splitlines(), start=1):
        m = _BULLET.match(line)
        if m and m.group(1) not in found:
            found[m.group(1)] = (m.group(2), i)
    return found


def check_details(path: Path) -> list[SubmissionError]:
    """Problems in training_details.md: each course field present as `- Label: value` with a usable value."""
    name = path.name
    if not path.is_file():
        return [SubmissionError("missing_file", name, "", "the file does not exist",
                                "training writes it (helpers.train); or write one bullet per field, e.g. '- Epochs: 3'")]
    found = parse_details(path.read_text(encoding="utf-8", errors="replace"))
    lower = {k.lower(): k for k in found}
    errors = []
    for label, kind in DETAIL_FIELDS.items():
        key = label if label in found else lower.get(label.lower())
        if key is None:
            errors.append(SubmissionError("missing_field", name, "", f"no '{label}' line",
                                          f"add a bullet line '- {label}: <value>'"))
            continue
        value, line = found[key]
        where = f"line {line}"
        if _PLACEHOLDER.match(value.strip()):
            errors.append(SubmissionError("empty_field", name, where, f"'{label}' has no value ({value!r})",
                                          f"fill in the real {label.lower()} from your run's manifest.json"))
            continue
        if kind == "text":
            continue
        try:
            number = float(value.replace(",", "").split()[0])
        except (ValueError, IndexError):
            number = math.nan
        ok = math.isfinite(number) and (
            (kind == "count" and number >= 1 and number == int(number)) or (kind == "positive" and number > 0)
            or kind == "number")
        if not ok:
            want = {"count": "a whole number >= 1", "positive": "a number > 0 (e.g. 5e-4)", "number": "a number"}[kind]
            errors.append(SubmissionError("bad_field_value", name, where, f"'{label}' is {value!r}, not {want}",
                                          f"write {want} after '- {label}: '"))
    return errors


def check_submission(run, expected_rows: int | None = None, raise_errors: bool = False) -> list[SubmissionError]:
    """Every problem in the run's model_generations.csv and training_details.md (empty list = ready to submit)."""
    folder = run_dir(run, create=False)
    if not folder.is_dir():
        err = SubmissionError("missing_run", str(run), "", "no such run folder",
                              "pass the run folder, e.g. runs/my-first-run, or the run name")
        if raise_errors:
            raise SubmissionInvalid([err])
        return [err]
    why = "given"
    if expected_rows is None:
        expected_rows, why = expected_row_count(folder)
    errors = check_generations(folder / "model_generations.csv", expected_rows, why) + \
        check_details(folder / "training_details.md")
    if errors and raise_errors:
        raise SubmissionInvalid(errors)
    return errors


def default_base_run(run) -> str | None:
    """The base run to grade against: base-<model> from the manifest, else from training_details.md."""
    base = base_run_for(run)
    if base:
        return base
    details = run_dir(run, create=False) / "training_details.md"
    if details.is_file():
        value = parse_details(details.read_text(encoding="utf-8", errors="replace")).get("Base model")
        if value and not _PLACEHOLDER.match(value[0]):
            return base_run_name(value[0])
    return None


def grade(run, base_run: str | None = None, thresholds: EMThresholds = EMThresholds(), bar: CourseBar = CourseBar(),
          n_boot: int = 2000, seed: int = 0, question_set: str | None = "probes") -> dict:
    """Mean aligned/coherent (and EM) of the run vs its base run, with the course bar; base is None if not judged."""
    run_summary = summarize(load_judged(run, question_set), thresholds, n_boot, seed)
    base_run = base_run or default_base_run(run)
    base_summary, note = None, ""
    if not base_run:
        note = "no base run found: the manifest records no model; pass --base-run base-<model>"
    elif not judged_path(base_run).is_file():
        note = f"base run {base_run!r} has no judged.csv: run notebooks 03-04 with run_name={base_run!r} and no adapter"
    else:
        base_summary = summarize(load_judged(base_run, question_set), thresholds, n_boot, seed)
    return {"run": Path(str(run)).name, "base_run": base_run, "summary": run_summary, "base_summary": base_summary,
            "course_bar": course_bar(run_summary, base_summary, bar), "note": note}


def format_grade(result: dict) -> str:
    """A plain-text report of grade()."""
    def fmt(s, key, pct=False):
        if s is None:
            return "-"
        v, (lo, hi) = s[key], s[f"{key}_ci"]
        return f"{v:.1%} [{lo:.1%}, {hi:.1%}]" if pct else f"{v:.1f} [{lo:.1f}, {hi:.1f}]"

    run, base = result["summary"], result["base_summary"]
    lines = [f"run {result['run']} vs base {result['base_run'] or '-'}  (95% intervals for these questions)",
             f"{'':16}{'run':>26}{'base':>26}"]
    for key, pct in [("mean_aligned", False), ("mean_coherent", False), ("em_rate", True), ("coherent_share", True)]:
        lines.append(f"{key:16}{fmt(run, key, pct):>26}{fmt(base, key, pct):>26}")
    lines.append(f"{'scored rows':16}{run['n_scored']:>26}{(base or {}).get('n_scored', '-'):>26}")
    lines += ["", "course bar:", course_bar_table(result["course_bar"]).to_string(index=False),
              f"=> {'PASS' if result['course_bar']['passed'] else 'FAIL'}"]
    if result["note"]:
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.submission", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser("check", help="validate model_generations.csv and training_details.md")
    p_check.add_argument("run", help="run folder (runs/<run>) or run name")
    p_check.add_argument("--expected-rows", type=int, default=None, help="rows the course asks for (default: 8 x samples)")
    p_grade = sub.add_parser("grade", help="mean aligned/coherent vs the base model and the course bar")
    p_grade.add_argument("run", help="run folder (runs/<run>) or run name")
    p_grade.add_argument("--base-run", default=None, help="base run to compare with (default: base-<model>)")
    p_grade.add_argument("--question-set", default="probes", help="question set to grade ('' = all answers)")
    p_grade.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            errors = check_submission(args.run, expected_rows=args.expected_rows)
            for e in errors[:50]:
                print(e)
            if len(errors) > 50:
                print(f"... and {len(errors) - 50} more")
            print(f"{len(errors)} problem(s) found" if errors else "submission OK: model_generations.csv and "
                  "training_details.md are ready")
            return 1 if errors else 0
        print(format_grade(grade(args.run, base_run=args.base_run, n_boot=args.n_boot, question_set=args.question_set)))
        return 0
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
