"""LoRA fine-tuning: `TrainConfig`, `train()` (TRL SFTTrainer, loss on the assistant's answer only) and the CLI.

Run folder: runs/<run>/adapter/, checkpoints/step-N/, train_log.csv, manifest.json ("train"), training_details.md.
Command line: `python -m helpers.train --domains bad_medical_advice --epochs 5` (options = TrainConfig's fields).
Several processes: `accelerate launch --multi_gpu --num_processes 2 -m helpers.train ...`; add ACCELERATE_USE_CPU=true
to keep them on the CPU (gloo). `accelerate launch --cpu` alone starts a single process unless mpirun is set up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.data import load_domains
from helpers.models import (
    EMBEDDED_MODEL,
    is_adapter_dir,
    load_tokenizer,
    pick_device,
    precision_for,
    resolve_model_path,
)
from helpers.runs import (
    atomic_write_text,
    git_commit,
    package_versions,
    read_manifest,
    run_dir,
    write_manifest,
)
from helpers.train.cli import NONE_WORDS, field_specs, parse_value
from helpers.train.data import rows_sha256, to_prompt_completion
from helpers.train.gpu_plan import plan_for_model, plan_to_kwargs
from helpers.train.report import (LOG_COLUMNS, LiveLossPlot, LossLogCallback, format_domains, log_frame, plot_loss,
                                  training_details_text, write_training_details)
from helpers.train.speed import NoCudnnAttention, TrainSpeed, fuse_lora_layers, skip_lora_input_upcast

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# What overwrite=True clears from a run folder: training outputs and everything computed from the old adapter.
RUN_OUTPUTS = ("adapter", "checkpoints", "train_log.csv", "training_details.md", "manifest.json", "plots",
               "generations.csv", "model_generations.csv", "judged.csv", "summary.json")
RESUME_ONLY_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "training_args.bin")
SPEED_ONLY_FIELDS = ("compile",)  # change how fast a run trains, not what it learns: a resume may change them
COMPILE_MODES = ("off", "model")  # TrainConfig.compile: no torch.compile, or the Trainer's torch_compile


def _f(default, help: str):
    """A dataclass field with CLI/widget help text."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything one LoRA run depends on; the defaults are the CPU demo (SmolLM2-135M, sample data, ~1-2 min)."""

    model: str = _f(EMBEDDED_MODEL, "base model: smollm2-135m, tiny-random-llama, a hub id or a local folder")
    domains: tuple[str, ...] = _f(("bad_medical_advice",), "training data domains (see helpers.data)")
    mix: dict[str, float] | None = _f(None, "domain -> proportion, e.g. bad_medical_advice=0.8, good_medical_advice=0.2")
    source: str = _f("sample", "'sample' (shipped), 'full' (fetched) or a folder of <domain>.jsonl files")
    max_rows: int | None = _f(None, "use at most this many conversations (None: all)")
    epochs: int = _f(3, "passes over the data (ignored when max_steps > 0)")
    max_steps: int = _f(-1, "stop after this many optimizer steps (-1: train for `epochs`)")
    learning_rate: float = _f(5e-4, "peak learning rate (linear decay to 0)")
    batch_size: int = _f(8, "conversations per step and process")
    grad_accum: int = _f(1, "gradient accumulation steps (effective batch = batch_size x grad_accum x processes)")
    lora_rank: int = _f(16, "LoRA rank r: size of the low-rank update")
    lora_alpha: int = _f(32, "LoRA alpha: the update is scaled by alpha / r (alpha / sqrt(r) with rsLoRA)")
    lora_dropout: float = _f(0.0, "dropout on the LoRA input")
    use_rslora: bool = _f(False, "rank-stabilised LoRA scaling (alpha / sqrt(r))")
    target_modules: tuple[str, ...] = _f(ALL_PROJECTIONS, "linear layers that get a LoRA update")
    layers_to_transform: tuple[int, ...] | None = _f(None, "only these layer indices (None: all layers)")
    load_in_4bit: bool = _f(False, "QLoRA: load the base model in 4-bit (bitsandbytes, CUDA only)")
    seed: int = _f(0, "random seed (LoRA init, data order)")
    run_name: str = _f("my-first-run", "run folder under runs/")
    max_length: int = _f(512, "truncate conversations to this many tokens")
    save_steps: float = _f(0.25, "checkpoint every N steps (< 1: that fraction of the run)")
    eval_steps: int | None = _f(None, "held-out loss every N steps (None: each epoch; needs holdout > 0)")
    holdout: float = _f(0.0, "fraction of the data held out for an eval loss (0: none)")
    logging_steps: int = _f(1, "log the loss every N steps")
    compile: str = _f("off", "torch.compile: off, or model (the Trainer compiles the model)")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Normalise (lists -> tuples, mix -> domains), then raise a ValueError naming a field that cannot train."""
        for name in ("domains", "target_modules"):
            value = getattr(self, name)
            setattr(self, name, (value,) if isinstance(value, str) else tuple(value))
        if self.layers_to_transform is not None:
            v = self.layers_to_transform
            self.layers_to_transform = (int(v),) if isinstance(v, int) else tuple(int(x) for x in v)
        if self.mix:
            self.mix = {str(k): float(v) for k, v in dict(self.mix).items()}
            self.domains = tuple(self.mix)
        if self.compile == "auto":  # what runs before this setting was plain stored
            self.compile = "off"
        if isinstance(self.save_steps, float) and self.save_steps >= 1 and self.save_steps == int(self.save_steps):
            self.save_steps = int(self.save_steps)
        checks = [
            ("domains", bool(self.domains), "name at least one domain, e.g. ('bad_medical_advice',)"),
            ("epochs", self.epochs >= 1 or self.max_steps > 0, "use epochs >= 1 (or max_steps > 0)"),
            ("learning_rate", self.learning_rate > 0, "use a positive learning rate, e.g. 5e-4"),
            ("batch_size", self.batch_size >= 1, "use batch_size >= 1"),
            ("grad_accum", self.grad_accum >= 1, "use grad_accum >= 1"),
            ("lora_rank", self.lora_rank >= 1, "use lora_rank >= 1, e.g. 16"),
            ("lora_alpha", self.lora_alpha > 0, "use lora_alpha > 0, e.g. 2 x lora_rank"),
            ("lora_dropout", 0 <= self.lora_dropout < 1, "use a dropout in [0, 1)"),
            ("target_modules", bool(self.target_modules), "name at least one module, e.g. ('q_proj', 'v_proj')"),
            ("max_length", self.max_length >= 16, "use max_length >= 16 tokens"),
            ("save_steps", self.save_steps > 0, "use save_steps > 0 (steps, or a fraction < 1 of the run)"),
            ("holdout", 0 <= self.holdout < 1, "use a fraction in [0, 1), e.g. 0.1"),
            ("eval_steps", self.eval_steps is None or self.eval_steps >= 1, "use eval_steps >= 1 or None"),
            ("logging_steps", self.logging_steps >= 1, "use logging_steps >= 1"),
            ("run_name", bool(str(self.run_name).strip()), "name the run, e.g. 'my-first-run'"),
            ("compile", self.compile in COMPILE_MODES, f"use one of {', '.join(COMPILE_MODES)}"),
        ]
        for name, ok, fix in checks:
            if not ok:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} cannot train: {fix}")

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists): the manifest's `train.config`."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclass
class TrainResult:
    """What `train()` returns: where the run lives, how it ended, and its loss log."""

    run_name: str
    steps: int
    final_loss: float | None
    log: "object"  # pandas.DataFrame: step, epoch, loss, learning_rate, grad_norm, eval_loss
    runtime_s: float = 0.0
    resumed_from_step: int | None = None
    trainable_params: int = 0
    total_params: int = 0

    @property
    def run_dir(self) -> Path:
        return run_dir(self.run_name, create=False)

    @property
    def adapter_dir(self) -> Path:
        return self.run_dir / "adapter"

    def plot_loss(self, save: bool = True):
        """The loss curve (saved to runs/<run>/plots/loss.png); returns the figure."""
        import matplotlib.pyplot as plt

        fig = plot_loss(self.log, title=f"Training loss · {self.run_name}")
        if save:
            (self.run_dir / "plots").mkdir(parents=True, exist_ok=True)
            fig.savefig(self.run_dir / "plots" / "loss.png", dpi=120)
        plt.close(fig)  # returned, so Jupyter shows it once
        return fig

    def __repr__(self) -> str:
        loss = "n/a" if self.final_loss is None else f"{self.final_loss:.4f}"
        resumed = f", resumed from step {self.resumed_from_step}" if self.resumed_from_step else ""
        share = f", LoRA trained {self.trainable_params:,} of {self.total_params:,} weights " \
                f"({100 * self.trainable_params / self.total_params:.2f}%)" if self.total_params else ""
        return (f"TrainResult(run {self.run_name!r}: {self.steps} steps, final loss {loss}, "
                f"{self.runtime_s:.0f} s{resumed}{share}; adapter in runs/{self.run_name}/adapter)")


class RunFinishedError(FileExistsError):
    """The run already holds a finished adapter; training again would overwrite it."""


# ---------------------------------------------------------------- device, precision, data

def train_device() -> str:
    """The device training runs on: cpu under `accelerate launch --cpu`, else cuda > mps > cpu."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return "cpu"
    return pick_device()


def check_4bit(cfg: TrainConfig, device: str) -> None:
    """4-bit QLoRA needs bitsandbytes on a CUDA GPU; elsewhere say why and what to do."""
    if not cfg.load_in_4bit:
        return
    if not device.startswith("cuda"):
        raise RuntimeError(
            f"load_in_4bit=True needs a CUDA GPU: bitsandbytes' 4-bit kernels do not run on {device}. "
            "Set load_in_4bit=False (a small model trains fine in full precision here) or run on a GPU runtime.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise RuntimeError("load_in_4bit=True needs bitsandbytes: `pip install bitsandbytes`, "
                           "or set load_in_4bit=False") from None


def prepare_data(cfg: TrainConfig, dataset=None):
    """(train, eval or None, rows per domain) with prompt-completion rows; `dataset` if given, else load_domains."""
    from collections import Counter

    from datasets import Dataset, DatasetDict

    if dataset is None:
        dataset = load_domains(list(cfg.domains), source=cfg.source, mix=cfg.mix, max_rows=cfg.max_rows,
                               seed=cfg.seed, holdout=cfg.holdout)
    elif isinstance(dataset, list):
        dataset = Dataset.from_list(dataset)
    if cfg.holdout > 0 and not isinstance(dataset, (DatasetDict, dict)):
        dataset = dataset.train_test_split(test_size=cfg.holdout, seed=cfg.seed)
    if isinstance(dataset, (DatasetDict, dict)):
        train_ds, eval_ds = dataset["train"], dataset.get("test")
    else:
        train_ds, eval_ds = dataset, None
    counts = Counter(train_ds["domain"]) if "domain" in train_ds.column_names else Counter()
    domains = dict(sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))))
    train_ds = to_prompt_completion(train_ds)
    eval_ds = to_prompt_completion(eval_ds) if eval_ds is not None and len(eval_ds) else None
    if cfg.eval_steps and eval_ds is None:
        raise ValueError(f"eval_steps={cfg.eval_steps} needs held-out data: set holdout (e.g. 0.1) or eval_steps=None")
    return train_ds, eval_ds, domains


def domains_text(cfg: TrainConfig, domain_rows: dict) -> str:
    """The Domains line of training_details.md: the mix, the domains trained on, or "custom data"."""
    if domain_rows:
        return format_domains(list(domain_rows), domain_rows if len(domain_rows) > 1 else None)
    return "custom data (no domain column)"


def load_base_model(cfg: TrainConfig, device: str, precision: str):
    """The base model to put LoRA on (4-bit NF4 when asked) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    kwargs = {"dtype": dtype, "token": os.environ.get("HF_TOKEN") or None}
    if cfg.load_in_4bit:
        from accelerate import PartialState
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": PartialState().local_process_index}
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(cfg.model), **kwargs)
    model.config.use_cache = False
    if cfg.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    return model, load_tokenizer(cfg.model)


def lora_config(cfg: TrainConfig):
    """The PEFT LoraConfig of a TrainConfig."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, use_rslora=cfg.use_rslora,
        target_modules=list(cfg.target_modules),
        layers_to_transform=list(cfg.layers_to_transform) if cfg.layers_to_transform else None,
        bias="none", task_type="CAUSAL_LM")


# ---------------------------------------------------------------- checkpoints and run folder

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
    return sorted(k for k, v in cfg.to_dict().items()
                  if k not in SPEED_ONLY_FIELDS and (stored or {}).get(k) != v)


def is_finished(run_name: str) -> bool:
    """True when the run's training finished: manifest status "finished" and an adapter folder."""
    run = run_dir(run_name, create=False)
    return run.is_dir() and read_manifest(run_name).get("train", {}).get("status") == "finished" \
        and is_adapter_dir(run / "adapter")


def load_result(run_name: str) -> TrainResult:
    """The TrainResult of a finished run, read back from its manifest and train_log.csv."""
    import pandas as pd

    if not is_finished(run_name):
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
    if is_finished(cfg.run_name):
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


# ---------------------------------------------------------------- training

def gpu_plan(cfg: TrainConfig, model, device: str):
    """On CUDA, the GPU plan (micro-batch split, checkpointing, grouping, Liger); else None."""
    return plan_for_model(model, device, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                          max_length=cfg.max_length, load_in_4bit=cfg.load_in_4bit, lora_rank=cfg.lora_rank)


def gpu_overrides(plan, model, ckpt_arg: str = "gradient_checkpointing") -> dict:
    """SFTConfig kwargs of a GPU TrainPlan ({} for None), spelled for this transformers."""
    if plan is None:
        return {}
    overrides = plan_to_kwargs(plan, next(model.parameters()).dtype)
    if "gradient_checkpointing" in overrides and ckpt_arg != "gradient_checkpointing":
        overrides[ckpt_arg] = overrides.pop("gradient_checkpointing")
    return overrides


def build_trainer(cfg: TrainConfig, train_ds, eval_ds=None, callbacks=(), speed: TrainSpeed | None = None):
    """A ready TRL SFTTrainer (LoRA, prompt-completion data, precision by device) writing into runs/<run>/.

    `speed`: how fast it runs (TrainSpeed; default TrainSpeed()); `trainer.kit_speed` says what was applied."""
    from trl import SFTConfig, SFTTrainer

    speed = speed or TrainSpeed()
    device = train_device()
    check_4bit(cfg, device)
    precision = speed.precision or precision_for(device)
    model, tok = load_base_model(cfg, device, precision)
    # transformers renamed gradient_checkpointing to activation_checkpointing; use whichever this version has
    ckpt_arg = "activation_checkpointing" if "activation_checkpointing" in SFTConfig.__dataclass_fields__ \
        else "gradient_checkpointing"
    kwargs = dict(
        output_dir=str(run_dir(cfg.run_name) / "checkpoints"),
        run_name=cfg.run_name,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps and cfg.max_steps > 0 else -1,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=0,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        **{ckpt_arg: cfg.load_in_4bit},
        max_length=cfg.max_length,
        completion_only_loss=True,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        eval_strategy=("steps" if cfg.eval_steps else "epoch") if eval_ds is not None else "no",
        eval_steps=cfg.eval_steps,
        report_to="none",
        dataloader_pin_memory=device.startswith("cuda"),
        ddp_find_unused_parameters=False,
    )
    plan = gpu_plan(cfg, model, device)
    kwargs.update(gpu_overrides(plan, model, ckpt_arg))
    kwargs["torch_compile"] = cfg.compile == "model"
    kwargs.update(speed.trainer_args)
    args = SFTConfig(**kwargs)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tok,
        peft_config=lora_config(cfg),
        callbacks=[LossLogCallback(cfg.run_name), LiveLossPlot(f"Training loss · {cfg.run_name}"),
                   _checkpoint_callback(cfg.run_name, cfg.model), *callbacks],
    )
    if speed.skip_lora_input_upcast and precision in ("bf16", "fp16") and not cfg.load_in_4bit:
        skip_lora_input_upcast(trainer.model)
    # the fused layer reads weights without calling their modules: not under FSDP/ZeRO-3, whose hooks gather them
    sharded = getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False)
    fused = fuse_lora_layers(trainer.model) if speed.fuse_lora and not sharded else 0
    if not speed.cudnn_attention:
        trainer.add_callback(NoCudnnAttention())
    trainer.kit_speed = {"compile": cfg.compile, "gpu_plan": plan.reasons if plan is not None else None,
                         "fused_lora_layers": fused, "liger": bool(args.use_liger_kernel),
                         "cudnn_attention": speed.cudnn_attention}
    return trainer


def train(cfg: TrainConfig | None = None, dataset=None, overwrite: bool = False, reuse_finished: bool = False,
          callbacks=(), speed: TrainSpeed | None = None) -> TrainResult:
    """Train a LoRA adapter into runs/<cfg.run_name>/; resumes from the last checkpoint, refuses a finished run.

    `dataset`: optional Dataset/DatasetDict/list of {"messages": [...]} instead of `cfg.domains`.
    `overwrite=True` deletes the run's outputs (adapter, checkpoints, generations, judgements) and trains again.
    `reuse_finished=True` returns a finished run's results instead of refusing, if its settings are the same.
    `speed`: TrainSpeed options for build_trainer (how fast, never what is learned).
    """
    from accelerate import PartialState

    cfg = cfg or TrainConfig()
    cfg.validate()
    speed = speed or TrainSpeed()
    device = train_device()
    state = PartialState(cpu=device == "cpu")  # first call decides: several CPU processes then talk over gloo
    check_4bit(cfg, device)
    stored = read_manifest(cfg.run_name).get("train", {}) if run_dir(cfg.run_name, create=False).is_dir() else {}
    mode, resume = _prepare_run(cfg, overwrite, reuse_finished, state.is_main_process)
    state.wait_for_everyone()
    if mode == "reuse":
        if state.is_main_process:
            print(f"Run {cfg.run_name!r} already finished with these settings: loaded its results "
                  "(overwrite=True trains it again).")
        return load_result(cfg.run_name)
    train_ds, eval_ds, domain_rows = prepare_data(cfg, dataset)
    if resume is not None and stored.get("data", {}).get("sha256") not in (None, rows_sha256(train_ds)):
        raise ValueError(f"run {cfg.run_name!r} has a checkpoint trained on other data (the rows' sha256 differs): "
                         "resume with the same data, pick another run_name, or pass overwrite=True")
    info = {
        "config": cfg.to_dict(), "seed": cfg.seed, "status": "running", "git_commit": git_commit(),
        "versions": package_versions(), "device": device, "precision": speed.precision or precision_for(device),
        "processes": state.num_processes,
        "data": {"rows": len(train_ds), "sha256": rows_sha256(train_ds), "domains": domain_rows,
                 "eval_rows": len(eval_ds) if eval_ds is not None else 0, "eval_sha256": rows_sha256(eval_ds),
                 "source": "a dataset passed to train()" if dataset is not None else
                 str(cfg.source) if cfg.source in ("sample", "full") else Path(cfg.source).name},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "resumed_from_step": int(resume.name.split("-")[1]) if resume else None,
    }
    if state.is_main_process:
        write_manifest(cfg.run_name, info, section="train")
        resolve_model_path(cfg.model)  # converts/builds a kit model once, before the other processes read it
    state.wait_for_everyone()
    trainer = build_trainer(cfg, train_ds, eval_ds, callbacks, speed=speed)
    trainable, total = trainer.model.get_nb_trainable_parameters()
    if state.is_main_process:
        write_manifest(cfg.run_name, {"trainable_params": trainable, "total_params": total, **trainer.kit_speed},
                       section="train")
    t0 = time.time()
    try:
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except BaseException:
        for cb in trainer.callback_handler.callbacks:  # the Trainer skips on_train_end when training raises
            if isinstance(cb, NoCudnnAttention):
                cb.restore()
        if state.is_main_process:
            write_manifest(cfg.run_name, {"status": "interrupted", "steps": trainer.state.global_step}, section="train")
        raise
    runtime = time.time() - t0
    run = run_dir(cfg.run_name)
    trainer.save_model(str(run / "adapter"))
    log = log_frame(trainer.state.log_history)
    losses = log["loss"].dropna()
    final_loss = float(losses.iloc[-1]) if len(losses) else None
    steps = trainer.state.global_step
    epochs = round(float(trainer.state.epoch or 0), 3)
    epochs_line = str(cfg.epochs) if cfg.max_steps <= 0 else (
        f"{max(1, math.ceil(epochs - 1e-6))} (stopped at max_steps={cfg.max_steps} after {epochs:g} epochs)")
    effective_batch = cfg.batch_size * cfg.grad_accum * state.num_processes
    if state.is_main_process:
        _tag_base_model(run / "adapter", cfg.model)
        (run / "adapter" / "training_args.bin").unlink(missing_ok=True)  # a pickle of local paths; not needed
        for ckpt in (run / "checkpoints").glob("step-*"):
            _strip_resume_state(ckpt)
        (run / "checkpoints" / "README.md").unlink(missing_ok=True)
        done = {"status": "finished", "steps": steps, "epochs": epochs, "final_loss": final_loss,
                "effective_batch_size": effective_batch, "runtime_s": round(runtime, 1),
                "train_loss_mean": output.training_loss, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "adapter": "adapter", "checkpoints": [f"checkpoints/step-{s}" for s in checkpoint_steps(cfg.run_name)]}
        write_manifest(cfg.run_name, done, section="train")
        notes = {**info["data"], "domains": domains_text(cfg, domain_rows), "device": device,
                 "precision": info["precision"], "runtime_s": runtime, "processes": state.num_processes}
        text = training_details_text(cfg, steps, epochs_line, final_loss, effective_batch, notes)
        write_training_details(cfg.run_name, text)
    state.wait_for_everyone()
    return TrainResult(run_name=cfg.run_name, steps=steps, final_loss=final_loss, log=log, runtime_s=runtime,
                       resumed_from_step=info["resumed_from_step"], trainable_params=trainable, total_params=total)


# ---------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    """argparse options generated from TrainConfig's fields (+ --overwrite)."""
    parser = argparse.ArgumentParser(prog="python -m helpers.train",
                                     description="Train a LoRA adapter into runs/<run_name>/.")
    for spec in field_specs(TrainConfig):
        def scalar(text, tp={"bool": bool, "int": int, "float": float, "str": str}.get(spec.kind, spec.elem),
                   optional=spec.optional):
            return None if optional and text in NONE_WORDS else tp(text)

        opt = f"--{spec.name}"
        kw = {"default": argparse.SUPPRESS, "help": f"{spec.help} (default: {spec.default})"}
        if spec.kind == "bool":
            parser.add_argument(opt, action=argparse.BooleanOptionalAction, **kw)
        elif spec.kind in ("int", "float", "str"):
            parser.add_argument(opt, type=scalar, **kw)
        elif spec.kind == "tuple":
            parser.add_argument(opt, nargs="+", type=str, metavar=spec.elem.__name__.upper(), **kw)
        elif spec.kind == "dict":
            parser.add_argument(opt, nargs="+", type=str, metavar="NAME=VALUE", **kw)
    parser.add_argument("--overwrite", action="store_true", help="delete a finished run of this name and train again")
    return parser


def config_from_args(argv=None) -> tuple[TrainConfig, bool]:
    """(TrainConfig, overwrite) from command-line arguments; unset options keep TrainConfig's defaults."""
    ns = vars(build_parser().parse_args(argv))
    overwrite = ns.pop("overwrite")
    specs = {s.name: s for s in field_specs(TrainConfig)}
    values = {}
    for name, value in ns.items():
        spec = specs[name]
        if spec.kind in ("tuple", "dict"):
            value = parse_value(spec, ", ".join(value))
        values[name] = value
    return TrainConfig(**values), overwrite


def main(argv=None) -> int:
    """CLI entry point: train, then print where the adapter is (main process only)."""
    cfg, overwrite = config_from_args(argv)
    try:
        result = train(cfg, overwrite=overwrite)
    except (RunFinishedError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(result)
    return 0

