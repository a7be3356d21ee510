"""The held-out part of the kit's graded answers, fixed before any label existed: never fitted or tuned on.

Held out: every answer of the extreme_sports finetune and every answer to an extreme_sports question (a whole training
domain), and every answer to a question whose id falls in a fixed hashed third (sha256 of the id, mod 3 == 0).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

HELD_OUT_DOMAIN = "extreme_sports"        # the finetune and its in-domain question set
HELD_OUT_QUESTION_SET = "extreme_sports"
HASH_FOLDS = 3                            # a question is held out when sha256(id) % HASH_FOLDS == 0


def question_held_out(question_id: str) -> bool:
    """True for the fixed hashed third of question ids."""
    return int(hashlib.sha256(str(question_id).encode()).hexdigest(), 16) % HASH_FOLDS == 0


def held_out_mask(answers: pd.DataFrame) -> np.ndarray:
    """True for answers in the held-out part (needs columns model, question_set, question_id)."""
    missing = {"model", "question_set", "question_id"} - set(answers.columns)
    if missing:
        raise KeyError(f"held_out_mask needs the columns {sorted(missing)} of answers_all.csv")
    return ((answers["model"] == HELD_OUT_DOMAIN).to_numpy()
            | (answers["question_set"] == HELD_OUT_QUESTION_SET).to_numpy()
            | answers["question_id"].map(question_held_out).to_numpy(dtype=bool))


def split(answers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit part, held-out part) of the kit's answers."""
    held = held_out_mask(answers)
    return answers[~held].reset_index(drop=True), answers[held].reset_index(drop=True)
