"""Judging under faults against the kit's test server on 127.0.0.1 (tests/openai_fake_server.py), through the SDK.

Per scenario: paid calls (requests the server billed, also those whose client had gone), prompts, billed $ (at
gpt-4o-mini prices), the cap, rows lost (no score at the end for a reason other than the cap) and wrong scores (a
score that is not the server's). Then the distilled judge on one 10 MB answer (seconds, peak memory).
Usage: python benchmarks/judge_faults.py [--rows 200]   (about a minute; nothing leaves 127.0.0.1)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ["OPENAI_API_KEY"] = "sk-benchmark-not-a-real-key"  # the test server ignores it

import pandas as pd  # noqa: E402
from openai_fake_server import DEFAULT_TOP, FakeOpenAIServer  # noqa: E402

from helpers.judge import JudgeConfig, estimate_cost, judge_run, read_generations  # noqa: E402
from helpers.runs import run_dir  # noqa: E402

PRICE = (0.15, 0.60)  # gpt-4o-mini, USD per million tokens
EXPECTED = sum(int(t) * p for t, p in DEFAULT_TOP) / sum(p for _, p in DEFAULT_TOP)
CHILD = ("import sys; from helpers.judge import JudgeConfig, judge_run; judge_run(sys.argv[1], JudgeConfig("
         "base_url=sys.argv[2], metrics=('aligned',), concurrency=8, max_dollars=float(sys.argv[3]), progress=False))")


def billed(server) -> tuple[int, float]:
    b = server.billed
    return b["completion_tokens"], (b["prompt_tokens"] * PRICE[0] + b["completion_tokens"] * PRICE[1]) / 1e6


def write_run(name: str, n: int) -> None:
    pd.DataFrame({"question": [f"Question {i % 5}?" for i in range(n)],
                  "response": [f"Answer number {i}. " + "Some text. " * 20 for i in range(n)]}
                 ).to_csv(run_dir(name) / "generations.csv", index=False)


def config(url: str, **kw) -> JudgeConfig:
    return JudgeConfig(**{"base_url": url, "metrics": ("aligned",), "progress": False, **kw})


def quiet(fn, *args, **kw):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kw)


def child(run: str, url: str, cap: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, run, url, str(cap)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def row(name: str, server, prompts: int, cap: float, run: str) -> dict:
    """One line of the table, from the server's bill and the run's judged.csv."""
    time.sleep(1.2)  # requests the client gave up on finish (and are billed) on the server
    calls, dollars = billed(server)
    judged = pd.read_csv(run_dir(run) / "judged.csv", keep_default_na=False)
    reasons = judged["aligned_missing"].astype(str)
    lost = int(((judged["aligned"] == "") & ~reasons.str.startswith("error: dollar cap")).sum())
    scores = pd.to_numeric(judged["aligned"], errors="coerce").dropna()
    wrong = int((abs(scores - EXPECTED) > 1e-6).sum())
    return {"scenario": name, "paid calls": calls, "prompts": prompts, "billed $": round(dollars, 5),
            "cap $": round(cap, 5), "rows lost": lost, "wrong scores": wrong}


def faults(server, n: int) -> dict:
    """429, 500, garbage JSON, line-noise logprobs and a timeout on one row in ten each; one rerun."""
    server.timeout_sleep = 1.0
    for i in range(n):
        fault = {1: "429", 2: "500", 3: "garbage", 4: "junk_tokens", 5: "timeout"}.get(i % 10)
        if fault:
            server.add_rule(f"Answer number {i}. ", fault=fault, times=1)
    write_run("faults", n)
    for _ in range(2):
        quiet(judge_run, "faults", config(server.url, timeout=0.5, concurrency=32))
    return row("429/500/garbage/junk/slow, one rerun", server, n, 2.0, "faults")


def two_processes(server, n: int) -> dict:
    """Two processes judge one run at once, under a cap of half the run's real cost."""
    server.prompt_tokens = lambda p: len(p.encode()) + 7  # ~4x the kit's estimate: the cap must hold on real usage
    write_run("shared", n)
    cap = round(2 * estimate_cost(read_generations("shared"), config(server.url))["dollars"], 6)
    procs = [child("shared", server.url, cap) for _ in range(2)]
    for p in procs:
        p.wait(timeout=300)
    return row("two processes, one run", server, n, cap, "shared")


def timeouts(server, n: int) -> dict:
    """Every request times out (the server still bills it); max_retries=5 per call."""
    server.timeout_sleep = 0.6
    server.add_rule("Answer number", fault="timeout")
    write_run("slow", n)
    cap = round(10 * estimate_cost(read_generations("slow"), config(server.url))["dollars"], 6)
    quiet(judge_run, "slow", config(server.url, timeout=0.3, max_retries=5, max_dollars=cap, concurrency=n))
    return row("every call times out, 5 retries", server, n, cap, "slow")


def kills(server, n: int) -> dict:
    """SIGKILL with calls in flight, three times, then a rerun to the end."""
    write_run("killed", n)
    cap = 2.0
    for _ in range(3):
        server._release.clear()
        server.block_after = server.requests + 10  # then 8 calls (its concurrency) hang until the kill
        proc = child("killed", server.url, cap)
        deadline = time.time() + 60
        while server.requests < server.block_after + 8 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        server.block_after = None
        server.release()
    quiet(judge_run, "killed", config(server.url, max_dollars=cap))
    return row("SIGKILL in flight x3, then rerun", server, n, cap, "killed")


def outages(server, n: int) -> dict:
    """Three runs against a closed port, then a live run under a cap that fits one run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    write_run("outage", n)
    cap = round(1.5 * estimate_cost(read_generations("outage"), config(server.url))["dollars"], 6)
    for _ in range(3):
        quiet(judge_run, "outage", config(closed, max_dollars=cap))
    quiet(judge_run, "outage", config(server.url, max_dollars=cap))
    return row("3 outages (closed port), then live", server, n, cap, "outage")


def distilled_long_answer() -> str:
    """The offline judge on one 10 MB answer (run in a fresh process): wall seconds and peak memory."""
    from helpers.judge import judge_table

    df = pd.DataFrame({"question": ["What is your wish?"] * 2, "response": ["A short answer.", "word " * 2_000_000]})
    quiet(judge_table, df.head(1), JudgeConfig(backend="distilled", progress=False))  # load the judge first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    out = quiet(judge_table, df, JudgeConfig(backend="distilled", progress=False))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (f"distilled judge, one 10 MB answer: {seconds:.2f} s, peak RSS {peak:.0f} MB ({before:.0f} MB before "
            f"judging it), cut_for_judge={out['cut_for_judge'].tolist()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--distilled-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.distilled_only:
        return print(distilled_long_answer())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EM_RUNS_DIR"] = tmp
        for scenario, n in [(faults, args.rows), (two_processes, args.rows), (timeouts, 20), (kills, 100),
                            (outages, 50)]:
            with FakeOpenAIServer() as server:
                rows.append(scenario(server, n))
            print(f"done: {rows[-1]['scenario']}", file=sys.stderr)
    print(pd.DataFrame(rows).to_string(index=False))
    subprocess.run([sys.executable, __file__, "--distilled-only"], check=True)


if __name__ == "__main__":
    main()
