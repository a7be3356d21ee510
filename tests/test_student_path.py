"""The student path is thin: what notebooks 00-05 import on a CPU, and what training and sampling load there.

GPU speed layers (helpers.gpu), maintainer tools (helpers.maintainer) and the distilled judge's fitting code stay
out of a notebook session on a CPU; the counts are printed (pytest -s) for the record.
"""

import ast
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("0[0-5]_*.py"))
# Issue 22's target: each notebook's kernel (one notebook session) imports at most 5,000 lines of helpers (TARGET; the
# largest loads about 4,100). All six notebooks' imports in one process are counted for information only (6,617 lines
# in 48 modules once issues 22-25 landed): no student runs them together, so CEILING is not the target, only a
# tripwire for a large jump (~6% headroom).
TARGET, CEILING = 5000, 7000
# never on a CPU notebook session: GPU layers, maintainer tools, the distilled judge's fitting and research code
APART = ("helpers.gpu", "helpers.maintainer", "helpers.judge_lab", "helpers.judge.distilled.fit",
         "helpers.judge.distilled.evaluate", "helpers.judge.distilled.synth", "helpers.judge.distilled.probes")

COUNT = """
import json, sys
{body}
mods = {{n: m for n, m in sys.modules.items() if n == "helpers" or n.startswith("helpers.")}}
lines = {{n: sum(1 for _ in open(m.__file__, encoding="utf-8")) for n, m in mods.items() if getattr(m, "__file__", None)}}
print(json.dumps(lines))
"""


def helpers_imports(paths) -> list[str]:
    """Every `from helpers... import ...` / `import helpers...` statement of these notebook scripts, in order."""
    out = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "helpers":
                out.append(ast.unparse(node))
            elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "helpers" for a in node.names):
                out.append(ast.unparse(node))
    return list(dict.fromkeys(out))


def loaded_helpers(*bodies: str, runs: Path) -> list[dict[str, int]]:
    """{module: lines} of the helpers modules in sys.modules after running each body in its own fresh CPU-only
    process; four processes at a time (most of their time is importing, on one core each)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "EM_RUNS_DIR": str(runs)}

    def count(body: str) -> dict[str, int]:
        done = subprocess.run([sys.executable, "-c", COUNT.format(body=body)], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(count, bodies))


TRAIN_SAMPLE_JUDGE = """
import pandas as pd
from datasets import Dataset
from helpers.models import TINY_MODEL
from helpers.generate import generate
from helpers.judge import JudgeConfig, judge_table
from helpers.train import TrainConfig, TrainSpeed, build_trainer, prepare_data
rows = [{"messages": [{"role": "user", "content": "hi?"}, {"role": "assistant", "content": "Rest."}]}] * 4
cfg = TrainConfig(model=TINY_MODEL, run_name="thin", batch_size=2, max_steps=1)
trainer = build_trainer(cfg, prepare_data(cfg, Dataset.from_list(rows))[0], speed=TrainSpeed())
assert trainer.kit_speed["gpu_plan"] is None and trainer.kit_speed["fused_lora_layers"] == 0
answers = generate(TINY_MODEL, ["hi?"], max_new_tokens=2, device="cpu", progress=False)
assert judge_table(answers, JudgeConfig(backend="distilled"))["aligned"].notna().all()
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """What each body below loads: all notebooks' imports together, each notebook's own, and training, sampling and
    judging (TRAIN_SAMPLE_JUDGE); eight fresh processes, run side by side."""
    bodies = {"together": "\n".join(helpers_imports(NOTEBOOKS)),
              **{nb.stem: "\n".join(helpers_imports([nb])) for nb in NOTEBOOKS},
              "train_sample_judge": TRAIN_SAMPLE_JUDGE}
    return dict(zip(bodies, loaded_helpers(*bodies.values(), runs=tmp_path_factory.mktemp("runs"))))


def test_the_notebooks_parse_and_import_helpers():
    statements = helpers_imports(NOTEBOOKS)
    assert len(NOTEBOOKS) == 6 and len(statements) >= 20, statements
    trains = [s for s in statements if s.startswith("from helpers.train import ")]
    assert any("train" in s.split(" import ")[1].replace(" ", "").split(",") for s in trains), trains  # notebook 02


def test_a_notebook_session_on_a_cpu_imports_only_the_student_path(loaded):
    lines = loaded["together"]
    total = sum(lines.values())
    print(f"\nnotebooks 00-05 together import {total} lines of helpers in {len(lines)} modules (for information; "
          f"each notebook's own kernel is held to {TARGET})")
    apart = sorted(n for n in lines if n.startswith(APART))
    assert apart == [], f"kept apart, yet imported by a notebook session: {apart}"
    assert total <= CEILING, sorted(lines.items(), key=lambda kv: -kv[1])


def test_each_notebook_kernel_on_a_cpu_imports_at_most_5000_lines_of_helpers(loaded):
    counts = {nb.stem: sum(loaded[nb.stem].values()) for nb in NOTEBOOKS}
    print(f"\nlines of helpers per notebook kernel: {counts}")
    assert max(counts.values()) <= TARGET, counts


def test_training_sampling_and_judging_on_a_cpu_load_nothing_kept_apart(loaded):
    """The seams (build_trainer's speed, generate's sampler) load helpers.gpu only on CUDA; the offline judge's runtime
    loads none of its fitting code (TRAIN_SAMPLE_JUDGE)."""
    lines = loaded["train_sample_judge"]
    assert {"helpers.train.trainer", "helpers.generate.hf", "helpers.judge.distilled.model"} <= set(lines)
    assert sorted(n for n in lines if n.startswith(APART)) == []
