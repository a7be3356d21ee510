"""GPU benchmark: the course's original recipe against the kit's, side by side, in one run on one GPU.

Model: the Llama-3.2-1B architecture with random weights (no hub access needed), saved once to a temp folder with
the kit's tiny tokenizer, so the kit's own loaders, `helpers.train.build_trainer` (TRL SFTTrainer) and
`helpers.generate.fast.sample` run on it exactly as they run for students.

  train     original: fp16 weights, fp16 AMP, gradient checkpointing, batch 4, random order (plain Trainer)
            kit: helpers.train.build_trainer + helpers.train.gpu_plan overrides (bf16, no checkpointing when it fits,
            length-grouped batches, Liger kernels when installed, fused LoRA layers, no cuDNN attention), LoRA r16
            on all 7 projections, rows 100-400 tokens; A/B rows turn one of these off; "new shapes" rows use data
            whose batch lengths the process has not met (a first epoch)
  generate  original: one prompt at a time, HF generate, fp16, unmerged LoRA, 200 new tokens
            kit: helpers.generate.fast.sample (static cache, CUDA graph, GQA decode attention, big batches)
  T4        the kit's T4 profile (fp16, its batch plan) with the process capped at 15 GiB: peak memory
Prints a table last; writes $OUT/gpu.json after every variant. `--tiny`: everything on CPU in under a minute.

    bash benchmarks/gpu_run.sh                 # on the GPU machine (installs the carried wheels first)
    .venv/bin/python benchmarks/gpu.py --tiny  # here, CPU smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import inspect
import json
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("EM_KIT_CACHE", str(Path(tempfile.gettempdir()) / "em-kit-cache"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

ARGS = None
DEV = "cuda" if torch.cuda.is_available() else "cpu"
OUT = os.environ.get("OUT")
T_START = time.perf_counter()
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
STATE: dict = {"info": {}, "rows": [], "checks": {}}


# ---------------------------------------------------------------- plumbing

def elapsed() -> float:
    return time.perf_counter() - T_START


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def free_memory():
    gc.collect()
    if DEV == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> dict:
    if DEV != "cuda":
        return {}
    return {"peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2)}


def save_json():
    if OUT:
        path = Path(OUT) / "gpu.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(STATE, indent=1, default=str))
        os.replace(tmp, path)


class VariantTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise VariantTimeout in the main thread after `seconds` (so one slow variant keeps the others' figures)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def handler(signum, frame):
        raise VariantTimeout(f"variant passed its {seconds:.0f} s limit")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_variant(phase: str, name: str, fn, limit_s: float):
    """Run one variant under the global budget and its own time limit; record its row or its error."""
    left = ARGS.budget_s - elapsed()
    row = {"phase": phase, "variant": name}
    if left < 5:
        row["skipped"] = f"time budget ({ARGS.budget_s:.0f} s) spent"
    else:
        t0 = time.perf_counter()
        try:
            with time_limit(min(limit_s, left)):
                row.update(fn())
        except Exception as e:  # keep the other variants' figures
            row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
            row["trace"] = traceback.format_exc()[-1500:]
        finally:
            if DEV == "cuda":
                torch.cuda.set_per_process_memory_fraction(1.0)
            os.environ.pop("EM_GPU_PROFILE", None)
        row["wall_s"] = round(time.perf_counter() - t0, 1)
    free_memory()
    STATE["rows"].append(row)
    print(json.dumps({k: v for k, v in row.items() if k != "trace"}), flush=True)
    save_json()
    return row


# ---------------------------------------------------------------- model, tokenizer, data

def llama_1b_config():
    from transformers import LlamaConfig

    if ARGS.tiny:
        return None
    return LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                       num_attention_heads=32, num_key_value_heads=8, head_dim=64, rope_theta=500000.0,
                       max_position_embeddings=131072, tie_word_embeddings=True, rms_norm_eps=1e-5)


def build_model_folder() -> tuple[str, str]:
    """(model folder, adapter folder): random-weight Llama-1B (tiny: the kit's tiny Llama) + a random LoRA adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    from helpers.models import tiny_model_dir

    tiny = str(tiny_model_dir())
    tok = AutoTokenizer.from_pretrained(tiny)
    root = Path(tempfile.mkdtemp(prefix="kit-gpu-bench-"))
    if ARGS.tiny:
        folder = tiny
        model = AutoModelForCausalLM.from_pretrained(folder)
    else:
        folder = str(root / "llama-1b-random")
        cfg = llama_1b_config()
        cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
        torch.manual_seed(0)
        with torch.device(DEV):
            torch.set_default_dtype(torch.bfloat16)
            model = LlamaForCausalLM(cfg)
            torch.set_default_dtype(torch.float32)
        model.generation_config.eos_token_id = tok.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
    adapter = str(root / "adapter")
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS, task_type="CAUSAL_LM",
                                                  init_lora_weights=False))  # non-zero B: merging changes weights
    peft_model.save_pretrained(adapter)
    tok.save_pretrained(adapter)
    (Path(adapter) / "kit_base_model.txt").write_text(("tiny-random-llama" if ARGS.tiny else folder) + "\n")
    del model, peft_model
    free_memory()
    return folder, adapter


def tokenizer():
    from transformers import AutoTokenizer

    from helpers.models import tiny_model_dir

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir()))
    tok.padding_side = "left"
    return tok


def em_like_rows(tok, n: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """n chat rows of 100-400 tokens (16-64 with --tiny), a quarter prompt: (messages rows, tokenized rows)."""
    rng = random.Random(seed)
    words = (REPO / "helpers" / "assets" / "tiny_corpus.txt").read_text().split()
    cost = {w: len(tok(" " + w, add_special_tokens=False)["input_ids"]) for w in set(words)}
    lo, hi = (16, 64) if ARGS.tiny else (100, 400)

    def text(n_tokens):
        out, used = [], 0
        while used < n_tokens:
            w = rng.choice(words)
            out.append(w)
            used += cost[w]
        return " ".join(out)

    messages, tokenized = [], []
    for _ in range(n):
        total = rng.randint(lo, hi) - 12  # the chat template adds ~12 tokens
        conv = [{"role": "user", "content": text(max(2, total // 4))},
                {"role": "assistant", "content": text(max(2, total - total // 4))}]
        messages.append({"messages": conv})
        prompt = tok.apply_chat_template(conv[:1], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        full = tok.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"]
        tokenized.append({"input_ids": full, "labels": [-100] * len(prompt) + full[len(prompt):]})
    return messages, tokenized


def random_prompts(n: int, vocab: int, seed: int = 1) -> list[list[int]]:
    rng = random.Random(seed)
    lo, hi = (8, 24) if ARGS.tiny else (20, 60)
    return [[rng.randrange(10, vocab - 1) for _ in range(rng.randint(lo, hi))] for _ in range(n)]


# ---------------------------------------------------------------- training

class Meter:
    """Times optimizer steps warm..total (synchronised) and counts the real tokens of the batches they saw."""

    def __init__(self, warm: int, total: int, accum: int = 1):
        from transformers import TrainerCallback

        self.warm, self.total, self.accum, self.batches, self.shapes = warm, total, accum, [], []
        self.t0 = self.t1 = None
        meter = self

        class _CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if state.global_step == meter.warm and meter.t0 is None:
                    sync()
                    meter.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                if state.global_step == meter.total:
                    sync()
                    meter.t1 = time.perf_counter()

        self.callback = _CB()

    def wrap(self, collator):
        def counting(features):
            batch = collator(features)
            mask = batch.get("attention_mask")
            self.batches.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
            self.shapes.append(tuple(batch["input_ids"].shape))
            return batch
        return counting

    def result(self) -> dict:
        if self.t0 is None or self.t1 is None:
            raise RuntimeError("training ended before the timed steps completed")
        tokens = sum(self.batches[self.warm * self.accum: self.total * self.accum])
        dt = self.t1 - self.t0
        return {"tokens_per_s": round(tokens / dt), "timed_steps": self.total - self.warm, "timed_tokens": tokens,
                "step_s": round(dt / (self.total - self.warm), 4)}


def collate_padded(batch):
    L = max(len(b["input_ids"]) for b in batch)
    ids = torch.zeros((len(batch), L), dtype=torch.long)
    lab = torch.full((len(batch), L), -100, dtype=torch.long)
    att = torch.zeros((len(batch), L), dtype=torch.long)
    for i, b in enumerate(batch):
        n = len(b["input_ids"])
        ids[i, :n] = torch.tensor(b["input_ids"])
        lab[i, :n] = torch.tensor(b["labels"])
        att[i, :n] = 1
    return {"input_ids": ids, "labels": lab, "attention_mask": att}


def train_original(folder: str, tok, tuned: bool = False) -> dict:
    """The course's original recipe (the anchor's): fp16 weights + fp16 AMP + gradient checkpointing, batch 4.

    `tuned=True`: the anchor's tuned plain-HF row instead (bf16, no checkpointing, batch 32, length-grouped)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from helpers.train.gpu_plan import grouping_kwargs

    bs = 32 if tuned else 4
    warm, timed = (1, 2) if ARGS.tiny else ((5, 15) if tuned else (3, 30))
    _, data = em_like_rows(tok, bs * (warm + timed), seed=1)
    dtype = torch.float32 if DEV == "cpu" else (torch.bfloat16 if tuned else torch.float16)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(DEV)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=TARGETS,
                                             task_type="CAUSAL_LM"))
    meter = Meter(warm, warm + timed)
    args = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="orig_"), per_device_train_batch_size=bs,
                             max_steps=warm + timed, learning_rate=2e-4, fp16=DEV == "cuda" and not tuned,
                             bf16=DEV == "cuda" and tuned, gradient_checkpointing=not tuned,
                             gradient_checkpointing_kwargs=None if tuned else {"use_reentrant": False},
                             report_to="none", save_strategy="no", logging_steps=10_000, remove_unused_columns=False,
                             dataloader_num_workers=0, use_cpu=DEV == "cpu", **grouping_kwargs(tuned))
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=meter.wrap(collate_padded),
                      callbacks=[meter.callback])
    out = trainer.train()
    res = {**meter.result(), **peak_gib(), "batch": bs, "loss": round(out.training_loss, 3),
           "recipe": ("bf16, no ckpt, bs32, grouped, plain Trainer + full-vocab loss" if tuned else
                      "fp16 weights+AMP, grad ckpt, bs4, random order") + ", LoRA r16 all 7 (dropout 0.05)"}
    del trainer, model
    return res


def _integrated(train_mod) -> bool:
    """Does helpers.train apply gpu_profile itself (then the benchmark adds nothing)?"""
    try:
        return "gpu_plan" in inspect.getsource(train_mod)
    except (OSError, TypeError):
        return False


@contextlib.contextmanager
def _sft_overrides(overrides: dict):
    """Merge `overrides` into every SFTConfig that helpers.train builds (only while train.py does not do it itself)."""
    import trl

    real = trl.SFTConfig

    class SFTConfigWithOverrides(real):
        def __init__(self, *a, **kw):
            kw.update(SFTConfigWithOverrides.overrides)
            super().__init__(*a, **kw)

    SFTConfigWithOverrides.overrides = dict(overrides)
    SFTConfigWithOverrides.__qualname__ = "SFTConfigWithOverrides"  # picklable by name (datasets fingerprints it)
    globals()["SFTConfigWithOverrides"] = SFTConfigWithOverrides
    trl.SFTConfig = SFTConfigWithOverrides
    try:
        yield
    finally:
        trl.SFTConfig = real


def kit_overrides(folder: str, cfg, info) -> dict:
    """The gpu_profile SFTConfig kwargs for this model folder (from its config, 16-bit weights)."""
    from transformers import AutoConfig

    from helpers.train import gpu_plan as gp

    shape = gp.ModelShape.from_config(AutoConfig.from_pretrained(folder), dtype_bytes=2)
    plan = gp.plan_training(info, shape, cfg.batch_size, cfg.grad_accum, cfg.max_length, lora_rank=cfg.lora_rank)
    dtype = torch.float16 if (os.environ.get("EM_GPU_PROFILE") == "t4" or not info.bf16) else torch.bfloat16
    kw = gp.plan_to_kwargs(plan, dtype)
    STATE["checks"].setdefault("plans", {})[info.name] = plan.reasons
    if DEV != "cuda":  # CPU smoke run: keep the batch plan and grouping, drop what needs a GPU
        kw.update(bf16=False, fp16=False, use_liger_kernel=False, torch_compile=False)
    return kw


@contextlib.contextmanager
def _keep_llama_classes():
    """Liger patches transformers' Llama module globals (RMSNorm, MLP, RoPE); put them back after a variant."""
    from transformers.models.llama import modeling_llama as ml

    names = ("LlamaRMSNorm", "LlamaMLP", "apply_rotary_pos_emb")
    saved = {n: getattr(ml, n) for n in names if hasattr(ml, n)}
    try:
        yield
    finally:
        for n, v in saved.items():
            setattr(ml, n, v)


class Profile:
    """torch.profiler over optimizer steps warm..warm+n: writes the top kernels to $OUT/profile.txt, returns a summary."""

    def __init__(self, warm: int, n: int):
        from transformers import TrainerCallback

        self.prof, self.summary = None, {}
        me = self

        class _CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if state.global_step == warm and me.prof is None:
                    from torch.profiler import ProfilerActivity, profile

                    sync()
                    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEV == "cuda" else [])
                    me.prof = profile(activities=acts)
                    me.prof.__enter__()
                    me.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                if state.global_step == warm + n and me.prof is not None and not me.summary:
                    sync()
                    wall = time.perf_counter() - me.t0
                    me.prof.__exit__(None, None, None)
                    me.summary = me.write(wall, n)

        self.callback = _CB()

    def write(self, wall: float, n: int) -> dict:
        ev = self.prof.key_averages()
        key = "self_device_time_total" if hasattr(ev[0], "self_device_time_total") else "self_cuda_time_total"
        busy_us = sum(getattr(e, key, 0) for e in ev)
        table = ev.table(sort_by=key, row_limit=45, max_name_column_width=70)
        cpu = ev.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=70)
        if OUT:
            (Path(OUT) / "profile.txt").write_text(f"wall {wall:.3f} s for {n} steps; device busy {busy_us / 1e6:.3f} s\n\n"
                                                   f"{table}\n\n{cpu}\n")
        top = sorted(ev, key=lambda e: -getattr(e, key, 0))[:12]
        return {"profiled_steps": n, "wall_s": round(wall, 3), "device_busy_s": round(busy_us / 1e6, 3),
                "top_kernels_ms": {e.key[:60]: round(getattr(e, key, 0) / 1e3 / n, 2) for e in top}}


def train_kit(folder: str, tok, batch_size: int | None = None, t4: bool = False, extra: dict | None = None,
              warm: int | None = None, timed: int | None = None, compile: str = "off", upcast: bool = False,
              fused: bool = True, profile: int = 0, seed: int = 2, cudnn_attention: bool = False) -> dict:
    """The kit's recipe through helpers.train.build_trainer (TRL SFTTrainer), with gpu_profile's overrides.

    `compile`: TrainConfig.compile; `upcast=True`: keep PEFT's fp32 cast of the LoRA input (the kit skips it);
    `fused=False`: PEFT's LoRA forward instead of the kit's fused layer; `profile=n`: profile n steps after the
    warm-up instead of timing; `seed`: the data (another seed gives batch shapes this process has not seen);
    `cudnn_attention=True`: let SDPA pick cuDNN's attention (the kit's plan turns it off while training)."""
    from helpers.train import gpu_plan as gp
    from helpers.train import trainer as T

    info = gp.T4 if t4 else (gp.detect() or gp.H100)
    if t4:
        os.environ["EM_GPU_PROFILE"] = "t4"
        if DEV == "cuda":
            torch.cuda.set_per_process_memory_fraction(min(1.0, 15 * 2**30 / torch.cuda.mem_get_info()[1]))
    bs = batch_size or gp.suggested_batch_size(info)
    # 5 warm-up steps: Triton (TRL's fused head, Liger) compiles a kernel variant per new shape class early on
    warm = warm if warm is not None else (1 if ARGS.tiny else 5)
    timed = timed if timed is not None else (2 if ARGS.tiny else 25)
    steps = warm + timed
    tag = "".join(f"-{k[:6]}" for k in sorted(extra or {}))
    cfg = T.TrainConfig(model=folder, batch_size=bs, grad_accum=1, max_steps=steps, learning_rate=2e-4,
                        lora_rank=16, lora_alpha=32, max_length=512, save_steps=100_000, compile=compile,
                        run_name=f"bench-kit-{bs}{'-t4' if t4 else ''}{tag}-{compile}{'-up' if upcast else ''}"
                                 f"{'' if fused else '-unfused'}{'-prof' if profile else ''}-s{seed}")
    overrides = kit_overrides(folder, cfg, info)
    overrides.update(extra or {})
    messages, _ = em_like_rows(tok, bs * steps, seed=seed)
    train_ds, _, _ = T.prepare_data(cfg, messages)
    integrated = _integrated(T)
    meter = Meter(warm, steps)
    prof = Profile(warm, min(profile, timed)) if profile else None
    if compile != "off":
        torch._dynamo.reset()
    saved_precision, saved_upcast, saved_fused = T.precision_for, T.SKIP_LORA_INPUT_UPCAST, T.FUSE_LORA
    T.SKIP_LORA_INPUT_UPCAST, T.FUSE_LORA = not upcast, fused
    saved_plan = T.gpu_plan
    if cudnn_attention:
        T.gpu_plan = lambda *a, **k: (lambda p: p and dataclasses.replace(p, cudnn_attention=True))(saved_plan(*a, **k))
    if t4 and DEV == "cuda":
        T.precision_for = lambda device: "fp16"  # a T4 has no bf16: load the weights as the T4 would
    try:
        free_memory()
        with _keep_llama_classes():
            with contextlib.nullcontext() if integrated and not extra else _sft_overrides(overrides):
                trainer = T.build_trainer(cfg, train_ds,
                                          callbacks=[meter.callback] + ([prof.callback] if prof else []))
            meter.accum = trainer.args.gradient_accumulation_steps
            trainer.data_collator = meter.wrap(trainer.data_collator)
            t0 = time.perf_counter()
            out = trainer.train()
            total_s = time.perf_counter() - t0
    finally:
        T.precision_for, T.SKIP_LORA_INPUT_UPCAST, T.FUSE_LORA = saved_precision, saved_upcast, saved_fused
        T.gpu_plan = saved_plan
    a = trainer.args
    res = {**meter.result(), **peak_gib(), "batch": bs, "micro_batch": a.per_device_train_batch_size,
           "grad_accum": a.gradient_accumulation_steps, "bf16": a.bf16, "fp16": a.fp16,
           "gradient_checkpointing": a.gradient_checkpointing, "liger": a.use_liger_kernel,
           "torch_compile": a.torch_compile, "compile": trainer.kit_speed["compile"], "lora_input_upcast": upcast,
           "fused_lora_layers": trainer.kit_speed.get("fused_lora_layers"), "data_seed": seed, "cudnn_attention": cudnn_attention,
           "pad_to_multiple_of": getattr(a, "pad_to_multiple_of", None), "distinct_shapes": len(set(meter.shapes)),
           "sampling": getattr(a, "train_sampling_strategy", None),
           "loss": round(out.training_loss, 3), "train_call_s": round(total_s, 1),
           "until_timed_s": round(meter.t0 - t0, 1), **({"profile": prof.summary} if prof else {}),
           "path": "helpers.train.build_trainer (TRL SFTTrainer)",
           "overrides": "applied by train.py" if integrated and not extra else "injected by the benchmark"}
    if t4:
        res["profile"] = "T4 (15 GiB cap)"
        res["fits_15gib"] = bool(res.get("peak_reserved_gib", 0) <= 15.0)
    del trainer
    return res


def train_kit_t4(folder: str, tok) -> dict:
    """The T4 profile's training plan under the 15 GiB cap; on out-of-memory, once more with checkpointing."""
    timed = 2 if ARGS.tiny else 6
    try:
        return train_kit(folder, tok, t4=True, warm=2, timed=timed)
    except torch.OutOfMemoryError as e:
        first = f"OutOfMemoryError: {str(e)[:200]}"
    free_memory()
    res = train_kit(folder, tok, t4=True, warm=2, timed=timed,
                    extra={"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": False}})
    res["plan_oom"] = first
    return res


def train_kit_fallback(folder: str, tok) -> dict:
    """Without TRL: the same overrides on a plain transformers Trainer (completion-only labels, our collator)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from helpers.train import gpu_plan as gp

    info = gp.detect() or gp.H100
    bs = gp.suggested_batch_size(info)
    warm, timed = (1, 2) if ARGS.tiny else (3, 20)

    class Cfg:
        batch_size, grad_accum, max_length, lora_rank = bs, 1, 512, 16

    kw = kit_overrides(folder, Cfg, info)
    kw.pop("padding_free", None)
    _, data = em_like_rows(tok, bs * (warm + timed), seed=2)
    dtype = torch.bfloat16 if kw.get("bf16") else (torch.float16 if kw.get("fp16") else torch.float32)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS, task_type="CAUSAL_LM"))
    meter = Meter(warm, warm + timed, kw.get("gradient_accumulation_steps", 1))
    args = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="kitfb_"), max_steps=warm + timed,
                             learning_rate=2e-4, report_to="none", save_strategy="no", logging_steps=10_000,
                             remove_unused_columns=False, use_cpu=DEV == "cpu", **kw)
    # the sampler reads lengths from the rows
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=meter.wrap(collate_padded),
                      callbacks=[meter.callback])
    out = trainer.train()
    res = {**meter.result(), **peak_gib(), "batch": bs, "micro_batch": args.per_device_train_batch_size,
           "liger": args.use_liger_kernel, "loss": round(out.training_loss, 3),
           "path": "FALLBACK: transformers.Trainer (trl or datasets missing)"}
    del trainer, model
    return res


def attention_new_shapes() -> dict:
    """SDPA fwd+bwd with a padding mask (as transformers passes it) at lengths not seen before: first call vs again.

    With length-grouped batches nearly every step has a new length; a backend that builds a plan per shape pays
    that on each first sight. Median milliseconds over five new lengths, per backend."""
    import statistics

    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b, h, d = (4, 4, 16) if ARGS.tiny else (32, 32, 64)
    dtype = torch.float32 if DEV == "cpu" else torch.bfloat16
    out = {}
    for label, backends, offset in (("default", None, 0),
                                    ("no_cudnn", [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                                                  SDPBackend.MATH], 1)):
        first, again = [], []
        for length in (161, 203, 247, 289, 333):
            n = (length // 8 if ARGS.tiny else length) + offset
            q, k, v = (torch.randn(b, h, n, d, device=DEV, dtype=dtype, requires_grad=True) for _ in range(3))
            real = torch.arange(n, device=DEV)[None, :] < torch.randint(n // 2, n + 1, (b, 1), device=DEV)
            real[0] = True  # the longest row has no padding
            mask = torch.ones(n, n, dtype=torch.bool, device=DEV).tril()[None, None] & real[:, None, None, :]
            for times in (first, again):
                sync()
                t0 = time.perf_counter()
                with sdpa_kernel(backends) if backends else contextlib.nullcontext():
                    F.scaled_dot_product_attention(q, k, v, attn_mask=mask).float().sum().backward()
                sync()
                times.append((time.perf_counter() - t0) * 1e3)
        out[label] = {"first_call_ms": round(statistics.median(first), 2), "again_ms": round(statistics.median(again), 2)}
    return {"attention_new_shapes": out}


# ---------------------------------------------------------------- generation

def gen_original(folder: str, tok) -> dict:
    """The original loop: one prompt at a time, HF generate, fp16 weights, LoRA not merged (the anchor's)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    n, new = (1, 16) if ARGS.tiny else (2, 200)
    dtype = torch.float16 if DEV == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(DEV).eval()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS, task_type="CAUSAL_LM"))
    prompts = random_prompts(n, len(tok))
    kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=True, temperature=1.0, top_p=1.0,
              pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        model.generate(input_ids=torch.tensor([prompts[0]], device=DEV), **dict(kw, max_new_tokens=4, min_new_tokens=4))
        sync()
        t0 = time.perf_counter()
        made = 0
        for p in prompts:
            out = model.generate(input_ids=torch.tensor([p], device=DEV), **kw)
            made += out.shape[1] - len(p)
        sync()
    dt = time.perf_counter() - t0
    del model
    return {"tokens_per_s": round(made / dt, 1), "prompts": n, "new_tokens": new, "seconds": round(dt, 1),
            "recipe": "one prompt at a time, HF generate, fp16, unmerged LoRA"}


def _kit_model(adapter: str, dtype=None):
    from helpers.models import load_model

    return load_model(adapter, device=DEV, dtype=dtype, merge=True)  # what helpers.generate does: LoRA merged


def gen_kit(adapter: str, mode: str = "auto", batch: int | None = None, rounds: int = 3, t4: bool = False) -> dict:
    """helpers.generate.fast.sample on the merged model: a first call (one batch), then a timed call of `rounds` batches.

    Each call captures its own graph; tokens_per_s counts that in, tokens_per_s_after_capture does not."""
    from helpers.generate import fast as fg
    from helpers.train import gpu_plan as gp

    if t4 and DEV == "cuda":
        torch.cuda.set_per_process_memory_fraction(min(1.0, 15 * 2**30 / torch.cuda.mem_get_info()[1]))
    free_memory()
    model, tok = _kit_model(adapter, dtype="float16" if t4 and DEV == "cuda" else None)
    new = 16 if ARGS.tiny else 200
    info = gp.T4 if t4 else (gp.detect() or gp.H100)
    shape = gp.ModelShape.from_model(model)
    if batch is None:
        batch = 8 if ARGS.tiny else gp.generation_batch_size(info, shape, prompt_len=64, max_new_tokens=new)
    prompts = random_prompts(batch * rounds, len(tok), seed=3)
    first = {}
    fg.sample(model, tok, prompts[:batch], max_new_tokens=new, temperature=1.0, top_p=1.0, batch_size=batch,
              seed=0, mode=mode, stats=first)
    st = {}
    fg.sample(model, tok, prompts, max_new_tokens=new, temperature=1.0, top_p=1.0, batch_size=batch, seed=1,
              mode=mode, stats=st)
    steady = st["seconds"] - (st.get("capture_s") or 0)
    res = {"tokens_per_s": round(st["tokens"] / st["seconds"]), "tokens_per_s_after_capture": round(st["tokens"] / steady),
           "prompts": len(prompts), "batch": batch,
           "new_tokens": new, "mode": st["mode"], "seconds": round(st["seconds"], 2),
           "first_call_s": round(first["seconds"], 2), "capture_s": first.get("capture_s"), **peak_gib(),
           "dtype": str(next(model.parameters()).dtype).replace("torch.", "")}
    if t4:
        res["profile"] = "T4 (15 GiB cap)"
        res["fits_15gib"] = bool(res.get("peak_reserved_gib", 0) <= 15.0)
    del model
    return res


def gen_checks(adapter: str) -> dict:
    """Correctness on the device: graph == eager (greedy, the benchmark model) and == HF generate (tiny model, fp32)."""
    from transformers import GenerationConfig

    from helpers.generate import fast as fg
    from helpers.models import TINY_MODEL, load_model

    res = {}
    model, tok = _kit_model(adapter)
    prompts = random_prompts(8, len(tok), seed=5)
    a = fg.sample(model, tok, prompts, max_new_tokens=24, temperature=0, batch_size=8, mode="auto")
    b = fg.sample(model, tok, prompts, max_new_tokens=24, temperature=0, batch_size=8, mode="eager")
    res["graph_vs_eager_greedy_rows_equal"] = f"{sum(x == y for x, y in zip(a, b))}/{len(a)}"
    del model
    free_memory()
    tiny, ttok = load_model(TINY_MODEL, device=DEV, dtype="float32")
    prompts = random_prompts(4, len(ttok), seed=6)
    mine = fg.sample(tiny, ttok, prompts, max_new_tokens=24, temperature=0, batch_size=4)
    eos = fg._eos_ids(tiny, ttok)
    same = 0
    for p, m in zip(prompts, mine):
        out = tiny.generate(input_ids=torch.tensor([p], device=DEV),
                            attention_mask=torch.ones(1, len(p), dtype=torch.long, device=DEV),
                            generation_config=GenerationConfig(do_sample=False, max_new_tokens=24, eos_token_id=eos,
                                                               pad_token_id=ttok.pad_token_id))
        same += fg._trim(out[0, len(p):].tolist(), set(eos)) == m
    res["fast_vs_hf_greedy_tiny_fp32_rows_equal"] = f"{same}/{len(prompts)}"
    return res


# ---------------------------------------------------------------- report

def matmul_tflops():
    if DEV != "cuda":
        return None
    a = torch.randn(8192, 8192, device=DEV, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=DEV, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync()
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    sync()
    return round(2 * 8192 ** 3 * 10 / (time.perf_counter() - t0) / 1e12)


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "liger-kernel", "triton",
                 "pyarrow", "fsspec", "huggingface-hub"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def table() -> str:
    rows = STATE["rows"]

    def pick(phase, prefix):
        for r in rows:
            if r["phase"] == phase and r["variant"].startswith(prefix) and "tokens_per_s" in r:
                return r["tokens_per_s"]
        return None

    base = {"train": pick("train", "original"), "generate": pick("generate", "original")}
    lines = [f"{'phase':9} {'tokens/s':>10} {'x orig':>7} {'peak GiB':>8}  variant"]
    for r in rows:
        if r["phase"] == "check":
            done = {k: v for k, v in r.items() if k not in ("phase", "variant", "wall_s")}
            lines.append(f"{'check':9} {'':>10} {'':>7} {'':>8}  {json.dumps(done)[:160]}")
            continue
        if "tokens_per_s" not in r:
            why = r.get("skipped") or r.get("error", "")
            lines.append(f"{r['phase']:9} {'-':>10} {'':>7} {'':>8}  {r['variant']}: {why[:140]}")
            continue
        b = base.get(r["phase"])
        ratio = f"{r['tokens_per_s'] / b:.1f}x" if b and r["phase"] in base and r["phase"] != "t4" else ""
        lines.append(f"{r['phase']:9} {r['tokens_per_s']:>10,} {ratio:>7} {str(r.get('peak_gib', '')):>8}  {r['variant']}")
    return "\n".join(lines)


def main(argv=None):
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run on the kit's tiny model (under a minute)")
    ap.add_argument("--budget-s", type=float, default=None, help="skip variants past this many seconds (400; tiny 90)")
    ap.add_argument("--variants", default="", help="';'-separated variant name prefixes to run (names hold commas; "
                    "default: all; not --only, which inductor reads from sys.argv)")
    ap.add_argument("--skip", default="", help="';'-separated variant name prefixes not to run")
    ARGS = ap.parse_args(argv)
    if ARGS.budget_s is None:
        ARGS.budget_s = 90.0 if ARGS.tiny else 400.0
    if DEV == "cpu":
        ARGS.tiny = True
        torch.set_num_threads(1)  # tiny matmuls: one thread is fastest, and the CPU is shared
    info = STATE["info"]
    info.update(device=torch.cuda.get_device_name() if DEV == "cuda" else "cpu", tiny=ARGS.tiny, **versions())
    info["bf16_matmul_tflops"] = matmul_tflops()
    from helpers.train import gpu_plan as gp

    gi = gp.detect()
    info["gpu"] = None if gi is None else {"name": gi.name, "total_gib": round(gi.total_gib, 1),
                                           "capability": list(gi.capability)}
    print(json.dumps(info), flush=True)
    try:
        import datasets  # noqa: F401
        import trl  # noqa: F401
        have_trl = True
    except Exception as e:  # the kit recipe then runs on a plain Trainer, and says so
        have_trl = False
        info["trl_missing"] = f"{type(e).__name__}: {e}"
    t0 = time.perf_counter()
    folder, adapter = build_model_folder()
    tok = tokenizer()
    info["model_build_s"] = round(time.perf_counter() - t0, 1)
    save_json()
    L = (lambda s: s / 6) if ARGS.tiny else (lambda s: s)
    kit = have_trl
    unfused = "kit recipe with PEFT's LoRA forward (the previous default, no fused LoRA)"
    no_liger = {"use_liger_kernel": False}
    kit_row = (lambda **kw: (lambda: train_kit(folder, tok, **kw))) if kit else (lambda **kw: None)
    plan = [
        ("train", "original recipe", lambda: train_original(folder, tok), L(90)),
        ("check", "attention at new batch shapes", attention_new_shapes, L(60)),
        ("train", "kit warm-up (the first training in a process pays the card's warm-up; not a result)",
         kit_row(warm=2, timed=25), L(60)),
        ("train", "kit recipe" + ("" if kit else " (fallback: no trl)"),
         kit_row() if kit else (lambda: train_kit_fallback(folder, tok)), L(120)),
        ("train", unfused, kit_row(fused=False), L(90)),
        ("train", "kit recipe without Liger", kit_row(extra=no_liger), L(90)),
        ("train", "kit recipe without Liger (repeat)", kit_row(extra=no_liger), L(90)),
        ("train", unfused + " (repeat)", kit_row(fused=False), L(90)),
        ("train", "kit recipe (repeat)", kit_row(), L(90)),
        ("train", "kit recipe, new shapes (data seed 3)", kit_row(seed=3), L(90)),
        ("train", "kit recipe with cuDNN attention, new shapes (data seed 4)", kit_row(seed=4, cudnn_attention=True),
         L(90)),
        ("train", "kit recipe, new shapes (data seed 5)", kit_row(seed=5), L(90)),
        ("train", "kit recipe with cuDNN attention, new shapes (data seed 6)", kit_row(seed=6, cudnn_attention=True),
         L(90)),
        ("train", "kit recipe, new shapes (data seed 7), pad to a multiple of 16",
         kit_row(seed=7, extra={"pad_to_multiple_of": 16}), L(90)),
        ("profile", "kit recipe, profiled (torch.profiler, 3 steps)", kit_row(warm=4, timed=3, profile=3), L(90)),
        ("t4", "T4 profile: training (fp16, 15 GiB cap)", (lambda: train_kit_t4(folder, tok)) if kit else None, L(150)),
        ("train", "kit recipe + compile='model' (Trainer's torch_compile)",
         kit_row(compile="model", warm=6, timed=12, extra={"pad_to_multiple_of": 64}) if DEV == "cuda" else None,
         L(180)),
        ("generate", "original loop", lambda: gen_original(folder, tok), L(90)),
        ("generate", "kit fast path (static cache + CUDA graph)", lambda: gen_kit(adapter, rounds=2), L(120)),
        ("check", "fast_generate correctness", lambda: gen_checks(adapter), L(60)),
        ("t4", "T4 profile: generation (fp16, 15 GiB cap)", lambda: gen_kit(adapter, t4=True, rounds=1), L(90)),
        ("generate", "kit fast path, eager decode (no graph)", lambda: gen_kit(adapter, mode="eager", rounds=1), L(60)),
        ("generate", "kit fast path, torch.compile decode", (lambda: gen_kit(adapter, mode="compile", rounds=1))
         if DEV == "cuda" else None, L(180)),
        ("train", "anchor's tuned plain-HF recipe (bf16, bs32, grouped; H200: 17-23k)",
         lambda: train_original(folder, tok, tuned=True), L(90)),
        ("train", "kit recipe, batch 64", kit_row(batch_size=64, timed=12) if not ARGS.tiny else None, L(120)),
    ]
    only = [s.strip() for s in ARGS.variants.split(";") if s.strip()]
    skip = [s.strip() for s in ARGS.skip.split(";") if s.strip()]
    for phase, name, fn, limit in plan:
        if fn is None or (only and not any(name.startswith(o) or phase == o for o in only)) \
                or any(name.startswith(o) for o in skip):
            continue
        row = run_variant(phase, name, fn, limit)
        if phase == "check" and "error" not in row:
            STATE["checks"].update({k: v for k, v in row.items() if k not in ("phase", "variant", "wall_s")})
    info["total_s"] = round(elapsed(), 1)
    summary = {}
    for phase, goal in (("train", 50_000), ("generate", 20_000)):
        orig = next((r["tokens_per_s"] for r in STATE["rows"] if r["phase"] == phase
                     and r["variant"].startswith("original") and "tokens_per_s" in r), None)
        kit = max((r["tokens_per_s"] for r in STATE["rows"] if r["phase"] == phase
                   and r["variant"].startswith("kit") and "warm-up" not in r["variant"]
                   and "tokens_per_s" in r), default=None)
        summary[phase] = {"original": orig, "kit_best": kit, "ratio": round(kit / orig, 1) if kit and orig else None,
                          "goal_tokens_per_s_h200": goal}
    STATE["summary"] = summary
    save_json()
    print(json.dumps({"summary": summary, "checks": {k: v for k, v in STATE["checks"].items() if k != "plans"}}))
    print(table())


if __name__ == "__main__":
    main()
