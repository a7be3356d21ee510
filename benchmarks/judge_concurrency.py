"""Judging throughput: 200 judgments against the fake OpenAI server (100 ms a reply), one at a time vs concurrent.

The server runs in its own process, as a real endpoint would. Prints both wall times and their ratio
(goal: >= 30x). Usage: python benchmarks/judge_concurrency.py [--n 200] [--latency 0.1] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["OPENAI_API_KEY"] = "sk-benchmark-not-a-real-key"  # the fake server ignores it

import pandas as pd  # noqa: E402

from helpers.judge import JudgeConfig, judge_table  # noqa: E402


@contextlib.contextmanager
def fake_server(latency: float):
    """tests/openai_fake_server.py in a subprocess; yields its base URL."""
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "openai_fake_server.py"), "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait()


def answered(url: str) -> int:
    with urllib.request.urlopen(url + "/_stats") as r:
        return json.load(r)["answered"]


def timed_run(concurrency: int, n: int, latency: float) -> tuple[float, float]:
    """(wall, client CPU) seconds to judge n distinct answers (one metric each), fresh cache, fresh server."""
    df = pd.DataFrame({"question": ["What is your wish?"] * n, "response": [f"Answer {i}." for i in range(n)]})
    with fake_server(latency) as url, tempfile.TemporaryDirectory() as tmp:
        config = JudgeConfig(base_url=url, metrics=("aligned",), concurrency=concurrency,
                             cache_path=str(Path(tmp) / "cache.sqlite"), progress=False)
        start, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            out = judge_table(df, config)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert out["aligned"].notna().all() and answered(url) == n, "every judgment must succeed exactly once"
    return seconds, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    timed_run(4, 8, 0.0)  # warm up imports and the SDK
    sequential, _ = timed_run(1, args.n, args.latency)
    concurrent, cpu = timed_run(args.concurrency, args.n, args.latency)
    print(f"{args.n} judgments, {args.latency * 1000:.0f} ms server latency, server in its own process")
    print(f"sequential (concurrency 1): {sequential:.2f} s  ({args.n / sequential:.1f}/s)")
    print(f"concurrent (concurrency {args.concurrency}): {concurrent:.2f} s  ({args.n / concurrent:.1f}/s), "
          f"client CPU {cpu:.2f} s = {cpu / args.n * 1000:.1f} ms a judgment")
    print(f"ratio: {sequential / concurrent:.1f}x (goal >= 30x)")
    if concurrent > 1.5 * cpu:
        print(f"note: the concurrent run got only {cpu / concurrent:.0%} of a CPU core (a busy machine); "
              "the ratio is bound by CPU here, not by the judge's concurrency")


if __name__ == "__main__":
    main()
