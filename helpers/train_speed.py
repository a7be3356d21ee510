"""Speed settings applied to the model a trainer holds: skip PEFT's fp32 cast of the LoRA input under autocast.

It does not change what is computed: under mixed precision autocast casts the LoRA input back to 16 bits for the
matmul anyway, so PEFT's cast to fp32 first is a wasted copy of every adapted layer's input.
"""

from __future__ import annotations


def skip_lora_input_upcast(model) -> int:
    """Under autocast, let LoRA layers take their 16-bit input as it is (PEFT casts it to fp32 first); returns count."""
    count = 0
    for module in model.modules():
        if getattr(module, "cast_input_dtype_enabled", None) is True and hasattr(module, "lora_A"):
            module.cast_input_dtype_enabled = False
            count += 1
    return count
