"""Batched sampling with transformers' own `model.generate`: left padding, or a shared prompt prefix cached once."""

from __future__ import annotations

import inspect

from helpers.models import unwrap_peft


def generate_token_ids(model, prompts: list[list[int]], config, pad_id: int,
                       share_prefix: bool = True) -> list[list[int]]:
    """New token ids for a batch of prompt ids: left-padded, or [shared prefix (cached once) | pad | rest]."""
    import torch

    dev = model.device
    n = _common_prefix_len(prompts) if share_prefix and len(prompts) > 1 else 0
    cache_kw = {}
    if n >= 4:
        try:
            prefix = torch.tensor([prompts[0][:n]], device=dev)
            out = model(input_ids=prefix, use_cache=True)
            cache = out["cache"] if "cache" in out else out["past_key_values"]
            cache.batch_repeat_interleave(len(prompts))
            cache_kw = {_cache_kwarg(model): cache}
        except (TypeError, ValueError, AttributeError, KeyError, NotImplementedError):
            n, cache_kw = 0, {}  # a model whose cache cannot be shared: plain left padding
    rest = [p[n:] for p in prompts]
    width = max(map(len, rest))
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rest], device=dev)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rest], device=dev)
    if n:
        ids = torch.cat([prefix.expand(len(prompts), -1), ids], dim=1)
        mask = torch.cat([torch.ones(len(prompts), n, dtype=mask.dtype, device=dev), mask], dim=1)
    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config, **cache_kw)
    return out[:, ids.shape[1]:].tolist()


def _common_prefix_len(prompts: list[list[int]]) -> int:
    """Tokens that every prompt starts with, leaving at least one token of each prompt to process."""
    limit = min(map(len, prompts)) - 1
    first, n = prompts[0], 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n


def _cache_kwarg(model) -> str:
    """`cache` in recent transformers 5 releases, `past_key_values` before."""
    base = unwrap_peft(model)
    return "cache" if "cache" in inspect.signature(base.prepare_inputs_for_generation).parameters else "past_key_values"
