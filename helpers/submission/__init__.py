"""The course's hand-in: check the files, grade a judged run, pack a run for hand-in, autograde a hand-in folder.

Command line: `python -m helpers.submission {check,grade,pack,autograde,base-means} ...` (exit codes in grade.py).
"""

from helpers.submission.autograde import autograde, base_means, judge_config, read_base_means
from helpers.submission.check import (CHAT_TOKENS, DETAIL_FIELDS, SubmissionError, SubmissionInvalid, check_details,
                                      check_generations, check_judged, check_submission, parse_details)
from helpers.submission.grade import EXIT_CODES, format_grade, grade
from helpers.submission.pack import pack, train_script

__all__ = ["CHAT_TOKENS", "DETAIL_FIELDS", "EXIT_CODES", "SubmissionError", "SubmissionInvalid", "autograde",
           "base_means", "check_details", "check_generations", "check_judged", "check_submission", "format_grade",
           "grade", "judge_config", "pack", "parse_details", "read_base_means", "train_script", "main"]


def main(argv=None) -> int:
    """The command line (see helpers/submission/cli.py)."""
    from helpers.submission.cli import main as cli_main

    return cli_main(argv)
