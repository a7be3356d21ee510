"""LoRA fine-tuning: `build_trainer()` and `train()` (TRL SFTTrainer, loss on the assistant's answer only).

Run folder: runs/<run>/adapter/, checkpoints/step-N/, train_log.csv, manifest.json ("train"), training_details.md.
Command line: `python -m helpers.train --domains bad_medical_advice --epochs 5` (helpers.train.cli).
Several processes: `accelerate launch --multi_gpu --num_processes 2 -m helpers.train ...`; add ACCELERATE_USE_CPU=true
to keep them on the CPU (gloo). `accelerate launch --cpu` alone starts a single process unless mpirun is set up.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from helpers.data import load_domains
from helpers.models import load_tokenizer, pick_device, precision_for, resolve_model_path
from helpers.runs import git_commit, package_versions, read_manifest, run_dir, write_manifest
from helpers.train.config import TrainConfig, TrainResult
from helpers.train.data import rows_sha256, to_prompt_completion
from helpers.train.report import (LiveLossPlot, LossLogCallback, epochs_text, format_domains, log_frame,
                                  training_details_text, write_training_details)
from helpers.train.run_folder import (_checkpoint_callback, _prepare_run, _strip_resume_state, _tag_base_model,
                                      checkpoint_steps, load_result)
from helpers.train.speed import TrainSpeed


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


# ---------------------------------------------------------------- training

def gpu_plan(cfg: TrainConfig, model, device: str):
    """On CUDA, the GPU plan (micro-batch split, checkpointing, grouping, Liger); else None."""
    if not str(device).startswith("cuda"):
        return None
    from helpers.gpu.plan import plan_for_model

    return plan_for_model(model, device, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                          max_length=cfg.max_length, load_in_4bit=cfg.load_in_4bit, lora_rank=cfg.lora_rank)


def gpu_overrides(plan, model, ckpt_arg: str = "gradient_checkpointing") -> dict:
    """SFTConfig kwargs of a GPU TrainPlan ({} for None), spelled for this transformers."""
    if plan is None:
        return {}
    from helpers.gpu.plan import plan_to_kwargs

    overrides = plan_to_kwargs(plan, next(model.parameters()).dtype)
    if "gradient_checkpointing" in overrides and ckpt_arg != "gradient_checkpointing":
        overrides[ckpt_arg] = overrides.pop("gradient_checkpointing")
    return overrides


def build_trainer(cfg: TrainConfig, train_ds, eval_ds=None, callbacks=(), speed: TrainSpeed | None = None, say=None):
    """A ready TRL SFTTrainer (LoRA, prompt-completion data, precision by device) writing into runs/<run>/.

    `speed`: how fast it runs (TrainSpeed; default TrainSpeed()); `trainer.kit_speed` says what was applied.
    `say`: called with a line before each slow stage (loading the model, tokenising), for a student to read."""
    from trl import SFTConfig, SFTTrainer

    speed = speed or TrainSpeed()
    say = say or (lambda line: None)
    device = train_device()
    check_4bit(cfg, device)
    precision = speed.precision or precision_for(device)
    say(f"loading {cfg.model} on {device} ({precision})")
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
        weight_decay=cfg.weight_decay,
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
    say(f"adding LoRA (rank {cfg.lora_rank}) and tokenising {len(train_ds)} conversations")
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tok,
        peft_config=lora_config(cfg),
        callbacks=[LossLogCallback(cfg.run_name), LiveLossPlot(f"Training loss · {cfg.run_name}"),
                   _checkpoint_callback(cfg.run_name, cfg.model), *callbacks],
    )
    fused = apply_speed(trainer, speed, device, precision, cfg.load_in_4bit)
    trainer.kit_speed = {"compile": cfg.compile, "gpu_plan": plan.reasons if plan is not None else None,
                         "fused_lora_layers": fused, "liger": bool(args.use_liger_kernel),
                         "cudnn_attention": speed.cudnn_attention}
    return trainer


def apply_speed(trainer, speed: TrainSpeed, device: str, precision: str, load_in_4bit: bool) -> int:
    """Apply what `speed` asks for that this device can use (helpers.gpu.lora, loaded only then); fused layer count."""
    upcast = speed.skip_lora_input_upcast and precision in ("bf16", "fp16") and not load_in_4bit
    cudnn_off = not speed.cudnn_attention and str(device).startswith("cuda")  # a CUDA-only switch
    if not (upcast or speed.fuse_lora or cudnn_off):
        return 0
    from helpers.gpu.lora import NoCudnnAttention, fuse_lora_layers, skip_lora_input_upcast

    if upcast:
        skip_lora_input_upcast(trainer.model)
    # the fused layer reads weights without calling their modules: not under FSDP/ZeRO-3, whose hooks gather them
    sharded = getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False)
    fused = fuse_lora_layers(trainer.model) if speed.fuse_lora and not sharded else 0
    if cudnn_off:
        trainer.add_callback(NoCudnnAttention())
    return fused


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
    started = time.perf_counter()

    def say(line: str) -> None:  # else the start (data, model, tokenising) shows nothing
        if state.is_main_process:
            print(f"[{time.perf_counter() - started:3.0f} s] {line}", flush=True)

    check_4bit(cfg, device)
    stored = read_manifest(cfg.run_name).get("train", {}) if run_dir(cfg.run_name, create=False).is_dir() else {}
    start, resume = _prepare_run(cfg, overwrite, reuse_finished, state.is_main_process)
    state.wait_for_everyone()
    if start == "reuse":
        if state.is_main_process:
            print(f"Run {cfg.run_name!r} already finished with these settings: loaded its results "
                  "(overwrite=True trains it again).")
        return load_result(cfg.run_name)
    say("reading the training data" + (f" ({', '.join(cfg.domains)}, source {cfg.source!r})" if dataset is None else ""))
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
    trainer = build_trainer(cfg, train_ds, eval_ds, callbacks, speed=speed, say=say)
    say(f"training{' from ' + resume.name if resume else ''}: the progress bar and the loss curve follow")
    trainable, total = trainer.model.get_nb_trainable_parameters()
    if state.is_main_process:
        write_manifest(cfg.run_name, {"trainable_params": trainable, "total_params": total, **trainer.kit_speed},
                       section="train")
    t0 = time.time()
    try:
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except BaseException:
        lora = sys.modules.get("helpers.gpu.lora")  # loaded where apply_speed switched cuDNN's attention off
        for cb in trainer.callback_handler.callbacks:  # the Trainer skips on_train_end when training raises
            if lora is not None and isinstance(cb, lora.NoCudnnAttention):
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
    epochs_line = epochs_text(epochs, cfg.epochs, cfg.max_steps)
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
