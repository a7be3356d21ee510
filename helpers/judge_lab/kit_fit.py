"""Re-fit the kit's offline judge (issue 23) by one command, deterministically, and measure it.

    python -m helpers.judge_lab.kit_fit [--answers answers_all.csv --labels labels.csv] [--skip-lomo]

The text heads: the "final" recipe (helpers.judge_lab.fit) on the 10,000 released GPT-4o judgments and the kit's
training conversations. The reading heads (kit_heads.py) on answer states of the embedded model (features_cache.py):
the FIT part of the kit's graded answers (helpers.judge_lab.split) and every 10th reference row, with the text heads'
raw scores beside (out of sample: for reference rows from the fit that left their base model out). Then: leave one
base model out on the reference, the held-out part of the graded answers (with and without the reading heads, the judge
before issue 23); writes the artifact, lomo.json ("final" and "kit"), kit_eval.json. With --answers/--labels it first
builds the shipped graded-answers file (benchmarks/data/kit_answers_graded.csv).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.judge.distilled import features as F
from helpers.judge.distilled.embedded import EmbeddedOptions
from helpers.judge.distilled.model import DATA_DIR, load_judge
from helpers.judge_lab import features_cache as C
from helpers.judge_lab import kit_data as K
from helpers.judge_lab import kit_eval as V
from helpers.judge_lab.fit import VARIANTS, fit_judge, leave_one_model_out, load_reference, record, synth_relevance
from helpers.judge_lab.kit_heads import ReadOptions, ReadRows, fit_reading_heads, reference_lomo
from helpers.judge_lab.split import split
from helpers.runs import atomic_write_bytes, atomic_write_csv

EVAL_FILE = DATA_DIR / "kit_eval.json"
AGREEMENT_FILE = K.KIT_ANSWERS.with_suffix(".agreement.json")
TEXT_OOF = C.LAB_DATA / "reference_text_oof.npz"  # the text heads' raw scores of the reference rows, leaving their base model out


def cached_states(name: str, questions, answers) -> np.ndarray:
    """Answer states from the cache `name`, computed (and kept) for rows it lacks."""
    x = C.lookup(name, questions, answers)
    missing = np.isnan(x).any(axis=1)
    if missing.any():
        C.compute(name, [q for q, m in zip(questions, missing) if m], [a for a, m in zip(answers, missing) if m])
        x = C.lookup(name, questions, answers)
    return x


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
        s = before.score(list(graded["question"]), list(graded["response"]), read=False)
        graded["judge_before_aligned"], graded["judge_before_coherent"] = s["aligned"].round(1), s["coherent"].round(1)
    atomic_write_csv(graded, K.KIT_ANSWERS)
    atomic_write_bytes(AGREEMENT_FILE, (json.dumps(K.agreement(labels), indent=1) + "\n").encode())
    return graded


def fit_part_of(graded: pd.DataFrame) -> pd.DataFrame:
    """The graded answers a fit may see: the fit part of the split, with a grade."""
    fit_part = split(graded)[0]
    return fit_part[fit_part["aligned"].notna() | fit_part["coherent"].notna()].reset_index(drop=True)


def read_rows(judge, fit_part: pd.DataFrame, reference: pd.DataFrame, reference_raw: dict) -> ReadRows:
    """The reading heads' rows: the fit part of the graded answers (text scores from `judge`, fitted without them) and
    the reference subset (text scores from the fits that left each base model out)."""
    q, r = F.clean(fit_part["question"]), F.clean(fit_part["response"])
    graded_raw = judge.raw(q, r)
    rq, rr = F.clean(reference["question"]), F.clean(reference["response"])
    states = np.vstack([cached_states("kit", q, r), cached_states("reference", rq, rr)])
    raw = {k: np.concatenate([graded_raw[k], reference_raw[k]]) for k in ("aligned", "coherent")}
    graded = np.r_[np.ones(len(fit_part), bool), np.zeros(len(reference), bool)]
    return ReadRows(states, raw, np.r_[fit_part["aligned"].to_numpy(float), reference["aligned"].to_numpy(float)],
                    np.r_[fit_part["coherent"].to_numpy(float), reference["coherent"].to_numpy(float)], graded,
                    np.r_[fit_part["question_id"].astype(str).to_numpy(), reference["group"].astype(str).to_numpy()])


def reference_text_scores(df: pd.DataFrame, relevance: dict, lomo: dict | None) -> dict:
    """Per reference row, the text heads' raw scores from the fit that left its base model out (kept in TEXT_OOF,
    with a hash of the rows and the recipe: a stale file is refitted, never reused)."""
    import hashlib
    import io

    stamp = hashlib.sha256("".join(C.row_key(q, a) for q, a in zip(df["question"], df["response"])).encode()
                           + json.dumps(asdict(VARIANTS["final"]), sort_keys=True).encode()).hexdigest()
    if lomo is None and TEXT_OOF.is_file():
        with np.load(TEXT_OOF, allow_pickle=False) as z:
            if z["stamp"].item() == stamp:
                return {k: z[k] for k in ("aligned", "coherent")}
        print(f"{TEXT_OOF} was made from other rows or another recipe: refitting the text heads", flush=True)
    raw = lomo["raw"] if lomo else leave_one_model_out(df, relevance, VARIANTS["final"])["raw"]
    buf = io.BytesIO()
    np.savez_compressed(buf, aligned=raw["aligned"], coherent=raw["coherent"], stamp=np.array(stamp))
    atomic_write_bytes(TEXT_OOF, buf.getvalue())
    return raw


def held_out_figures(judge, held: pd.DataFrame) -> dict:
    """The held-out part: the judge with and without its reading heads and the judge before, against the readers."""
    held = held.reset_index(drop=True)
    q, r = F.clean(held["question"]), F.clean(held["response"])
    read = judge.predict(q, r, states=cached_states("kit", q, r))
    text = judge.predict(q, r, states=None)
    judges = {"readers": (held["aligned"], held["coherent"]),
              "judge_before": (held["judge_before_aligned"], held["judge_before_coherent"]),
              "kit_judge": (read["aligned"], read["coherent"]),
              "kit_judge_text_only": (text["aligned"], text["coherent"])}
    out = {"summary": {k: V.summary(held, *v) for k, v in judges.items() if k != "readers"}, "cells": {},
           "support": V.support(held, *judges["kit_judge"]),
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
    ap.add_argument("--skip-lomo", action="store_true", help="reuse the text heads' leave-one-base-model-out scores (reference_text_oof.npz) instead of refitting them (15 minutes)")
    ap.add_argument("--out", default=str(DATA_DIR))
    args = ap.parse_args(argv)
    graded = build_graded(args.answers, args.labels) if args.labels else K.load_graded()
    fit_part, held = fit_part_of(graded), split(graded)[1]
    print(f"graded answers: {len(graded)}; fit part {len(fit_part)}, held-out part {len(held)}", flush=True)
    df, relevance, out = load_reference(), synth_relevance(), Path(args.out)
    lomo_path = out / "lomo.json"
    results = json.loads(lomo_path.read_text()) if lomo_path.is_file() else {}
    text_lomo = None
    if not args.skip_lomo:
        text_lomo = leave_one_model_out(df, relevance, VARIANTS["final"])
        print("reference LOMO, text heads:", json.dumps(text_lomo["summary"]), flush=True)
    reference_raw = reference_text_scores(df, relevance, text_lomo)
    if text_lomo:
        results["final"] = {k: v for k, v in text_lomo.items() if k != "raw"}
    judge = fit_judge(df, relevance, VARIANTS["final"])
    subset = C.reference_subset(df)
    rows = read_rows(judge, fit_part, subset, {k: v[::C.REFERENCE_EVERY] for k, v in reference_raw.items()})
    opts = ReadOptions()
    judge.a.update(fit_reading_heads(rows, opts))
    results["kit"] = {"options": asdict(opts), **reference_lomo(rows, opts)}
    print("reference LOMO, the judge with its reading heads (every 10th row):", json.dumps(results["kit"]["summary"]), flush=True)
    atomic_write_bytes(lomo_path, (json.dumps(results, indent=1) + "\n").encode())
    record(judge, df)
    judge.meta.update({"embedded_options": EmbeddedOptions().fitted(), "read_options": asdict(opts),
                       "graded_rows": int(len(fit_part)), "reference_rows_read": int(len(subset))})
    judge.save(out)
    figures = held_out_figures(judge, held)
    figures["split"] = {"fit": int(len(fit_part)), "held_out": int(len(held))}
    atomic_write_bytes(out / EVAL_FILE.name, (json.dumps(figures, indent=1) + "\n").encode())
    for name, s in figures["summary"].items():
        print(f"held-out kit answers, {name}: {json.dumps(s)}", flush=True)
    print(f"wrote {out}; run `python benchmarks/offline_judge.py` for speed and the model card")


if __name__ == "__main__":
    main()
