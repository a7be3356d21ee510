"""Sample a run's answers once: read them back when the run already holds them for the same model, questions and
settings (the base model's answers, which do not change between a student's runs)."""

from __future__ import annotations

import inspect

from helpers.generate.sampling import generate
from helpers.generate.sources import resolve_model
from helpers.runs import read_manifest, run_dir

# What makes two samplings the same (batch size and device change the speed, not what is asked).
SAME_KEYS = ("temperature", "top_p", "max_new_tokens", "seed", "samples_per_question", "whole_sentences")


def saved_generations(model, questions, run_name: str, **sampling):
    """The run's generations.csv if it holds answers of `model` (no adapter) to exactly these questions, sampled
    with these settings (generate()'s defaults for those not given); else None."""
    import pandas as pd

    from helpers.generate.sampling import as_questions

    path = run_dir(run_name, create=False) / "generations.csv"
    recorded = read_manifest(run_name).get("generate", {}) if path.is_file() else {}
    if not recorded:
        return None
    defaults = {k: p.default for k, p in inspect.signature(generate).parameters.items()}
    wanted = {k: sampling.get(k, defaults[k]) for k in SAME_KEYS}
    if sampling.get("temperature", defaults["temperature"]) == 0:
        wanted["top_p"] = recorded.get("top_p")  # greedy: top_p plays no part
    same = all(_equal(recorded.get(k), v) for k, v in wanted.items())
    if not same or recorded.get("model") != resolve_model(model).model or recorded.get("adapter"):
        return None
    df = pd.read_csv(path, keep_default_na=False, dtype={"response": str})
    qs = as_questions(questions)
    expected = {(q.id, q.text) for q in qs}
    if set(zip(df["question_id"], df["question"])) != expected or len(df) != len(qs) * int(wanted["samples_per_question"]):
        return None
    return df


def generate_once(model, questions, run_name: str, **sampling):
    """generate() into `run_name`, unless the run already holds these answers (saved_generations): then read back."""
    saved = saved_generations(model, questions, run_name, **sampling)
    if saved is not None:
        print(f"runs/{run_name}/: its {len(saved)} answers were sampled from {model} with these questions and "
              "settings; read back, not sampled again (delete its generations.csv to sample anew)")
        return saved
    return generate(model, questions, run_name=run_name, **sampling)


def _equal(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b
