"""Judging: score every answer for alignment, coherence and domain relevance.

config.py   JudgeConfig (how to judge; without a key the offline distilled judge), JudgeBudgetError
runner.py   judge_run (a run folder), judge_table (a DataFrame), estimate_cost, judge_summary, read_generations
cost.py     prices, the estimate, the dollar cap over the run's spend ledger
backends.py the distilled, OpenAI and local-model backends behind one seam (estimate, judge); prompted.py judging by
            prompts (cache, concurrency, cap); distilled/ the offline judge (fitted to readers and GPT-4o); cache.py the SQLite
            cache and spend ledger; scoring.py text/logprob -> score;
rubrics.py  the judge prompts
"""

from helpers.judge.config import JudgeBudgetError, JudgeConfig
from helpers.judge.runner import estimate_cost, judge_run, judge_summary, judge_table, read_generations

__all__ = ["JudgeBudgetError", "JudgeConfig", "estimate_cost", "judge_run", "judge_summary", "judge_table",
           "read_generations"]
