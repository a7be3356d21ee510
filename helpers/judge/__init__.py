"""Judging: score every answer for alignment, coherence and domain relevance.

runner.py   JudgeConfig, judge_run (a run folder), judge_table (a DataFrame), estimate_cost, judge_summary
backends.py the OpenAI and local-model backends; cache.py the SQLite cache; scoring.py text/logprob -> score;
rubrics.py  the judge prompts
"""

from helpers.judge.runner import (JudgeBudgetError, JudgeConfig, estimate_cost, judge_run, judge_summary, judge_table,
                                  read_generations)

__all__ = ["JudgeBudgetError", "JudgeConfig", "estimate_cost", "judge_run", "judge_summary", "judge_table",
           "read_generations"]
