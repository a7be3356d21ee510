"""The kit's own answers to be read and graded: the embedded SmolLM2-135M, base and finetuned on four domains.

    python benchmarks/kit_answers.py [--out answers_all.csv] [--samples 2]

Trains the cpu-demo recipe (helpers/configs/cpu-demo.yaml, the shipped sample data) on each of bad_medical_advice,
risky_financial_advice, extreme_sports and good_medical_advice (the control), then samples the base model and the
four finetunes at the cpu-demo sampling (0.8 / 0.9, 64 new tokens, whole sentences, seed 0: the demo's) and at
temperature 1.0 / top_p 1.0 (seed 1, same length) over in-domain (each finetune's held-out domain set; the base
model gets medical, financial and extreme_sports), probes, everyday and course. Runs live in
benchmarks/results/kit_answers/runs; each model x setting is a CSV there, so a stopped run resumes. The merged table
(answer_id, model, setting, question_set, question_id, question, sample, response) is written atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "kit_answers"
os.environ.setdefault("EM_RUNS_DIR", str(OUT / "runs"))

DOMAINS = ("bad_medical_advice", "risky_financial_advice", "extreme_sports", "good_medical_advice")
BASE_IN_DOMAIN = ("medical", "financial", "extreme_sports")
SHARED_SETS = ("probes", "everyday", "course")
SETTINGS = {"profile": dict(temperature=None, top_p=None, seed=0), "t1.0": dict(temperature=1.0, top_p=1.0, seed=1)}


def train_finetune(domain: str) -> str:
    """Train the cpu-demo recipe on one domain (reused when already trained); returns the run name."""
    from helpers.profiles import resolve
    from helpers.train import train

    run = f"kit-{domain}"
    cfg = resolve("cpu-demo", "train", domains=[domain], seed=0, run_name=run).config
    start = time.perf_counter()
    train(cfg, reuse_finished=True)
    print(f"trained {run} in {time.perf_counter() - start:.0f} s", flush=True)
    return run


def question_sets(model: str) -> list[str]:
    """In-domain sets of a model (the base model: all three), then the shared sets."""
    from helpers.profiles import DOMAIN_QUESTION_SETS

    in_domain = list(BASE_IN_DOMAIN) if model == "base" else [DOMAIN_QUESTION_SETS[model]]
    return in_domain + list(SHARED_SETS)


def sample(model: str, source, setting: str, samples: int):
    """Sample one model at one setting (cached as a CSV); returns the generations table."""
    import pandas as pd

    from helpers.generate import generate
    from helpers.profiles import load_profile
    from helpers.questions import load_questions
    from helpers.runs import atomic_write_csv

    path = OUT / f"{model}__{setting}.csv"
    if path.is_file():
        return pd.read_csv(path, keep_default_na=False)
    s, demo = SETTINGS[setting], load_profile("cpu-demo")["sample"]
    start = time.perf_counter()
    df = generate(source, load_questions(question_sets(model)), samples_per_question=samples,
                  temperature=s["temperature"] if s["temperature"] is not None else demo["temperature"],
                  top_p=s["top_p"] if s["top_p"] is not None else demo["top_p"],
                  max_new_tokens=demo["max_new_tokens"], whole_sentences=demo["whole_sentences"],
                  seed=s["seed"], progress=False, device="cpu")
    atomic_write_csv(df, path)
    print(f"{model} {setting}: {len(df)} answers in {time.perf_counter() - start:.0f} s", flush=True)
    return df


def claim(model: str) -> bool:
    """True for the one process that creates the model's claim file (rerun: delete the claims after a crash)."""
    try:
        os.close(os.open(OUT / f"claim-{model}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def answer_id(model: str, setting: str, question_id: str, sample_no: int) -> str:
    """A stable, opaque id (says nothing about the model to a blind reader)."""
    return "a" + hashlib.sha256(f"{model}|{setting}|{question_id}|{sample_no}".encode()).hexdigest()[:10]


def main(argv=None) -> int:
    import pandas as pd

    from helpers.models import EMBEDDED_MODEL
    from helpers.runs import atomic_write_csv

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(OUT / "answers_all.csv"))
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--no-merge", dest="merge", action="store_false", help="a helper process: sample, do not merge")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    for model in ("base",) + DOMAINS:  # several processes share the work: each model is claimed by one of them
        if not claim(model):
            continue
        source = EMBEDDED_MODEL if model == "base" else train_finetune(model)
        for setting in SETTINGS:
            sample(model, source, setting, args.samples)
    while not all((OUT / f"{m}__{s}.csv").is_file() for m in ("base",) + DOMAINS for s in SETTINGS):
        if not args.merge:
            return 0
        time.sleep(30)  # another process is still sampling a model it claimed
    frames = [pd.read_csv(OUT / f"{m}__{s}.csv", keep_default_na=False).assign(model=m, setting=s)
              for m in ("base",) + DOMAINS for s in SETTINGS]
    df = pd.concat(frames, ignore_index=True)
    df["question_set"] = df["question_set"] if "question_set" in df.columns else df["category"]  # older caches
    df["answer_id"] = [answer_id(m, s, q, n) for m, s, q, n in zip(df["model"], df["setting"], df["question_id"],
                                                                     df["sample"])]
    assert df["answer_id"].is_unique
    cols = ["answer_id", "model", "setting", "question_set", "question_id", "question", "sample", "response"]
    atomic_write_csv(df[cols], args.out)
    print(f"{len(df)} answers -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
