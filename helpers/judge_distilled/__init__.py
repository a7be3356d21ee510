"""The distilled offline judge: linear heads on cheap text features, fitted on 10,000 released GPT-4o judgments."""

from helpers.judge_distilled.model import DistilledJudge, default_judge, load_judge, score

__all__ = ["DistilledJudge", "default_judge", "load_judge", "score"]
