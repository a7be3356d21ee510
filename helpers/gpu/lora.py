"""What build_trainer applies on a GPU for a `TrainSpeed` (helpers.train.speed): none of it changes what is learned.

Under mixed precision autocast casts PEFT's fp32 copy of the LoRA input straight back to 16 bits, so skipping the copy
is exact. The fused layer (opt-in) folds LoRA's scale-and-add into the matmul (cuBLAS's alpha/beta) instead of three
full-size elementwise passes per adapted layer. cuDNN's attention builds a plan for every new batch length, which
length-grouped batches meet on nearly every step; SDPA's other kernels need none. Measurements: benchmarks/README.md.
"""

from __future__ import annotations

import functools
from contextlib import nullcontext

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F
from transformers import TrainerCallback


def skip_lora_input_upcast(model) -> int:
    """Under autocast, let LoRA layers take their 16-bit input as it is (PEFT casts it to fp32 first); returns count."""
    count = 0
    for module in model.modules():
        if getattr(module, "cast_input_dtype_enabled", None) is True and hasattr(module, "lora_A"):
            module.cast_input_dtype_enabled = False
            count += 1
    return count


class LoraLinearFunction(torch.autograd.Function):
    """y = x W^T + b + s (x A^T) B^T for a frozen W, b: the LoRA term is added inside the matmul (addmm alpha)."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        a, b = lora_a.to(x.dtype), lora_b.to(x.dtype)
        h = x2 @ a.t()                                    # [N, r]
        y = F.linear(x2, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))
        y.addmm_(h, b.t(), alpha=scaling)                 # y += s * h B^T, in the matmul's epilogue
        ctx.save_for_backward(x2, weight, a, b, h)
        ctx.scaling, ctx.shape, ctx.param_dtypes = scaling, shape, (lora_a.dtype, lora_b.dtype)
        return y.view(*shape[:-1], y.shape[-1])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x2, weight, a, b, h = ctx.saved_tensors
        device = x2.device.type
        with torch.autocast(device, enabled=False) if torch.is_autocast_enabled(device) else nullcontext():
            g = grad_y.reshape(-1, grad_y.shape[-1]).to(x2.dtype)
            s = ctx.scaling
            gh = g @ (b * s)                              # [N, r]: dL/dh (the scale on the small factor)
            grad_x = None
            if ctx.needs_input_grad[0]:
                grad_x = g @ weight.to(x2.dtype)          # through the frozen W ...
                grad_x.addmm_(gh, a)                      # ... plus through A, in the same output
                grad_x = grad_x.view(ctx.shape)
            grad_a = (gh.t() @ x2).to(ctx.param_dtypes[0]) if ctx.needs_input_grad[3] else None
            grad_b = (g.t() @ (h * s)).to(ctx.param_dtypes[1]) if ctx.needs_input_grad[4] else None
        return grad_x, None, None, grad_a, grad_b, None


def _fusable(layer, name: str) -> bool:
    """Is adapter `name` of this PEFT lora.Linear the plain case the fused layer computes exactly?"""
    if name not in layer.lora_A or name not in layer.lora_B:
        return False
    lora_a, lora_b, base = layer.lora_A[name], layer.lora_B[name], layer.base_layer
    return (type(lora_a) is torch.nn.Linear and type(lora_b) is torch.nn.Linear and lora_a.bias is None
            and lora_b.bias is None and name not in layer.lora_variant
            and isinstance(layer.lora_dropout[name], torch.nn.Identity)
            and type(base) is torch.nn.Linear and not base._forward_hooks and not base._forward_pre_hooks
            and "forward" not in base.__dict__ and not base.weight.requires_grad
            and (base.bias is None or not base.bias.requires_grad))


def _fused_forward(self, fused: frozenset, x, *args, **kwargs):
    """PEFT lora.Linear.forward for adapters that were fusable when fused (see _fusable); else PEFT's own.

    Only what can change after fusing is checked here: this runs once per adapted layer and step, on the host."""
    if args or kwargs or self.disable_adapters or self.merged:
        return type(self).forward(self, x, *args, **kwargs)
    active = self.active_adapters
    if len(active) != 1 or active[0] not in fused:
        return type(self).forward(self, x)
    name = active[0]
    lora_a, lora_b, base = self.lora_A[name].weight, self.lora_B[name].weight, self.base_layer
    if base.weight.requires_grad:
        return type(self).forward(self, x)
    device = x.device.type
    amp = torch.is_autocast_enabled(device)
    dtype = torch.get_autocast_dtype(device) if amp else x.dtype
    if not amp and not (base.weight.dtype == lora_a.dtype == lora_b.dtype == dtype):
        return type(self).forward(self, x)  # PEFT computes such a mix in the LoRA weights' dtype
    with torch.autocast(device, enabled=False) if amp else nullcontext():
        return LoraLinearFunction.apply(x.to(dtype), base.weight, base.bias, lora_a, lora_b, float(self.scaling[name]))


def _is_fused(module) -> bool:
    forward = module.__dict__.get("forward")
    return isinstance(forward, functools.partial) and forward.func is _fused_forward


def fuse_lora_layers(model) -> int:
    """Give each plain PEFT LoRA Linear (one nn.Linear base, no dropout/DoRA/bias) the fused forward; returns count."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    count = 0
    for module in model.modules():
        if type(module) is LoraLinear and not _is_fused(module) and module.lora_A \
                and all(_fusable(module, name) for name in module.lora_A):
            # a partial (not a bound method), so a pickled model (torch.save) loads again
            module.forward = functools.partial(_fused_forward, module, frozenset(module.lora_A))
            count += 1
    return count


def unfuse_lora_layers(model) -> int:
    """Undo fuse_lora_layers (PEFT's forward again); returns count."""
    count = 0
    for module in model.modules():
        if _is_fused(module):
            del module.__dict__["forward"]
            count += 1
    return count


class NoCudnnAttention(TrainerCallback):
    """While training, SDPA does not pick cuDNN's attention; the setting before training comes back after it."""

    def __init__(self):
        self.saved = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.saved = torch.backends.cuda.cudnn_sdp_enabled()
        torch.backends.cuda.enable_cudnn_sdp(False)

    def on_train_end(self, args=None, state=None, control=None, **kwargs):
        if self.saved is not None:
            torch.backends.cuda.enable_cudnn_sdp(self.saved)
            self.saved = None

    restore = on_train_end  # for a training that raised (the Trainer then skips on_train_end)
