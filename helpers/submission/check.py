"""Check hand-in files: model_generations.csv, training_details.md and (when present) judged.csv."""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from helpers.judged import REQUIRED_COLUMNS, load_judged
from helpers.runs import read_manifest, run_dir, runs_root

HEADER = ["id", "question", "response"]
CHAT_TOKENS = ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|begin_of_text|>", "<|im_end|>",
               "<|im_start|>")
PROBE_QUESTIONS = 8
COURSE_MAX_ROWS = 20  # the course's hand-in: at most 20 answers (its grader judges the first 20)
# The bullet labels of training_details.md ("- Epochs: 3"), agreed with helpers.train; value kind per label.
DETAIL_FIELDS = {"Base model": "text", "Domains": "text", "Epochs": "positive", "LoRA rank": "count",
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


def run_not_found(run) -> str:
    """'no run X' with the runs that do exist (those with a manifest.json), for a mistyped name."""
    root = runs_root()
    names = sorted(p.parent.name for p in root.glob("*/manifest.json")) if root.is_dir() else []
    where = os.path.relpath(root) if root.is_absolute() else str(root)
    listed = (f"the runs in {where}/ are: {', '.join(names)} (pass a run's name or its folder)" if names
              else f"{where}/ holds no runs yet")
    return f"run {str(run)!r} not found ({run_dir(run, create=False)} does not exist); {listed}"


def expected_row_count(run) -> tuple[int | None, int | None, str]:
    """(exact rows, most rows, why): the rows the run's manifest says it generated, else the course's <= 20."""
    generate = read_manifest(run).get("generate", {})
    samples, n_rows = generate.get("samples_per_question"), generate.get("n_rows")
    questions = generate.get("n_questions") or PROBE_QUESTIONS
    try:
        if n_rows is not None:
            return int(n_rows), None, f"{n_rows} rows generated (from manifest.json)"
        if samples is not None:
            return int(questions) * int(samples), None, f"{questions} questions x {samples} samples (from manifest.json)"
    except (TypeError, ValueError):
        pass
    return None, COURSE_MAX_ROWS, f"the course's hand-in holds at most {COURSE_MAX_ROWS} answers"


def check_generations(path: Path, expected_rows: int | None, expected_why: str = "",
                      max_rows: int | None = None) -> list[SubmissionError]:
    """Problems in model_generations.csv: header, ids, responses, chat tokens, row count (exact and/or at most)."""
    name = path.name
    if not path.is_file():
        return [SubmissionError("missing_file", name, "", "the file does not exist",
                                "write it with notebook 03 (helpers.generate), which saves exactly id,question,"
                                "response; after `python -m helpers.submission pack RUN handin/` it is in the hand-in "
                                "folder: check that one (`python -m helpers.submission check handin/`)")]
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
                                      f"({expected_why})", "regenerate with the questions and sample count asked for, "
                                      "or pass --expected-rows N if your course asks for another count"))
    if max_rows is not None and n_rows > max_rows:
        errors.append(SubmissionError("too_many_rows", name, "", f"{n_rows} rows, at most {max_rows} allowed "
                                      f"({expected_why})", "hand in one answer per course question: "
                                      "python -m helpers.submission pack RUN DIR writes exactly those 20 rows"))
    if n_rows == 0:
        errors.append(SubmissionError("no_rows", name, "", "the file has a header and no answers",
                                      "generate the answers (notebook 03 or `python -m helpers.submission pack`)"))
    return errors


def check_judged(path: Path) -> list[SubmissionError]:
    """Problems in judged.csv: the columns grading reads and scores within 0-100 (blank = no score)."""
    name = path.name
    try:
        header = next(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")), None) or []
    except (UnicodeDecodeError, csv.Error) as e:
        return [SubmissionError("bad_csv", name, "", f"unreadable ({type(e).__name__})", "judge again (notebook 04)")]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        return [SubmissionError("missing_column", name, "line 1", f"no column(s) {missing} (has {header})",
                                "judge the generations with notebook 04 (helpers.judge.judge_run), which writes them")]
    try:
        load_judged(path)  # parses every score column: names the row of a non-number or a value outside 0-100
    except ValueError as e:
        text = str(e).split(": ", 1)[-1]
        where, _, rest = text.partition(", column ")
        return [SubmissionError("bad_score", name, where if rest else "", rest or text,
                                "scores are numbers 0-100 or blank; judge again, or fix/blank that cell")]
    return []


def unjudged_rows(judged) -> int:
    """Rows of a judged table without an aligned or coherent score and no judge's reason (an error or not judged)."""
    missing = None
    for col in ("aligned", "coherent"):
        reasons = judged.get(f"{col}_missing")
        reasons = reasons.fillna("").astype(str) if reasons is not None else None
        no_reason = judged[col].isna() if reasons is None else judged[col].isna() & (
            (reasons == "") | reasons.str.startswith("error"))
        missing = no_reason if missing is None else missing | no_reason
    return int(missing.sum())


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
    """Every problem in a run folder or hand-in folder: model_generations.csv, training_details.md, judged.csv."""
    folder = run_dir(run, create=False)
    if not folder.is_dir():
        err = SubmissionError("missing_run", str(run), "", run_not_found(run),
                              "pass a run folder (runs/<run>), a run name or a hand-in folder")
        if raise_errors:
            raise SubmissionInvalid([err])
        return [err]
    why, max_rows = "given", None
    if expected_rows is None:
        expected_rows, max_rows, why = expected_row_count(folder)
    errors = check_generations(folder / "model_generations.csv", expected_rows, why, max_rows) + \
        check_details(folder / "training_details.md")
    if (folder / "judged.csv").is_file():
        errors += check_judged(folder / "judged.csv")
    if errors and raise_errors:
        raise SubmissionInvalid(errors)
    return errors
