"""GPU benchmark fixtures: the model folder and adapter, the tokenizer, EM-like rows, step timing and profiling."""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from pathlib import Path

import torch
from gpu_harness import ARGS, DEV, OUT, REPO, STATE, free_memory, sync

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def suggested_batch_size(info) -> int:
    """Conversations per optimizer step the benchmark trains with: 32 on 40 GB cards and up, else 16."""
    return 32 if info.total_gib >= 38 else 16


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


def kit_overrides(folder: str, cfg, info) -> dict:
    """The gpu_profile SFTConfig kwargs for this model folder (from its config, 16-bit weights)."""
    from transformers import AutoConfig

    from helpers.gpu import plan as gp

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
