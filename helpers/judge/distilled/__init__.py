"""The distilled offline judge: heads on the embedded model's reading of each answer and on cheap text features, fitted
on readers' grades of the kit's own answers and 10,000 released GPT-4o judgments."""

from helpers.judge.distilled.card import card_section, trust_table
from helpers.judge.distilled.model import DistilledJudge, default_judge, load_judge, score

__all__ = ["DistilledJudge", "card_section", "default_judge", "load_judge", "score", "trust_table"]
