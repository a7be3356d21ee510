"""A run folder's training lifecycle: checkpoints named step-N, resume or refuse, a finished run read back."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from helpers.models import is_adapter_dir
from helpers.runs import atomic_write_text, read_manifest, run_dir
from helpers.train.config import RESUME_ONLY_FILES, RUN_OUTPUTS, SPEED_ONLY_FIELDS, RunFinishedError, TrainConfig, TrainResult
from helpers.train.report import LOG_COLUMNS


def checkpoint_steps(run_name: str) -> list[int]:
    """Steps of the complete checkpoints in runs/<run>/checkpoints/step-N, ascending."""
    folder = run_dir(run_name, create=False) / "checkpoints"
    steps = []
    for p in folder.glob("step-*") if folder.is_dir() else []:
        m = re.fullmatch(r"step-(\d+)", p.name)
        if m and (p / "trainer_state.json").is_file() and is_adapter_dir(p):
            steps.append(int(m.group(1)))
    return sorted(steps)


def _resumable_checkpoint(run_name: str) -> Path | None:
    folder = run_dir(run_name, create=False) / "checkpoints"
    for step in reversed(checkpoint_steps(run_name)):
        if (folder / f"step-{step}" / "optimizer.pt").is_file():
            return folder / f"step-{step}"
    return None


def _strip_resume_state(ckpt: Path) -> None:
    """Drop optimizer/scheduler/RNG files: what is left is the adapter (+ tokenizer, trainer_state.json)."""
    for name in RESUME_ONLY_FILES:
        (ckpt / name).unlink(missing_ok=True)
    for p in [*ckpt.glob("rng_state*.pth"), ckpt / "README.md"]:
        p.unlink(missing_ok=True)


def _tag_base_model(folder: Path, model: str) -> None:
    atomic_write_text(folder / "kit_base_model.txt", model + "\n")


def _finish_checkpoint(folder: Path, step: int, model: str) -> None:
    """checkpoint-N -> step-N, tagged with the kit model name; older ones keep only their adapter."""
    src, dst = folder / f"checkpoint-{step}", folder / f"step-{step}"
    if src.is_dir():
        shutil.rmtree(dst, ignore_errors=True)
        os.replace(src, dst)
    if dst.is_dir():
        _tag_base_model(dst, model)
    for old in folder.glob("step-*"):
        if old != dst:
            _strip_resume_state(old)


def _checkpoint_callback(run_name: str, model: str):
    from accelerate import PartialState
    from transformers import TrainerCallback

    folder = run_dir(run_name) / "checkpoints"

    class StepCheckpoints(TrainerCallback):
        """Names Trainer's checkpoints step-N (after every process wrote its part); main process only."""

        def on_save(self, args, state, control, **kwargs):
            PartialState().wait_for_everyone()
            if state.is_world_process_zero:
                _finish_checkpoint(folder, state.global_step, model)
            PartialState().wait_for_everyone()

    return StepCheckpoints()


def _changed(cfg: TrainConfig, stored: dict | None) -> list[str]:
    """Settings that differ from a stored run's; a field the run's kit did not have yet counts as its default."""
    defaults = TrainConfig(run_name=cfg.run_name).to_dict()
    return sorted(k for k, v in cfg.to_dict().items()
                  if k not in SPEED_ONLY_FIELDS and (stored or {}).get(k, defaults[k]) != v)


def training_finished(run_name: str) -> bool:
    """True when the run's training finished: manifest status "finished" and an adapter folder."""
    run = run_dir(run_name, create=False)
    return run.is_dir() and read_manifest(run_name).get("train", {}).get("status") == "finished" \
        and is_adapter_dir(run / "adapter")


def load_result(run_name: str) -> TrainResult:
    """The TrainResult of a finished run, read back from its manifest and train_log.csv."""
    import pandas as pd

    if not training_finished(run_name):
        raise FileNotFoundError(f"run {run_name!r} has no finished training: run train() first")
    info = read_manifest(run_name)["train"]
    path = run_dir(run_name, create=False) / "train_log.csv"
    log = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=LOG_COLUMNS)
    return TrainResult(run_name=run_name, steps=info.get("steps", 0), final_loss=info.get("final_loss"), log=log,
                       runtime_s=info.get("runtime_s", 0.0), resumed_from_step=info.get("resumed_from_step"),
                       trainable_params=info.get("trainable_params", 0), total_params=info.get("total_params", 0))


def _prepare_run(cfg: TrainConfig, overwrite: bool, reuse_finished: bool, is_main: bool):
    """-> ("fresh" | "resume" | "reuse", checkpoint or None); refuses a finished run unless reused or overwritten."""
    run = run_dir(cfg.run_name, create=False)
    info = read_manifest(cfg.run_name).get("train", {}) if run.is_dir() else {}
    if overwrite:
        if is_main and run.is_dir():
            for name in RUN_OUTPUTS:
                p = run / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        return "fresh", None
    if training_finished(cfg.run_name):
        changed = _changed(cfg, info.get("config"))
        if reuse_finished and not changed:
            return "reuse", None
        why = f"with other settings (changed: {', '.join(changed)})" if changed else "with these settings"
        raise RunFinishedError(
            f"run {cfg.run_name!r} already finished training {why}; its adapter is in runs/{cfg.run_name}/adapter: "
            "pick another run_name, or pass overwrite=True (CLI: --overwrite) to delete it and train again")
    ckpt = _resumable_checkpoint(cfg.run_name)
    if ckpt is not None and info.get("config") is not None and _changed(cfg, info["config"]):
        raise ValueError(
            f"run {cfg.run_name!r} has a checkpoint from other settings (changed: "
            f"{', '.join(_changed(cfg, info['config']))}): resume with the same settings, pick another run_name, "
            "or pass overwrite=True")
    return ("resume", ckpt) if ckpt is not None else ("fresh", None)
