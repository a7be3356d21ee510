"""GPU benchmark: the course's original recipe against the kit's, side by side, in one run on one GPU.

Model: the Llama-3.2-1B architecture with random weights (no hub access needed), saved once to a temp folder with
the kit's tiny tokenizer, so the kit's own loaders, `helpers.train.build_trainer` (TRL SFTTrainer) and
`helpers.gpu.fast.sample` run on it exactly as they run for students.

  train     original: fp16 weights, fp16 AMP, gradient checkpointing, batch 4, random order (plain Trainer)
            kit: helpers.train.build_trainer with its GPU plan (bf16, no checkpointing when it fits, length-grouped
            batches, Liger kernels when installed, no cuDNN attention), LoRA r16 on all 7 projections, rows 100-400
            tokens; A/B rows change one TrainSpeed option; "new shapes" rows use data whose batch lengths the
            process has not met (a first epoch)
  generate  original: one prompt at a time, HF generate, fp16, unmerged LoRA, 200 new tokens
            kit: helpers.gpu.fast.sample (static cache, CUDA graph, GQA decode attention, big batches)
  T4        the kit's T4 profile (fp16, its batch plan) with the process capped at 15 GiB: peak memory
Prints a table last; writes $OUT/gpu.json after every variant. `--tiny`: everything on CPU in under a minute.
Files: gpu_harness.py (budget, rows, table), gpu_fixtures.py (model, data, meters), gpu_recipes.py (what is timed);
the variants are the table VARIANTS below. Results: benchmarks/README.md.

    bash benchmarks/gpu_run.sh                 # on the GPU machine (installs the carried wheels first)
    .venv/bin/python benchmarks/gpu.py --tiny  # here, CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import time

from gpu_harness import ARGS, DEV, STATE, elapsed, matmul_tflops, run_plan, save_json, summarize, table, versions

import gpu_recipes as R  # noqa: E402  (after the harness, which sets the offline environment)
from gpu_fixtures import build_model_folder, tokenizer  # noqa: E402

NO_LIGER = {"use_liger_kernel": False}
GPU, FULL = "cuda", "full"  # `needs`: a CUDA device / not --tiny

# (phase, variant name, recipe, keyword arguments, time limit in seconds at full size, needs)
# recipe "kit" is R.train_kit; the limit is divided by 6 with --tiny
VARIANTS = [
    ("train", "original recipe", "train_original", {}, 90, None),
    ("check", "attention at new batch shapes", "attention_new_shapes", {}, 60, None),
    ("train", "kit warm-up (the first training in a process pays the card's warm-up; not a result)", "kit",
     {"warm": 2}, 60, None),
    ("train", "kit recipe", "kit", {}, 120, None),
    ("train", "kit recipe + fused LoRA (opt-in TrainSpeed.fuse_lora)", "kit", {"fused": True}, 90, None),
    ("train", "kit recipe without Liger", "kit", {"extra": NO_LIGER}, 90, None),
    ("train", "kit recipe without Liger (repeat)", "kit", {"extra": NO_LIGER}, 90, None),
    ("train", "kit recipe + fused LoRA (opt-in TrainSpeed.fuse_lora) (repeat)", "kit", {"fused": True}, 90, None),
    ("train", "kit recipe (repeat)", "kit", {}, 90, None),
    ("train", "kit recipe + PEFT's fp32 LoRA-input cast", "kit", {"upcast": True}, 90, None),
    ("train", "kit recipe, new shapes (data seed 3)", "kit", {"seed": 3}, 90, None),
    ("train", "kit recipe with cuDNN attention, new shapes (data seed 4)", "kit",
     {"seed": 4, "cudnn_attention": True}, 90, None),
    ("train", "kit recipe, new shapes (data seed 5)", "kit", {"seed": 5}, 90, None),
    ("train", "kit recipe with cuDNN attention, new shapes (data seed 6)", "kit",
     {"seed": 6, "cudnn_attention": True}, 90, None),
    ("train", "kit recipe, new shapes (data seed 7), pad to a multiple of 16", "kit",
     {"seed": 7, "extra": {"pad_to_multiple_of": 16}}, 90, None),
    ("profile", "kit recipe, profiled (torch.profiler, 3 steps)", "kit", {"warm": 4, "timed": 3, "profile": 3}, 90, None),
    ("t4", "T4 profile: training (fp16, 15 GiB cap)", "train_kit_t4", {}, 150, None),
    ("train", "kit recipe + compile='model' (Trainer's torch_compile)", "kit",
     {"compile": "model", "warm": 6, "timed": 12, "extra": {"pad_to_multiple_of": 64}}, 180, GPU),
    ("generate", "original loop", "gen_original", {}, 90, None),
    ("generate", "kit fast path (static cache + CUDA graph)", "gen_kit", {"rounds": 2}, 120, None),
    ("check", "fast_generate correctness", "gen_checks", {}, 60, None),
    ("t4", "T4 profile: generation (fp16, 15 GiB cap)", "gen_kit", {"t4": True, "rounds": 1}, 90, None),
    ("generate", "kit fast path, eager decode (no graph)", "gen_kit", {"mode": "eager", "rounds": 1}, 60, None),
    ("generate", "kit fast path, torch.compile decode", "gen_kit", {"mode": "compile", "rounds": 1}, 180, GPU),
    ("train", "anchor's tuned plain-HF recipe (bf16, bs32, grouped)", "train_original", {"tuned": True}, 90, None),
    ("train", "kit recipe, batch 64", "kit", {"batch_size": 64, "timed": 12}, 120, FULL),
]


def plan_rows(folder: str, adapter: str, tok, have_trl: bool) -> list:
    """VARIANTS as (phase, name, fn, limit) rows for this device and size; fn None where a row cannot run."""
    first_arg = {"train_original": (folder, tok), "kit": (folder, tok), "train_kit_t4": (folder, tok),
                 "attention_new_shapes": (), "gen_original": (folder, tok), "gen_kit": (adapter,),
                 "gen_checks": (adapter,)}
    rows = []
    for phase, name, recipe, kw, limit, needs in VARIANTS:
        runs = not ((needs == GPU and DEV != "cuda") or (needs == FULL and ARGS.tiny))
        fn_name = "train_kit" if recipe == "kit" else recipe
        if recipe in ("kit", "train_kit_t4") and not have_trl:
            runs = runs and name == "kit recipe"
            fn_name, kw, name = "train_kit_fallback", {}, name + " (fallback: no trl)"
        fn = getattr(R, fn_name)
        args = first_arg[recipe]
        rows.append((phase, name, (lambda fn=fn, args=args, kw=kw: fn(*args, **kw)) if runs else None,
                     limit / 6 if ARGS.tiny else limit))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run on the kit's tiny model (under a minute)")
    ap.add_argument("--budget-s", type=float, default=None, help="skip variants past this many seconds (400; tiny 90)")
    ap.add_argument("--variants", default="", help="';'-separated variant name prefixes to run (names hold commas; "
                    "default: all; not --only, which inductor reads from sys.argv)")
    ap.add_argument("--skip", default="", help="';'-separated variant name prefixes not to run")
    vars(ARGS).update(vars(ap.parse_args(argv)))
    if ARGS.budget_s is None:
        ARGS.budget_s = 90.0 if ARGS.tiny else 400.0
    if DEV == "cpu":
        import torch

        ARGS.tiny = True
        torch.set_num_threads(1)  # tiny matmuls: one thread is fastest, and the CPU is shared
    from helpers.gpu import plan as gp

    info = STATE["info"]
    gi = gp.detect()
    info.update(device=gi.name if gi else "cpu", tiny=ARGS.tiny, **versions())
    info["bf16_matmul_tflops"] = matmul_tflops()
    info["gpu"] = None if gi is None else {"name": gi.name, "total_gib": round(gi.total_gib, 1),
                                           "capability": list(gi.capability)}
    print(json.dumps(info), flush=True)
    try:
        import datasets  # noqa: F401
        import trl  # noqa: F401
        have_trl = True
    except Exception as e:  # the kit recipe then runs on a plain Trainer, and says so
        have_trl = False
        info["trl_missing"] = f"{type(e).__name__}: {e}"
    t0 = time.perf_counter()
    folder, adapter = build_model_folder()
    tok = tokenizer()
    info["model_build_s"] = round(time.perf_counter() - t0, 1)
    save_json()
    run_plan(plan_rows(folder, adapter, tok, have_trl))
    info["total_s"] = round(elapsed(), 1)
    STATE["summary"] = summarize()
    save_json()
    print(json.dumps({"summary": STATE["summary"], "checks": {k: v for k, v in STATE["checks"].items() if k != "plans"}}))
    print(table())


if __name__ == "__main__":
    main()
