"""GPU benchmark recipes: the course's original training and sampling loops, and the kit's, each returning one row."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time

import torch
from gpu_fixtures import (TARGETS, Meter, Profile, _keep_llama_classes, collate_padded, em_like_rows, kit_overrides,
                          random_prompts, suggested_batch_size)
from gpu_harness import ARGS, DEV, free_memory, peak_gib, sync


def train_original(folder: str, tok, tuned: bool = False) -> dict:
    """The course's original recipe (the anchor's): fp16 weights + fp16 AMP + gradient checkpointing, batch 4.

    `tuned=True`: the anchor's tuned plain-HF row instead (bf16, no checkpointing, batch 32, length-grouped)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from helpers.gpu.plan import grouping_kwargs

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


def train_kit(folder: str, tok, batch_size: int | None = None, t4: bool = False, extra: dict | None = None,
              warm: int | None = None, timed: int | None = None, compile: str = "off", upcast: bool = False,
              fused: bool = False, profile: int = 0, seed: int = 2, cudnn_attention: bool = False) -> dict:
    """The kit's recipe through helpers.train.build_trainer (TRL SFTTrainer), its speed options as a TrainSpeed.

    `compile`: TrainConfig.compile; `upcast=True`: keep PEFT's fp32 cast of the LoRA input (the kit skips it);
    `fused=True`: the opt-in fused LoRA layer; `profile=n`: profile n steps after the warm-up instead of timing;
    `seed`: the data (another seed gives batch shapes this process has not seen); `cudnn_attention=True`: let SDPA
    pick cuDNN's attention (the kit turns it off while training); `extra`: SFTConfig kwargs over the GPU plan's."""
    from helpers.train import TrainConfig, build_trainer, prepare_data
    from helpers.gpu import plan as gp
    from helpers.train import TrainSpeed

    info = gp.T4 if t4 else (gp.detect() or gp.H100)
    if t4:
        os.environ["EM_GPU_PROFILE"] = "t4"
        if DEV == "cuda":
            torch.cuda.set_per_process_memory_fraction(min(1.0, 15 * 2**30 / torch.cuda.mem_get_info()[1]))
    bs = batch_size or suggested_batch_size(info)
    # 5 warm-up steps: Triton (TRL's fused head, Liger) compiles a kernel variant per new shape class early on
    warm = warm if warm is not None else (1 if ARGS.tiny else 5)
    timed = timed if timed is not None else (2 if ARGS.tiny else 25)
    steps = warm + timed
    tag = "".join(f"-{k[:6]}" for k in sorted(extra or {}))
    cfg = TrainConfig(model=folder, batch_size=bs, grad_accum=1, max_steps=steps, learning_rate=2e-4,
                      lora_rank=16, lora_alpha=32, max_length=512, save_steps=100_000, compile=compile,
                      run_name=f"bench-kit-{bs}{'-t4' if t4 else ''}{tag}-{compile}{'-up' if upcast else ''}"
                               f"{'-fused' if fused else ''}{'-prof' if profile else ''}-s{seed}")
    overrides = kit_overrides(folder, cfg, info)  # records the plan; applied only with `extra` (as the kit's own)
    overrides.update(extra or {})
    speed = TrainSpeed(skip_lora_input_upcast=not upcast, fuse_lora=fused, cudnn_attention=cudnn_attention,
                       precision="fp16" if t4 and DEV == "cuda" else None,  # a T4 has no bf16
                       trainer_args=overrides if extra else {})
    messages, _ = em_like_rows(tok, bs * steps, seed=seed)
    train_ds, _, _ = prepare_data(cfg, messages)
    meter = Meter(warm, steps)
    prof = Profile(warm, min(profile, timed)) if profile else None
    if compile != "off":
        torch._dynamo.reset()
    free_memory()
    with _keep_llama_classes():
        trainer = build_trainer(cfg, train_ds, callbacks=[meter.callback] + ([prof.callback] if prof else []),
                                speed=speed)
        meter.accum = trainer.args.gradient_accumulation_steps
        trainer.data_collator = meter.wrap(trainer.data_collator)
        t0 = time.perf_counter()
        out = trainer.train()
        total_s = time.perf_counter() - t0
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
           "trainer_args": sorted(extra or {})}
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

    from helpers.gpu import plan as gp

    info = gp.detect() or gp.H100
    bs = suggested_batch_size(info)
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
    """helpers.gpu.fast.sample on the merged model: a first call (one batch), then a timed call of `rounds` batches.

    Each call captures its own graph; tokens_per_s counts that in, tokens_per_s_after_capture does not."""
    from helpers.gpu import fast as fg
    from helpers.gpu import plan as gp

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
              seed=0, decode=mode, stats=first)
    st = {}
    fg.sample(model, tok, prompts, max_new_tokens=new, temperature=1.0, top_p=1.0, batch_size=batch, seed=1,
              decode=mode, stats=st)
    steady = st["seconds"] - (st.get("capture_s") or 0)
    res = {"tokens_per_s": round(st["tokens"] / st["seconds"]), "tokens_per_s_after_capture": round(st["tokens"] / steady),
           "prompts": len(prompts), "batch": batch,
           "new_tokens": new, "mode": st["decode"], "seconds": round(st["seconds"], 2),
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

    from helpers.gpu import fast as fg
    from helpers.models import TINY_MODEL, end_of_answer_ids, load_model, trim_at_end

    res = {}
    model, tok = _kit_model(adapter)
    prompts = random_prompts(8, len(tok), seed=5)
    a = fg.sample(model, tok, prompts, max_new_tokens=24, temperature=0, batch_size=8, decode="auto")
    b = fg.sample(model, tok, prompts, max_new_tokens=24, temperature=0, batch_size=8, decode="eager")
    res["graph_vs_eager_greedy_rows_equal"] = f"{sum(x == y for x, y in zip(a, b))}/{len(a)}"
    del model
    free_memory()
    tiny, ttok = load_model(TINY_MODEL, device=DEV, dtype="float32")
    prompts = random_prompts(4, len(ttok), seed=6)
    mine = fg.sample(tiny, ttok, prompts, max_new_tokens=24, temperature=0, batch_size=4)
    eos = end_of_answer_ids(tiny.generation_config, ttok)
    same = 0
    for p, m in zip(prompts, mine):
        out = tiny.generate(input_ids=torch.tensor([p], device=DEV),
                            attention_mask=torch.ones(1, len(p), dtype=torch.long, device=DEV),
                            generation_config=GenerationConfig(do_sample=False, max_new_tokens=24, eos_token_id=eos,
                                                               pad_token_id=ttok.pad_token_id))
        same += trim_at_end(out[0, len(p):].tolist(), set(eos)) == m
    res["fast_vs_hf_greedy_tiny_fp32_rows_equal"] = f"{same}/{len(prompts)}"
    return res
