"""benchmarks/gpu.py in CPU `--tiny` mode: the harness, fixtures and recipes run the kit's own train and sample paths."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

FUSED = "kit recipe + fused LoRA (opt-in TrainSpeed.fuse_lora) (repeat)"
VARIANTS = f"kit recipe (repeat);{FUSED};kit fast path (static;fast_generate correctness"  # name prefixes


def test_gpu_benchmark_tiny_runs_the_kit_recipes(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "benchmarks/gpu.py", "--tiny", "--budget-s", "400", "--variants", VARIANTS],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((tmp_path / "gpu.json").read_text())
    rows = {r["variant"]: r for r in state["rows"]}
    assert set(rows) == {"kit recipe (repeat)", FUSED, "kit fast path (static cache + CUDA graph)",
                         "fast_generate correctness"}
    for row in rows.values():
        assert "error" not in row and "skipped" not in row, row
    kit, fused = rows["kit recipe (repeat)"], rows[FUSED]
    assert kit["tokens_per_s"] > 0 and kit["fused_lora_layers"] == 0 and fused["fused_lora_layers"] > 0
    assert kit["path"] == "helpers.train.build_trainer (TRL SFTTrainer)"
    assert state["checks"]["fast_vs_hf_greedy_tiny_fp32_rows_equal"] == "4/4"
