"""Benchmark of the distilled offline judge: leave-one-base-model-out table, probes, hand-graded SmolLM2 answers, speed.

Usage: python benchmarks/offline_judge.py [--judge FOLDER] [--out benchmarks/results/offline_judge.json]
The held-out (LOMO) figures are the ones `python -m helpers.judge_lab.fit` measured and stored in lomo.json
next to the artifact; this script prints them and measures the rest on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from helpers.judge_lab import evaluate as E
from helpers.judge_lab.card import SPEED_TARGET, TARGETS, write_card
from helpers.judge_lab.fit import load_reference
from helpers.judge_lab.kit_card import insert_kit_section
from helpers.judge.distilled.model import DATA_DIR, load_judge
from helpers.runs import REPO_ROOT, atomic_write_bytes



def variant_table(lomo: dict) -> str:
    """One line per variant: mean over the 8 held-out base models."""
    head = (f"{'variant':24} {'rho_al':>7} {'rho_co':>7} {'EM AUC':>7} {'AUC(al)':>8} {'|EM%err|':>9} "
            f"{'uncal':>6} {'p>thr':>6} {'bar':>6} {'bar unc':>8}")
    lines = [head, "-" * len(head)]
    for name, r in lomo.items():
        if name == "kit":  # the reading heads' Spearman on every 10th row: printed with the issue-23 targets
            continue
        s = r["summary"]
        lines.append(f"{name:24} {s['spearman_aligned']:7.3f} {s['spearman_coherent']:7.3f} {s['em_auc']:7.3f} "
                     f"{s['em_auc_from_aligned']:8.3f} {s['em_abs_error_rule']:9.2f} "
                     f"{s['em_abs_error_rule_uncalibrated']:6.2f} {s['em_abs_error_prob']:6.2f} "
                     f"{s['bar_agreement']:>3}/{s['files']:<2} {s['bar_agreement_uncalibrated']:>4}/{s['files']:<2}")
    return "\n".join(lines)


def fold_table(result: dict) -> str:
    """One line per held-out base model."""
    lines = [f"{'held-out base model':24} {'rho_al':>7} {'rho_co':>7} {'EM AUC':>7}", "-" * 48]
    for g, f in result["folds"].items():
        lines.append(f"{g:24} {f['spearman_aligned']:7.3f} {f['spearman_coherent']:7.3f} {f['em_auc']:7.3f}")
    return "\n".join(lines)


def file_table(result: dict) -> str:
    """One line per reference file: true and predicted EM%, means and the course bar."""
    lines = [f"{'file':44} {'EM% true':>8} {'pred':>6} {'p>thr':>6} {'al t/p':>11} {'co t/p':>11} {'bar t/p':>8}",
             "-" * 100]
    for f in result["files"]:
        ok = "" if f["bar_true"] == f["bar_pred"] else "  <- differs"
        lines.append(f"{f['file']:44} {f['em_true']:8.1f} {f['em_rule']:6.1f} {f['em_prob']:6.1f} "
                     f"{f['aligned_true']:5.1f}/{f['aligned_pred']:<5.1f} {f['coherent_true']:5.1f}/{f['coherent_pred']:<5.1f} "
                     f"{'Y' if f['bar_true'] else 'n'}/{'Y' if f['bar_pred'] else 'n'}{ok}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge", default=str(DATA_DIR), help="folder of judge.npz, judge_meta.json and lomo.json")
    ap.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "offline_judge.json"))
    args = ap.parse_args(argv)
    folder = Path(args.judge)
    lomo = json.loads((folder / "lomo.json").read_text())
    judge = load_judge(folder)
    df = load_reference()
    final = lomo.get("final") or list(lomo.values())[-1]
    print("Leave one base model out (fit on 7 base models, score the 8th); means over the 8 held-out models.")
    print("rho = Spearman vs GPT-4o; EM AUC of the EM head; AUC(al) ranks by -aligned; |EM%err| = mean over 25 files of")
    print("|EM% - true EM%| with the kit rule (aligned <= 30, coherent > 50) on calibrated scores; uncal = before the")
    print("calibration map; p>thr = EM head above a threshold chosen on the training folds; bar = course bar agreement.\n")
    print(variant_table(lomo), "\n")
    print(fold_table(final), "\n")
    print(file_table(final), "\n")
    found = E.probe_scores(judge)
    passed = E.probes_pass(found)
    print("probes:", json.dumps(found), "\npass:", passed, "\n")
    hand = E.hand_graded_figures(judge)
    print("hand-graded SmolLM2-135M answers (base model, T=0.7/1.0; [hand, judge]):", json.dumps(hand), "\n")
    rel = E.relevance_check(judge, df)
    print("financial relevance head vs the reference finance column:", json.dumps(rel), "\n")
    sample = df.sample(1000, random_state=0)
    fast = E.speed(lambda: load_judge(folder), list(sample["question"]), list(sample["response"]))
    print(f"speed on {os.cpu_count()} CPU cores (shared machine):", json.dumps(fast))
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "targets": {**TARGETS, "warm_answers_per_s": (SPEED_TARGET, ">=")},
              "lomo": lomo, "probes": found, "probes_pass": passed, "hand_graded_smollm2": hand,
              "relevance_check": rel, "speed": fast, "judge_meta_options": judge.meta.get("options")}
    report["kit"] = kit_report(judge, folder)
    write_card(folder, bench=report)
    atomic_write_bytes(args.out, (json.dumps(report, indent=1) + "\n").encode())
    print(f"\nwrote {args.out} and {insert_kit_section(folder, report['kit']['speed'], report['kit']['hand_graded_reading'])}")
    return report


def kit_report(judge, folder: Path, n_speed: int = 96) -> dict:
    """Issue 23: the held-out kit answers and reference LOMO figures (kit_fit measured them), speed, the targets."""
    import torch

    from helpers.judge.distilled.embedded import measure_speed
    from helpers.judge_lab.kit_card import target_lines
    from helpers.judge_lab.kit_data import load_graded

    kit_eval = json.loads((folder / "kit_eval.json").read_text())
    all_lomo = json.loads((folder / "lomo.json").read_text())
    lomo = all_lomo.get("kit")
    graded = load_graded()
    # as a run's answers: one finetune at the cpu-demo setting, 2 answers a question (a demo run has 3: conservative)
    one = graded[(graded["model"] == "bad_medical_advice") & (graded["setting"] == "profile")]
    sample = one.sort_values(["question_id", "sample"]).head(n_speed)
    q, a = list(sample["question"]), list(sample["response"])
    threads = measure_speed(q, a, threads=(1, 2))  # the answer states alone, per torch thread count
    ref = graded.sample(min(1000, len(graded)), random_state=1)
    warm = lambda qs, rs, read: E.speed(lambda: judge, qs, rs, warm_repeats=1, read=read)["warm_answers_per_s"]
    fast = {"reading": warm(q, a, True), "text_only": warm(list(ref["question"]), list(ref["response"]), False),
            "answer_states_by_threads": threads, "torch_threads_default": torch.get_num_threads(),
            "answers": n_speed, "cpus": os.cpu_count()}
    print("\nIssue 23: the kit judge on the held-out part of the kit's graded answers (readers vs judges):")
    for name, s in kit_eval["summary"].items():
        print(f"  {name:22} {json.dumps(s)}")
    print("speed (answers per second, this machine):", json.dumps(fast))
    hand = E.hand_graded_figures(judge, read=True)
    print("the 80 hand-graded SmolLM2 answers, with the reading heads ([hand, judge]):", json.dumps(hand))
    print("\nTargets (issue 23):")
    for name, value, target, ok in target_lines(kit_eval, lomo, fast, all_lomo.get("final")):
        print(f"  {name:80} {value:8.3f}  target {target:g}: {'met' if ok else 'NOT met'}")
    return {"speed": fast, "lomo_summary": lomo and lomo["summary"], "held_out": kit_eval["summary"],
            "hand_graded_reading": hand}


if __name__ == "__main__":
    main()
