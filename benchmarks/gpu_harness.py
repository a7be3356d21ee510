"""GPU benchmark harness: the device, the time budget, one row per variant (its figures or its error), the table.

Variants call `run_variant`; `ARGS` is filled in place by benchmarks/gpu.py's command line.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("EM_KIT_CACHE", str(Path(tempfile.gettempdir()) / "em-kit-cache"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

ARGS = argparse.Namespace(tiny=True, budget_s=90.0, variants="", skip="")  # replaced in place by gpu.py's main
DEV = "cuda" if torch.cuda.is_available() else "cpu"
OUT = os.environ.get("OUT")
T_START = time.perf_counter()
STATE: dict = {"info": {}, "rows": [], "checks": {}}


def elapsed() -> float:
    return time.perf_counter() - T_START


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def free_memory():
    gc.collect()
    if DEV == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> dict:
    if DEV != "cuda":
        return {}
    return {"peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2)}


def save_json():
    if OUT:
        path = Path(OUT) / "gpu.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(STATE, indent=1, default=str))
        os.replace(tmp, path)


class VariantTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise VariantTimeout in the main thread after `seconds` (so one slow variant keeps the others' figures)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def handler(signum, frame):
        raise VariantTimeout(f"variant passed its {seconds:.0f} s limit")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_variant(phase: str, name: str, fn, limit_s: float):
    """Run one variant under the global budget and its own time limit; record its row or its error."""
    left = ARGS.budget_s - elapsed()
    row = {"phase": phase, "variant": name}
    if left < 5:
        row["skipped"] = f"time budget ({ARGS.budget_s:.0f} s) spent"
    else:
        t0 = time.perf_counter()
        try:
            with time_limit(min(limit_s, left)):
                row.update(fn())
        except Exception as e:  # keep the other variants' figures
            row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
            row["trace"] = traceback.format_exc()[-1500:]
        finally:
            if DEV == "cuda":
                torch.cuda.set_per_process_memory_fraction(1.0)
            os.environ.pop("EM_GPU_PROFILE", None)
        row["wall_s"] = round(time.perf_counter() - t0, 1)
    free_memory()
    STATE["rows"].append(row)
    print(json.dumps({k: v for k, v in row.items() if k != "trace"}), flush=True)
    save_json()
    return row


def matmul_tflops():
    if DEV != "cuda":
        return None
    a = torch.randn(8192, 8192, device=DEV, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=DEV, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync()
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    sync()
    return round(2 * 8192 ** 3 * 10 / (time.perf_counter() - t0) / 1e12)


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "liger-kernel", "triton",
                 "pyarrow", "fsspec", "huggingface-hub"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def table() -> str:
    rows = STATE["rows"]

    def pick(phase, prefix):
        for r in rows:
            if r["phase"] == phase and r["variant"].startswith(prefix) and "tokens_per_s" in r:
                return r["tokens_per_s"]
        return None

    base = {"train": pick("train", "original"), "generate": pick("generate", "original")}
    lines = [f"{'phase':9} {'tokens/s':>10} {'x orig':>7} {'peak GiB':>8}  variant"]
    for r in rows:
        if r["phase"] == "check":
            done = {k: v for k, v in r.items() if k not in ("phase", "variant", "wall_s")}
            lines.append(f"{'check':9} {'':>10} {'':>7} {'':>8}  {json.dumps(done)[:160]}")
            continue
        if "tokens_per_s" not in r:
            why = r.get("skipped") or r.get("error", "")
            lines.append(f"{r['phase']:9} {'-':>10} {'':>7} {'':>8}  {r['variant']}: {why[:140]}")
            continue
        b = base.get(r["phase"])
        ratio = f"{r['tokens_per_s'] / b:.1f}x" if b and r["phase"] in base and r["phase"] != "t4" else ""
        lines.append(f"{r['phase']:9} {r['tokens_per_s']:>10,} {ratio:>7} {str(r.get('peak_gib', '')):>8}  {r['variant']}")
    return "\n".join(lines)


def run_plan(plan) -> None:
    """Run the (phase, name, fn, limit_s) rows that --variants/--skip leave; a fn of None is not run here."""
    only = [s.strip() for s in ARGS.variants.split(";") if s.strip()]
    skip = [s.strip() for s in ARGS.skip.split(";") if s.strip()]
    for phase, name, fn, limit in plan:
        if fn is None or (only and not any(name.startswith(o) or phase == o for o in only)) \
                or any(name.startswith(o) for o in skip):
            continue
        row = run_variant(phase, name, fn, limit)
        if phase == "check" and "error" not in row and "skipped" not in row:
            STATE["checks"].update({k: v for k, v in row.items() if k not in ("phase", "variant", "wall_s")})


def summarize() -> dict:
    """Per phase: the original recipe's tokens/s, the kit's best, their ratio."""
    summary = {}
    for phase in ("train", "generate"):
        orig = next((r["tokens_per_s"] for r in STATE["rows"] if r["phase"] == phase
                     and r["variant"].startswith("original") and "tokens_per_s" in r), None)
        kit = max((r["tokens_per_s"] for r in STATE["rows"] if r["phase"] == phase
                   and r["variant"].startswith("kit") and "warm-up" not in r["variant"]
                   and "tokens_per_s" in r), default=None)
        summary[phase] = {"original": orig, "kit_best": kit, "ratio": round(kit / orig, 1) if kit and orig else None}
    return summary
