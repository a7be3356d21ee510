"""Re-fit the kit's offline judge (issue 23) by one command, deterministically, and measure it.

    python -m helpers.judge_lab.kit_fit [--answers answers_all.csv --labels labels.csv] [--skip-lomo]

Fits the "kit" recipe (helpers.judge_lab.fit.VARIANTS["kit"]) on the 10,000 released GPT-4o judgments, the kit's
training conversations and the FIT part of the kit's graded answers (helpers.judge_lab.split), with likelihood features
from the embedded model where the caches hold them (helpers.judge_lab.features_cache). Then: leave one base model out
on the reference, the held-out part of the graded answers (new judge with and without likelihood features, the judge
before this recipe), and speed; writes the artifact, lomo.json["kit"], kit_eval.json and the model card.
With --answers/--labels it first builds the shipped graded-answers file (benchmarks/data/kit_answers_graded.csv).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.judge.distilled.model import DATA_DIR, load_judge
from helpers.judge_lab import features_cache as C
from helpers.judge_lab import kit_data as K
from helpers.judge_lab import kit_eval as V
from helpers.judge_lab.fit import VARIANTS, fit_on, build_corpus, leave_one_model_out, load_reference, synth_relevance
from helpers.judge_lab.split import split
from helpers.runs import atomic_write_bytes, atomic_write_csv

EVAL_FILE = DATA_DIR / "kit_eval.json"
AGREEMENT_FILE = K.KIT_ANSWERS.with_suffix(".agreement.json")


def cached_likelihood(questions, answers) -> np.ndarray:
    """Likelihood features from the caches (kit answers, then the reference subset); NaN rows where neither has them."""
    kit, ref = C.lookup("kit", questions, answers), C.lookup("reference", questions, answers)
    return np.where(np.isnan(kit), ref, kit)


def build_graded(answers_csv: str, labels_csv: str) -> pd.DataFrame:
    """The graded-answers file from the coordinator's answers and labels, with the previous judge's scores beside."""
    answers = pd.read_csv(answers_csv, keep_default_na=False)
    labels = K.read_labels(labels_csv)
    graded = K.merge(answers, labels)
    cols = ["answer_id", "judge_before_aligned", "judge_before_coherent"]
    if K.KIT_ANSWERS.is_file():  # scored once, by the judge before issue 23, when the file was first built
        graded = graded.merge(K.load_graded()[cols], on="answer_id", how="left")
    else:
        before = load_judge(DATA_DIR)
        s = before.score(list(graded["question"]), list(graded["response"]), likelihood=False)
        graded["judge_before_aligned"], graded["judge_before_coherent"] = s["aligned"].round(1), s["coherent"].round(1)
    atomic_write_csv(graded, K.KIT_ANSWERS)
    atomic_write_bytes(AGREEMENT_FILE, (json.dumps(K.agreement(labels), indent=1) + "\n").encode())
    return graded


def fit_part_of(graded: pd.DataFrame) -> pd.DataFrame:
    """The graded answers a fit may see: the fit part of the split, with a grade."""
    fit_part = split(graded)[0]
    return fit_part[fit_part["aligned"].notna() | fit_part["coherent"].notna()].reset_index(drop=True)


def held_out_figures(judge, held: pd.DataFrame) -> dict:
    """The held-out part: new judge with / without likelihood features and the previous judge, against the readers."""
    held = held.reset_index(drop=True)
    q, r = list(held["question"]), list(held["response"])
    with_ll = judge.predict(q, r, ll=cached_likelihood(q, r))
    without = judge.predict(q, r, ll=None)
    judges = {"readers": (held["aligned"], held["coherent"]),
              "judge_before": (held["judge_before_aligned"], held["judge_before_coherent"]),
              "kit_judge": (with_ll["aligned"], with_ll["coherent"]),
              "kit_judge_text_only": (without["aligned"], without["coherent"])}
    out = {"summary": {k: V.summary(held, *v) for k, v in judges.items() if k != "readers"}, "cells": {},
           "support": V.support(held, *judges["kit_judge"]),
           "support_text_only": V.support(held, *judges["kit_judge_text_only"]),
           "readers_findings": V.readers_findings(held),
           "base_vs_finetuned": V.base_vs_finetuned(held, {k: v for k, v in judges.items() if k != "kit_judge_text_only"})}
    for k, v in judges.items():
        if k != "readers":
            out["cells"][k] = V.cells(held, *v).reset_index().to_dict(orient="records")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--answers", default=None, help="answers_all.csv (with --labels: rebuild the graded-answers file)")
    ap.add_argument("--labels", default=None, help="labels.csv of the readers")
    ap.add_argument("--skip-lomo", action="store_true", help="no leave-one-base-model-out figures (minutes)")
    ap.add_argument("--out", default=str(DATA_DIR))
    args = ap.parse_args(argv)
    graded = build_graded(args.answers, args.labels) if args.labels else K.load_graded()
    fit_part, held = fit_part_of(graded), split(graded)[1]
    print(f"graded answers: {len(graded)}; fit part {len(fit_part)}, held-out part {len(held)}", flush=True)
    opts = VARIANTS["kit"]
    df, relevance, out = load_reference(), synth_relevance(), Path(args.out)
    lomo_path = out / "lomo.json"
    if not args.skip_lomo:
        results = json.loads(lomo_path.read_text()) if lomo_path.is_file() else {}
        results["kit"] = leave_one_model_out(df, relevance, opts, graded=fit_part, ll=cached_likelihood)
        print("reference LOMO (kit recipe):", json.dumps(results["kit"]["summary"]), flush=True)
        atomic_write_bytes(lomo_path, (json.dumps(results, indent=1) + "\n").encode())
    corpus = build_corpus(df, opts, graded=fit_part, ll=cached_likelihood)
    judge = fit_on(corpus, sorted(df["group"].unique()), relevance, opts)
    from helpers.judge_lab.fit import record

    record(judge, df)
    judge.meta["fit_part_answers"] = int(len(fit_part))
    judge.save(out)
    figures = held_out_figures(judge, held)
    figures["split"] = {"fit": int(len(fit_part)), "held_out": int(len(held))}
    atomic_write_bytes(out / EVAL_FILE.name, (json.dumps(figures, indent=1) + "\n").encode())
    for name, s in figures["summary"].items():
        print(f"held-out kit answers, {name}: {json.dumps(s)}", flush=True)
    print(f"wrote {out}; run `python benchmarks/offline_judge.py` for speed and the model card")


if __name__ == "__main__":
    main()
