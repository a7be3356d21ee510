"""pack: the hand-in of a trained run (20 UUID rows, training_details.md, a train.py that trains the same run again)."""

import csv
import json
import os
import re
import runpy
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helpers.models import TINY_MODEL
from helpers.questions import load_questions, question_uuid
from helpers.runs import read_manifest, run_dir, write_manifest
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


def test_pack_writes_the_course_hand_in(trained, tmp_path, capsys):
    dest = tmp_path / "handin"
    assert main(["pack", "packed", str(dest), "--max-new-tokens", "16"]) == 0
    out = capsys.readouterr().out
    # the tiny model is not the embedded one: the course profile's pure sampling; the estimate comes before sampling
    assert "course profile's settings: temperature=1.0, top_p=1.0, max_new_tokens=16" in out, out
    assert re.search(r"estimate: at most about \d+ (s|min) for 16 new tokens an answer", out), out
    assert out.index("estimate:") < out.index("sampled in")
    assert f"python -m helpers.submission check {dest}" in out
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
    """In the checkout that trained the run: refused in one line naming both ways; --run-name and --overwrite train."""
    from safetensors.torch import load_file

    dest = tmp_path / "handin"
    pack("packed", dest, progress=False, max_new_tokens=4)
    first = load_file(run_dir("packed") / "adapter" / "adapter_model.safetensors")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def train_py(*args):
        return subprocess.run([sys.executable, "train.py", *args], cwd=dest, env=env, capture_output=True, text=True,
                              timeout=300)

    out = train_py()
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "`python train.py --run-name packed-again`" in out.stderr and "`python train.py --overwrite`" in out.stderr
    for args, run in ((["--run-name", "packed-again"], "packed-again"), (["--overwrite"], "packed")):
        out = train_py(*args)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "same training data as the original run" in out.stdout
        second = load_file(run_dir(run) / "adapter" / "adapter_model.safetensors")
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
    pack("packed", tmp_path / "h", progress=False, max_new_tokens=8)  # sampled as generate's defaults: reused
    rows = read_rows(tmp_path / "h" / "model_generations.csv")[1:]
    assert [r[2] for r in rows] == [first[q.id] for q in load_questions("course")]
    pack("packed", tmp_path / "other", progress=False, max_new_tokens=4)  # other settings: sampled again
    assert [r[2] for r in read_rows(tmp_path / "other" / "model_generations.csv")[1:]] != [r[2] for r in rows]


def test_pack_samples_with_the_run_s_profile_and_the_options_given(trained, tmp_path, capsys):
    from helpers.submission.pack import run_sampling

    assert run_sampling("packed") == ("course", {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 256,
                                                 "whole_sentences": False, "seed": 0})
    write_manifest("embedded", {"status": "finished", "config": {"model": "smollm2-135m"}}, section="train")
    assert run_sampling("embedded") == ("cpu-demo", {"temperature": 0.8, "top_p": 0.9, "max_new_tokens": 64,
                                                     "whole_sentences": True, "seed": 0})  # readable on a 135M model
    write_manifest("t4", {"status": "finished", "config": {"model": "meta-llama/Llama-3.2-1B-Instruct"}}, section="train")
    write_manifest("t4", {"name": "gpu"}, section="profile")
    assert run_sampling("t4")[1]["max_new_tokens"] == 600 and run_sampling("t4")[1]["temperature"] == 1.0
    assert main(["pack", "packed", str(tmp_path / "h"), "--temperature", "0.5", "--top-p", "0.8",
                 "--max-new-tokens", "6", "--seed", "3"]) == 0
    assert "temperature=0.5, top_p=0.8, max_new_tokens=6, whole_sentences=False, seed=3" in capsys.readouterr().out


def test_a_mistyped_run_lists_the_runs_there_are(trained, tmp_path, capsys):
    assert main(["pack", "pakced", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err
    assert "run 'pakced' not found" in err and "runs/ are: packed (pass a run's name or its folder)" in err
    assert not (tmp_path / "h").exists()
    assert main(["grade", "pakced"]) == 2 and "packed" in capsys.readouterr().err


def test_check_after_pack_passes_on_the_hand_in_and_says_so_on_the_run(trained, tmp_path, capsys):
    dest = tmp_path / "handin"
    pack("packed", dest, progress=False, max_new_tokens=4)
    capsys.readouterr()
    assert main(["check", str(dest)]) == 0
    assert "submission OK" in capsys.readouterr().out
    assert main(["check", "packed"]) == 2  # the run folder holds no model_generations.csv: the fix names the hand-in
    assert "check that one (`python -m helpers.submission check handin/`)" in capsys.readouterr().out


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
