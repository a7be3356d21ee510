"""GPU training and sampling defaults picked from the card found: precision, batch split, checkpointing, kernels.

Every decision is a plain function of a `GpuInfo` (name, memory, compute capability) and a `ModelShape`, so it can be
checked for any card without one. `plan_to_kwargs(plan)` turns the decisions into SFTConfig keyword arguments;
`generation_batch_size(...)` sizes `helpers.gpu.fast.sample` batches. Speed switches that are not decisions of
the plan (compile, cuDNN attention, fused LoRA) are plain settings: TrainConfig.compile and helpers.train.TrainSpeed.
Set EM_GPU_PROFILE=t4 to plan for a 15 GiB T4 on any GPU (how the kit checks that the course fits a free Colab).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from helpers.models import unwrap_peft

GIB = 1024 ** 3
RESERVED_GIB = 1.5  # CUDA workspaces, the fused LM head's tiles, allocator slack
USABLE_FRACTION = 0.9  # of total (or free) memory the plan may fill
GEN_BATCH_CAP_LARGE, GEN_BATCH_CAP_SMALL = 512, 256  # sampling batch caps (>= 40 GiB cards, smaller cards)


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as the planner sees it (memory in GiB)."""

    name: str
    total_gib: float
    free_gib: float
    capability: tuple[int, int]
    count: int = 1

    @property
    def bf16(self) -> bool:
        """Ampere (8.0) and newer compute in bf16; the T4 (7.5) and V100 (7.0) do not."""
        return tuple(self.capability) >= (8, 0)


# The free Colab GPU, as the kit plans for it: 16 GB card, the process held to 15 GiB, fp16 only.
T4 = GpuInfo("Tesla T4 (15 GiB profile)", total_gib=15.0, free_gib=15.0, capability=(7, 5))
H100 = GpuInfo("NVIDIA H100 80GB HBM3", total_gib=79.2, free_gib=78.5, capability=(9, 0))
A100_40 = GpuInfo("NVIDIA A100-SXM4-40GB", total_gib=39.4, free_gib=39.0, capability=(8, 0))
L4 = GpuInfo("NVIDIA L4", total_gib=22.0, free_gib=21.6, capability=(8, 9))


@dataclass(frozen=True)
class ModelShape:
    """The sizes the memory model needs (weights in bytes, per-token activations follow from the widths)."""

    n_params: int
    weight_bytes: int
    layers: int
    hidden: int
    intermediate: int
    kv_heads: int
    head_dim: int
    vocab: int
    dtype_bytes: int = 2

    @classmethod
    def from_config(cls, config, dtype_bytes: int = 2, n_params: int | None = None) -> "ModelShape":
        """From a transformers config; `n_params` estimated from the widths when not given."""
        c = config.get_text_config() if hasattr(config, "get_text_config") else config
        h, i, n = c.hidden_size, c.intermediate_size, c.num_hidden_layers
        heads = c.num_attention_heads
        kv = getattr(c, "num_key_value_heads", None) or heads
        hd = getattr(c, "head_dim", None) or h // heads
        if n_params is None:
            per_layer = h * heads * hd * 2 + h * kv * hd * 2 + 3 * h * i + 2 * h
            embed = c.vocab_size * h * (1 if getattr(c, "tie_word_embeddings", False) else 2)
            n_params = n * per_layer + embed + h
        return cls(int(n_params), int(n_params) * dtype_bytes, n, h, i, kv, hd, c.vocab_size, dtype_bytes)

    @classmethod
    def from_model(cls, model) -> "ModelShape":
        """From a loaded model (its parameter count and dtype)."""
        params = list(model.parameters())
        n = sum(p.numel() for p in params)
        nbytes = sum(p.numel() * p.element_size() for p in params)
        shape = cls.from_config(model.config, dtype_bytes=max(1, round(nbytes / max(n, 1))), n_params=n)
        return dataclasses.replace(shape, weight_bytes=int(nbytes))

    def train_bytes_per_token(self, checkpointing: bool, liger: bool) -> int:
        """Activation bytes kept per token for a LoRA step (16-bit, all projections adapted, dropout 0)."""
        h, i = self.hidden, self.intermediate
        layer = (22 * h + 8 * i) if liger else (34 * h + 10 * i)  # fp32 RMSNorm temps, q/k/v, SwiGLU inputs
        if checkpointing:
            return self.layers * 2 * h + layer  # one layer's input each, plus one layer recomputed
        return self.layers * layer

    def kv_bytes_per_token(self) -> int:
        """Static KV cache bytes per token of context (keys + values, every layer)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


LLAMA_32_1B = ModelShape(n_params=1_235_814_400, weight_bytes=2 * 1_235_814_400, layers=16, hidden=2048,
                         intermediate=8192, kv_heads=8, head_dim=64, vocab=128256)


@dataclass
class TrainPlan:
    """What the planner chose for one training run, with a reason per choice."""

    precision: str
    micro_batch: int
    grad_accum: int
    gradient_checkpointing: bool
    group_by_length: bool
    padding_free: bool
    liger: bool
    est_peak_gib: float
    reasons: list[str] = field(default_factory=list)


def detect(device=None) -> GpuInfo | None:
    """The CUDA device in use as a GpuInfo (None without CUDA); EM_GPU_PROFILE=t4 plans for the T4 instead."""
    import torch

    if not torch.cuda.is_available() or (device is not None and not str(device).startswith("cuda")):
        return None
    if os.environ.get("EM_GPU_PROFILE", "").lower() == "t4":
        return T4
    idx = torch.device(device or "cuda").index
    idx = torch.cuda.current_device() if idx is None else idx
    props = torch.cuda.get_device_properties(idx)
    free, total = torch.cuda.mem_get_info(idx)
    return GpuInfo(props.name, total / GIB, free / GIB, (props.major, props.minor), torch.cuda.device_count())


def liger_available() -> bool:
    """True when liger-kernel is installed in a version transformers accepts."""
    try:
        from transformers.utils import is_liger_kernel_available
    except ImportError:
        from importlib.util import find_spec

        return find_spec("liger_kernel") is not None
    return bool(is_liger_kernel_available())


def _budget_bytes(info: GpuInfo, shape: ModelShape, trainable_bytes: int) -> float:
    usable = min(info.total_gib * USABLE_FRACTION, info.free_gib) * GIB
    return usable - shape.weight_bytes - trainable_bytes - RESERVED_GIB * GIB


def plan_training(info: GpuInfo, shape: ModelShape, batch_size: int, grad_accum: int = 1, max_length: int = 512,
                  liger: bool | None = None, flash_attention: bool = False, load_in_4bit: bool = False,
                  lora_rank: int = 16) -> TrainPlan:
    """Split batch_size x grad_accum conversations per step into the largest micro-batch the card holds."""
    liger = liger_available() if liger is None else bool(liger)
    reasons = []
    precision = "bf16" if info.bf16 else "fp16"
    reasons.append(f"{precision}: compute capability {info.capability[0]}.{info.capability[1]}"
                   + (" has bf16" if info.bf16 else " has no bf16"))
    use_liger = liger and not load_in_4bit and tuple(info.capability) >= (7, 0)
    # LoRA weights, grads and Adam moments in fp32 (all 7 projections, rank r)
    lora_params = shape.layers * lora_rank * (9 * shape.hidden + 2 * shape.kv_heads * shape.head_dim
                                              + 3 * shape.intermediate)
    trainable_bytes = lora_params * 16
    weights = shape.weight_bytes // 4 if load_in_4bit else shape.weight_bytes
    shape_eff = dataclasses.replace(shape, weight_bytes=weights)
    budget = _budget_bytes(info, shape_eff, trainable_bytes) * 0.85  # fragmentation margin
    per_step = max(1, int(batch_size) * int(grad_accum))

    def fits(ckpt: bool) -> int:
        per_token = shape.train_bytes_per_token(ckpt, use_liger)
        return max(0, int(budget // (per_token * max_length))) if budget > 0 else 0

    ckpt = bool(load_in_4bit)
    max_micro = fits(ckpt)
    reasons.append("Liger RMSNorm/RoPE/SwiGLU kernels: " + (
        "on (fused kernels: faster, and less activation memory)" if use_liger else
        "off (liger-kernel not installed: pip install liger-kernel)" if not liger else "off (4-bit or old GPU)"))
    if max_micro < 1 and not ckpt:
        ckpt, max_micro = True, fits(True)
    micro = max([d for d in range(1, per_step + 1) if per_step % d == 0 and d <= max(1, max_micro)])
    if load_in_4bit:
        reasons.append("gradient checkpointing: on (4-bit QLoRA prepares the model with it)")
    elif ckpt:
        reasons.append("gradient checkpointing: on (one sequence of max_length does not fit without it)")
    else:
        reasons.append(f"gradient checkpointing: off (up to {max_micro} sequences of {max_length} tokens fit)")
    reasons.append(f"micro-batch {micro} x {per_step // micro} accumulation = {per_step} conversations per step")
    padding_free = bool(flash_attention)
    reasons.append("padding-free batches (FlashAttention varlen)" if padding_free else
                   "length-grouped batches (padding-free needs FlashAttention, not installed)")
    est = (weights + trainable_bytes + RESERVED_GIB * GIB
           + micro * max_length * shape.train_bytes_per_token(ckpt, use_liger)) / GIB
    return TrainPlan(precision, micro, per_step // micro, ckpt, not padding_free, padding_free, use_liger,
                     round(est, 1), reasons)


def generation_batch_size(info: GpuInfo, shape: ModelShape, prompt_len: int = 64, max_new_tokens: int = 200,
                          n_prompts: int | None = None) -> int:
    """Prompts per sampling batch: what the static KV cache, the logits and the prefill leave room for, capped."""
    context = prompt_len + max_new_tokens
    per_row = (context * shape.kv_bytes_per_token() + shape.vocab * 16
               + prompt_len * (12 * shape.hidden + 6 * shape.intermediate))
    budget = _budget_bytes(info, shape, 0) * 0.85
    cap = GEN_BATCH_CAP_LARGE if info.total_gib >= 40 else GEN_BATCH_CAP_SMALL
    batch = max(1, min(cap, int(budget // per_row)))
    if batch >= 8:
        batch = batch // 8 * 8
    return min(batch, n_prompts) if n_prompts else batch


def grouping_kwargs(on: bool) -> dict:
    """Length grouping as TrainingArguments spells it (transformers 5: train_sampling_strategy)."""
    return {"train_sampling_strategy": "group_by_length" if on else "random"}


def plan_to_kwargs(plan: TrainPlan, model_dtype=None) -> dict:
    """SFTConfig / TrainingArguments keyword arguments of a TrainPlan."""
    precision = plan.precision
    if model_dtype is not None:  # AMP follows the weights the model was loaded in
        name = str(model_dtype).replace("torch.", "")
        precision = {"bfloat16": "bf16", "float16": "fp16"}.get(name, precision)
    kwargs = {
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "per_device_train_batch_size": plan.micro_batch,
        "gradient_accumulation_steps": plan.grad_accum,
        "gradient_checkpointing": plan.gradient_checkpointing,
        "use_liger_kernel": plan.liger,
        **grouping_kwargs(plan.group_by_length),
    }
    if plan.gradient_checkpointing:
        kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    if plan.padding_free:
        kwargs["padding_free"] = True
    return kwargs


def plan_for_model(model, device="cuda", *, batch_size: int = 8, grad_accum: int = 1, max_length: int = 512,
                   load_in_4bit: bool = False, lora_rank: int = 16, info: GpuInfo | None = None) -> TrainPlan | None:
    """The TrainPlan for this loaded model on this GPU (None off CUDA unless `info` names a card)."""
    if not str(device).startswith("cuda") and info is None:
        return None
    info = info or detect(device)
    if info is None:
        return None
    inner = unwrap_peft(model)
    attn = str(getattr(inner.config, "_attn_implementation", "") or "")
    return plan_training(info, ModelShape.from_model(inner), batch_size, grad_accum, max_length,
                         flash_attention="flash" in attn, load_in_4bit=load_in_4bit,
                         lora_rank=lora_rank)

