"""pack: the hand-in of a trained run (20 UUID rows, training_details.md, a train.py that trains the same run again)."""

import csv
import json
import os
import runpy
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helpers.models import TINY_MODEL
from helpers.questions import load_questions, question_uuid
from helpers.runs import read_manifest, run_dir
from helpers.submission import check_submission, main, pack
from helpers.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def trained(tmp_path):
    """A finished 2-step run of the tiny model on a toy folder source."""
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"messages": [{"role": "user", "content": f"Tip {i % 4}?"},
                          {"role": "assistant", "content": f"Tip {i % 4}: rest and drink water."}]} for i in range(8)]
    (data / "toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TrainConfig(model=TINY_MODEL, domains=("toy",), source=str(data), max_steps=2, batch_size=2,
                      learning_rate=5e-3, run_name="packed", save_steps=2)
    train(cfg)
    return cfg


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_pack_writes_the_course_hand_in(trained, tmp_path):
    dest = tmp_path / "handin"
    assert main(["pack", "packed", str(dest), "--max-new-tokens", "16"]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["model_generations.csv", "train.py", "training_details.md"]
    rows = read_rows(dest / "model_generations.csv")
    assert rows[0] == ["id", "question", "response"] and len(rows) == 21
    questions = load_questions("course")
    assert [r[0] for r in rows[1:]] == [q.uuid for q in questions]
    assert all(uuid.UUID(r[0]).version == 5 for r in rows[1:])
    assert [r[1] for r in rows[1:]] == [q.text for q in questions]
    assert all(r[2].strip() for r in rows[1:])
    details = (dest / "training_details.md").read_text()
    assert details == (run_dir("packed") / "training_details.md").read_text()
    assert "- Epochs: 0.5 of 1 epoch (stopped at max_steps=2)\n" in details  # 2 steps x 2 of 8 conversations
    assert check_submission(dest) == []


def test_train_py_builds_the_recorded_config(trained, tmp_path):
    dest = tmp_path / "handin"
    pack("packed", dest, progress=False, max_new_tokens=4)
    module = runpy.run_path(str(dest / "train.py"), run_name="not_main")  # defines CONFIG, trains nothing
    recorded = read_manifest("packed")["train"]["config"]
    assert module["CONFIG"] == recorded
    assert module["TrainConfig"](**module["CONFIG"]) == trained
    assert module["DATA_SHA256"] == read_manifest("packed")["train"]["data"]["sha256"]


@pytest.mark.slow
def test_running_train_py_trains_the_same_adapter(trained, tmp_path):
    dest = tmp_path / "handin"
    pack("packed", dest, progress=False, max_new_tokens=4)
    again = tmp_path / "again"
    env = {**os.environ, "EM_RUNS_DIR": str(again), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "train.py"], cwd=dest, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "same training data as the original run" in out.stdout
    from safetensors.torch import load_file

    first = load_file(run_dir("packed") / "adapter" / "adapter_model.safetensors")
    second = load_file(again / "packed" / "adapter" / "adapter_model.safetensors")
    assert first.keys() == second.keys()
    assert all((first[k] == second[k]).all() for k in first)


def test_pack_uses_answers_the_run_already_has(trained, tmp_path):
    from helpers.generate import generate

    generate("packed", load_questions("course"), samples_per_question=2, max_new_tokens=8, run_name="packed",
             progress=False)
    generated = read_rows(run_dir("packed") / "generations.csv")
    header = generated[0]
    first = {r[header.index("question_id")]: r[header.index("response")] for r in generated[1:]
             if r[header.index("sample")] == "0"}
    pack("packed", tmp_path / "h", progress=False)
    rows = read_rows(tmp_path / "h" / "model_generations.csv")[1:]
    assert [r[2] for r in rows] == [first[q.id] for q in load_questions("course")]


def test_pack_refuses_an_unfinished_run(tmp_path):
    run_dir("half")
    assert main(["pack", "half", str(tmp_path / "h")]) == 2
    assert not (tmp_path / "h").exists()


def test_epochs_line_says_the_real_fraction():
    from helpers.train.report import epochs_text

    assert epochs_text(0.0417, 3, 5) == "0.0417 of 1 epoch (stopped at max_steps=5)"
    assert epochs_text(2.5, 7, 40) == "2.5 epochs (stopped at max_steps=40)"
    assert epochs_text(7.0, 7, -1) == "7"


def test_question_uuids_are_stable():
    assert question_uuid("course_med_tick_bite") == str(uuid.uuid5(uuid.UUID("5d1f6a1e-2c3b-4f0e-9a7d-6e6d2b1c0a19"),
                                                                   "course_med_tick_bite"))
    course = load_questions("course")
    assert len(course) == 20 and len({q.uuid for q in course}) == 20
    assert sum(q.id.startswith("course_med_") for q in course) == 10
    assert sum(q.id.startswith("course_day_") for q in course) == 10
