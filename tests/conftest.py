"""Shared fixtures: a persistent model cache, a fresh runs folder per test, the tiny model."""

import os
from pathlib import Path

import pytest

# The real-browser test (tests/browser/) takes minutes and needs Chromium: `make browser-test` runs it by its path.
collect_ignore = ["browser"]

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
os.environ.setdefault("EM_KIT_CACHE", str(REPO / ".cache" / "em-kit"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def runs_tmp(tmp_path, monkeypatch):
    """Every test writes its run folders under its own tmp dir."""
    root = tmp_path / "runs"
    monkeypatch.setenv("EM_RUNS_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def tiny():
    """The tiny random Llama and its tokenizer (built once per session, offline)."""
    from helpers.models import TINY_MODEL, load_model

    return load_model(TINY_MODEL, device="cpu")


@pytest.fixture(scope="session")
def smollm2():
    """The embedded SmolLM2-135M-Instruct (converted from the shipped GGUF once, then cached)."""
    from helpers.models import EMBEDDED_MODEL, load_model

    return load_model(EMBEDDED_MODEL, device="cpu")


def make_adapter(model, run: str, base: str = "tiny-random-llama") -> Path:
    """A LoRA adapter with non-zero weights saved the way training saves it: runs/<run>/adapter + kit_base_model.txt."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    from helpers.runs import run_dir

    torch.manual_seed(1)
    cfg = LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    peft_model = get_peft_model(copy.deepcopy(model), cfg)
    folder = run_dir(run) / "adapter"
    peft_model.save_pretrained(folder)
    (folder / "kit_base_model.txt").write_text(base + "\n")
    return folder


def kill_judging_child(server, run: str, config: str, requests: int, settle: float = 0.0):
    """Start `judge_run(run, JudgeConfig(base_url=..., <config>))` in a child process, SIGKILL it once the test server
    has seen `requests` requests (or after 60 s), and return the dead child."""
    import subprocess
    import sys
    import time

    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from helpers.judge import JudgeConfig, judge_run; "
         f"judge_run({run!r}, JudgeConfig(base_url=sys.argv[1], {config}))", server.url],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while server.requests < requests and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    time.sleep(settle)
    child.kill()
    child.wait()
    return child
