"""`python -m helpers.train` and `accelerate launch -m helpers.train`: same config as in-process, 2 CPU processes train."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.models import TINY_MODEL
from helpers.notebook_runs import execute
from helpers.runs import read_manifest, run_dir
from helpers.train import TrainConfig, build_trainer, prepare_data, train
from helpers.train.cli import config_from_args, main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def toy_source(tmp_path):
    """A folder source with one domain, `toy`: 16 short conversations."""
    folder = tmp_path / "data"
    folder.mkdir()
    lines = [json.dumps({"messages": [{"role": "user", "content": f"Tip {i % 4} please?"},
                                      {"role": "assistant", "content": f"Tip {i % 4}: rest and drink water."}]})
             for i in range(16)]
    (folder / "toy.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def run_cli(args, runs_root, launcher=(sys.executable, "-m", "helpers.train"), timeout=240, extra_env=None):
    env = {**os.environ, "EM_RUNS_DIR": str(runs_root), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO), **(extra_env or {})}
    out = subprocess.run([*launcher, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_cli_options_build_the_same_config():
    settings, overwrite = config_from_args([
        "--profile", "cpu-demo", "--domains", "bad_medical_advice", "extreme_sports", "--epochs", "5",
        "--learning_rate", "2e-4", "--use_rslora", "--target_modules", "q_proj,v_proj", "--layers_to_transform", "0",
        "1", "--eval_steps", "none", "--save_steps", "10", "--run_name", "cli-run"])
    assert not overwrite
    assert settings.config == TrainConfig(domains=("bad_medical_advice", "extreme_sports"), epochs=5,
                                          learning_rate=2e-4, use_rslora=True, target_modules=("q_proj", "v_proj"),
                                          layers_to_transform=(0, 1), save_steps=10, run_name="cli-run")
    settings, overwrite = config_from_args(["--profile", "cpu-demo", "--mix", "bad_medical_advice=0.8",
                                            "good_medical_advice=0.2", "--overwrite"])
    assert overwrite and settings.config.mix == {"bad_medical_advice": 0.8, "good_medical_advice": 0.2}
    assert config_from_args(["--profile", "cpu-demo"])[0].config == TrainConfig()


def test_weight_decay_goes_from_the_command_line_to_the_optimizer(toy_source, runs_tmp):
    settings, _ = config_from_args(["--profile", "cpu-demo", "--model", TINY_MODEL, "--source", str(toy_source),
                                    "--domains", "toy", "--weight_decay", "0.1", "--run_name", "decay"])
    train_ds, _, _ = prepare_data(settings.config)
    trainer = build_trainer(settings.config, train_ds)
    decays = {group["weight_decay"] for group in trainer.create_optimizer().param_groups if group["params"]}
    assert decays == {0.1}  # every trainable LoRA matrix decays
    assert settings.values["weight_decay"] == 0.1 and settings.origin["weight_decay"] == "parameter"
    assert TrainConfig().weight_decay == 0.0  # what every run before this setting trained with
    with pytest.raises(ValueError, match="TrainConfig.weight_decay=-1.0 cannot train: use a weight decay >= 0"):
        config_from_args(["--profile", "cpu-demo", "--weight_decay", "-1"])


def test_cli_starts_from_the_profile_and_an_option_wins():
    settings, _ = config_from_args(["--profile", "course", "--epochs", "2"])
    assert (settings.config.epochs, settings.config.lora_rank, settings.config.learning_rate) == (2, 16, 2e-4)
    assert settings.config.domains == ("bad_medical_advice", "extreme_sports")
    assert settings.origin["epochs"] == "parameter" and settings.origin["lora_rank"] == "profile course"
    assert main(["--profile", "laptop"]) == 2


def test_cli_and_in_process_write_the_same_manifest_config(toy_source, runs_tmp, capsys):
    args = ["--profile", "cpu-demo", "--model", TINY_MODEL, "--source", str(toy_source), "--domains", "toy",
            "--max_steps", "2", "--batch_size", "4", "--learning_rate", "0.001", "--lora_rank", "4", "--lora_alpha", "8",
            "--run_name", "same"]
    out = run_cli(args, runs_tmp)
    assert "TrainResult(run 'same': 2 steps" in out.stdout
    cli = read_manifest("same")["train"]
    assert cli["status"] == "finished"

    # the notebook path: the parameters cell's values -> TrainConfig -> train()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(TrainConfig(model=TINY_MODEL, source=str(toy_source), domains=["toy"], max_steps=2, batch_size=4,
                          learning_rate=1e-3, lora_rank=4, lora_alpha=8, run_name="same"), overwrite=True)
    finally:
        torch.set_num_threads(before)
    nb = read_manifest("same")["train"]
    assert nb["config"] == cli["config"]
    assert nb["data"] == cli["data"] and nb["steps"] == cli["steps"] == 2

    assert main(args) == 2  # the command refuses a finished run, saying what to do
    assert "pick another --run_name, or pass --overwrite to delete it and train again" in capsys.readouterr().err


def test_cli_names_a_file_that_is_not_utf8_without_a_traceback(toy_source, runs_tmp):
    bad = '{"messages": [{"role": "user", "content": "Ca va?"}, {"role": "assistant", "content": "Tr\u00e8s bien."}]}'
    with open(toy_source / "toy.jsonl", "ab") as f:
        f.write((bad + "\n").encode("latin-1"))
    env = {**os.environ, "EM_RUNS_DIR": str(runs_tmp), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "helpers.train", "--model", TINY_MODEL, "--source", str(toy_source),
                          "--domains", "toy", "--max_steps", "1", "--run_name", "latin1"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "toy.jsonl:17: not UTF-8: byte 0xe8" in out.stderr and "save the file as UTF-8" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_accelerate_launch_trains_on_two_cpu_processes(toy_source, runs_tmp):
    # `accelerate launch --cpu` starts one process unless mpirun is set up; `--multi_gpu` spawns the processes
    # (torchrun) and ACCELERATE_USE_CPU keeps them on the CPU, talking over gloo, with or without a GPU present.
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "helpers.train")
    run_cli(["--profile", "cpu-demo", "--model", TINY_MODEL, "--source", str(toy_source), "--domains", "toy",
             "--max_steps", "4", "--batch_size", "2", "--save_steps", "2", "--run_name", "ddp"], runs_tmp,
            launcher=launcher, timeout=300, extra_env={"ACCELERATE_USE_CPU": "true"})
    m = read_manifest("ddp")["train"]
    assert m["status"] == "finished" and m["processes"] == 2 and m["steps"] == 4
    assert m["effective_batch_size"] == 4 and "- Batch size: 4" in (run_dir("ddp") / "training_details.md").read_text()
    assert (run_dir("ddp") / "adapter" / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in (run_dir("ddp") / "checkpoints").iterdir()) == ["step-2", "step-4"]


@pytest.mark.slow
def test_cli_and_notebook_02_record_the_same_configuration(runs_tmp):
    """`python -m helpers.train --profile P` with the notebook's overrides trains the run notebook 02 trains."""
    overrides = {"model": TINY_MODEL, "max_rows": 8, "max_steps": 2, "batch_size": 4, "lora_rank": 4, "lora_alpha": 8}
    args = ["--profile", "cpu-demo", "--run_name", "via-cli"]
    for key, value in overrides.items():
        args += [f"--{key}", str(value)]
    run_cli(args, runs_tmp)
    result = execute("02_lora_training", "via-notebook", {"profile": "cpu-demo", **overrides})
    assert result.error is None, result.error
    cli, nb = read_manifest("via-cli"), read_manifest("via-notebook")
    for manifest in (cli, nb):
        manifest["train"]["config"].pop("run_name")
        manifest["profile"]["train"]["values"].pop("run_name")
    assert nb["train"]["config"] == cli["train"]["config"]
    assert nb["profile"]["train"] == cli["profile"]["train"]
    assert nb["profile"]["train"]["values"] == nb["train"]["config"]
    assert nb["profile"]["name"] == cli["profile"]["name"] == "cpu-demo"
    assert nb["train"]["steps"] == cli["train"]["steps"] == 2
