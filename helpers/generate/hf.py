"""Batched sampling with transformers' own `model.generate`: left padding, or a shared prompt prefix cached once."""

from __future__ import annotations

import inspect

from helpers.models import unwrap_peft


class StepProgress:
    """A stopping criterion that never stops: after each decoding step it moves a tqdm bar (in answers) by the
    batch's finished answers plus each unfinished one's share of max_new_tokens."""

    def __init__(self, bar, max_new_tokens: int, eos_token_id):
        self.bar, self.max_new = bar, max(1, int(max_new_tokens))
        self.eos = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or [])
        self.start = self.done = None
        self.shown = 0.0

    def __call__(self, input_ids, scores=None, **kwargs):
        import torch

        if self.done is None:  # the first call comes after the first new token
            self.start = input_ids.shape[1] - 1
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if self.eos:
            self.done |= torch.isin(input_ids[:, -1], torch.tensor(self.eos, device=input_ids.device))
        step = input_ids.shape[1] - self.start
        finished = int(self.done.sum())
        shown = finished + (len(self.done) - finished) * min(step / self.max_new, 1.0)
        self.bar.update(shown - self.shown)
        self.shown = shown
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def generate_token_ids(model, prompts: list[list[int]], config, pad_id: int,
                       share_prefix: bool = True, progress: StepProgress | None = None) -> list[list[int]]:
    """New token ids for a batch of prompt ids: left-padded, or [shared prefix (cached once) | pad | rest].

    `progress`: a StepProgress that moves a bar after every decoding step."""
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
    if progress is not None:
        from transformers import StoppingCriteriaList

        cache_kw["stopping_criteria"] = StoppingCriteriaList([progress])
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
