"""`TrainSpeed`: how build_trainer makes a run fast, as plain data; what applies it on a GPU is helpers.gpu.lora."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainSpeed:
    """How build_trainer makes a run fast (plain data; trainer.kit_speed says what was applied); never what is learned."""

    skip_lora_input_upcast: bool = True  # under 16-bit AMP, no fp32 copy of the LoRA input (bit-identical)
    fuse_lora: bool = False  # opt-in: the fused LoRA autograd, set per PEFT LoRA layer (helpers.gpu.lora)
    cudnn_attention: bool = False  # let SDPA pick cuDNN's attention while training (it plans per batch length)
    precision: str | None = None  # "bf16", "fp16" or "fp32"; None: the device's own (precision_for)
    trainer_args: dict = field(default_factory=dict)  # SFTConfig keyword arguments applied over the GPU plan's
