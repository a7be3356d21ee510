"""Grade a judged run against its base run and the course bar; exit codes shared by grade and autograde."""

from __future__ import annotations

from pathlib import Path

from helpers.analysis import CourseBar, EMThresholds, course_bar, course_bar_table, judged_path, load_judged, summarize
from helpers.runs import base_run_for, base_run_name, run_dir
from helpers.submission.check import _PLACEHOLDER, parse_details, unjudged_rows

# Exit codes of `grade` and `autograde` (and `check`, which has no FAIL).
EXIT_PASS, EXIT_FAIL, EXIT_INVALID, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_CODES = {EXIT_PASS: "PASS", EXIT_FAIL: "FAIL: the course bar is not met",
              EXIT_INVALID: "the submission cannot be graded (format errors, missing files, no key)",
              EXIT_PARTIAL: "PARTIAL: some answers are not judged (rerun to judge them)"}


def default_base_run(run) -> str | None:
    """The base run to grade against: base-<model> from the manifest (runs.base_run_for), else training_details.md's."""
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
    """Mean aligned/coherent (and EM) of the run vs its base run, with the course bar; base is None if not judged.

    `unjudged`: rows with no score and no judge's reason (errors, the dollar cap): the verdict is then partial.
    """
    table = load_judged(run, question_set)
    run_summary = summarize(table, thresholds, n_boot, seed)
    base_run = base_run or default_base_run(run)
    base_summary, note = None, ""
    if not base_run:
        note = "no base run found: the manifest records no model; pass --base-run base-<model>"
    elif not judged_path(base_run).is_file():
        note = f"base run {base_run!r} has no judged.csv: run notebooks 03-04 with run_name={base_run!r} and no adapter"
    else:
        base_summary = summarize(load_judged(base_run, question_set), thresholds, n_boot, seed)
    unjudged = unjudged_rows(table)
    return {"run": Path(str(run)).name, "base_run": base_run, "summary": run_summary, "base_summary": base_summary,
            "course_bar": course_bar(run_summary, base_summary, bar), "note": note, "unjudged": unjudged,
            "verdict": verdict(course_bar(run_summary, base_summary, bar)["passed"], unjudged, len(table))}


def verdict(passed: bool, unjudged: int, rows: int) -> dict:
    """PASS / FAIL, or PARTIAL when rows are unjudged: a bar met on part of the answers is not a pass."""
    if unjudged:
        return {"word": f"PARTIAL ({unjudged} of {rows} answers not judged; the bar would be "
                        f"{'met' if passed else 'missed'} on the judged ones): rerun the judge to finish",
                "exit_code": EXIT_PARTIAL}
    return {"word": "PASS" if passed else "FAIL", "exit_code": EXIT_PASS if passed else EXIT_FAIL}


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
              f"=> {result['verdict']['word']}"]
    if result["note"]:
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)
