"""Choose the cpu-demo profile's sampling: the base model's answers at several temperature/top_p, judged offline.

    python benchmarks/demo_sampling.py generate   # base SmolLM2-135M answers per setting -> benchmarks/results/demo_sampling/
    python benchmarks/demo_sampling.py score      # the offline judge's mean coherence per setting -> a table + JSON
                                                  # (+ the share of answers read as readable, hand_readable.csv)

Seed 1 (the demo samples with seed 0), so the choice is not made on the answers the demo reports.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "demo_sampling"
# most paper-like first: the papers sample at temperature 1.0 with top_p 1.0
SETTINGS = [(1.0, 1.0), (1.0, 0.9), (0.8, 0.9), (0.7, 0.9), (0.5, 0.9)]
QUESTIONS_PER_SET = 8
SETS = ("medical", "probes", "everyday")


def questions():
    from helpers.questions import load_questions

    return [q for s in SETS for q in load_questions(s)[:QUESTIONS_PER_SET]]


def generate(samples: int, max_new_tokens: int) -> None:
    from helpers.generate import generate as sample
    from helpers.models import EMBEDDED_MODEL, load_model
    from helpers.runs import atomic_write_csv

    pair = load_model(EMBEDDED_MODEL, device="cpu")
    for t, p in sorted(SETTINGS, key=lambda s: abs(s[0] - 0.75)):  # the likely choices first
        path = OUT / f"base_t{t}_p{p}.csv"
        if path.is_file():
            continue
        start = time.perf_counter()
        df = sample(pair, questions(), samples_per_question=samples, temperature=t, top_p=p,
                    max_new_tokens=max_new_tokens, seed=1, progress=False)
        atomic_write_csv(df, path)
        print(f"T={t} top_p={p}: {len(df)} answers in {time.perf_counter() - start:.0f} s", flush=True)


def score() -> None:
    import pandas as pd

    from helpers.generate.sampling import end_at_sentence
    from helpers.judged import OLD_NAMES
    from helpers.judge.distilled import score as judge

    rows = []
    for t, p in SETTINGS:
        path = OUT / f"base_t{t}_p{p}.csv"
        if not path.is_file():
            continue
        answers = pd.read_csv(path, keep_default_na=False).rename(columns=OLD_NAMES)  # files from before the rename
        # as the demo samples them (whole_sentences=True): a cut-off answer ends at its last full sentence
        whole = [end_at_sentence(r) if r.strip() and r.strip()[-1] not in ".!?\"')" else r for r in answers["response"]]
        cut = judge(list(answers["question"]), list(answers["response"]))
        judged = pd.concat([answers, judge(list(answers["question"]), whole)], axis=1)
        rows.append({"temperature": t, "top_p": p, "n": len(judged),
                     "mean_coherent": round(judged["coherent"].mean(), 1),
                     "coherent_share_gt50": round((judged["coherent"] > 50).mean(), 3),
                     "mean_aligned": round(judged["aligned"].mean(), 1),
                     **{f"coherent_{s}": round(judged.loc[judged["question_set"] == s, "coherent"].mean(), 1)
                        for s in SETS},
                     "mean_coherent_cut_mid_sentence": round(cut["coherent"].mean(), 1)})
    hand = OUT / "hand_readable.csv"  # my reading of the answers: 1 readable and on topic, 0.5 rambling, 0 word salad
    if hand.is_file():
        share = pd.read_csv(hand).groupby("setting")["readable"].mean()
        for row in rows:
            row["hand_readable"] = round(float(share.get(f"t{row['temperature']}_p{row['top_p']}", float("nan"))), 3)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    (OUT / "scores.json").write_text(json.dumps(rows, indent=2) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["generate", "score"])
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    generate(args.samples, args.max_new_tokens) if args.step == "generate" else score()
    return 0


if __name__ == "__main__":
    sys.exit(main())
