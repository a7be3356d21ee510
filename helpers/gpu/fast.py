"""Fast batched sampling: static KV cache, one CUDA graph per decode step, GQA-aware decode attention.

`sample(model, tokenizer, prompts_ids, ...)` returns the new token ids of every prompt (up to and including its first
end-of-sequence token). It samples exactly like `model.generate(do_sample=True, top_k=0, temperature=T, top_p=P)`:
the same warpers (HF's own), then `torch.multinomial`. On CPU (and MPS) the same loop runs eagerly.
"""

from __future__ import annotations

import inspect
import time
import warnings

from helpers.models import end_of_answer_ids, pad_token_id, trim_at_end, unwrap_peft

DECODES = ("auto", "graph", "compile", "eager")  # how each decode step runs
DECODE_ATTENTION = "kit_gqa_decode"  # registered with transformers' attention interfaces on first use
_CHECK_EVERY = 16  # steps between "all rows finished?" checks (each one waits for the GPU)


def sample(model, tokenizer, prompts_ids, max_new_tokens: int = 200, temperature: float = 1.0, top_p: float = 1.0,
           batch_size: int | None = None, seed: int = 0, eos_token_id=None, decode: str = "auto",
           progress=False, stats: dict | None = None) -> list[list[int]]:
    """New token ids per prompt (in input order); each list ends at its first eos token (kept) or at max_new_tokens.

    `prompts_ids`: token id lists (already chat-templated). `temperature=0` is greedy. top_k is never applied.
    `batch_size=None`: on CUDA as many prompts as the card holds (helpers.gpu.plan, up to 512), else 16.
    `decode`: "auto" (CUDA graph on CUDA, eager elsewhere), "graph", "compile" (torch.compile reduce-overhead),
    or "eager" (plain HF generate is helpers.generate.hf). `stats`, if given, is filled with decode, seconds, tokens.
    `progress`: True for a bar of its own, or a callable told the number of answers after each batch.
    """
    import torch

    prompts = [list(map(int, p)) for p in prompts_ids]
    if not prompts:
        return []
    if any(len(p) == 0 for p in prompts):
        raise ValueError("sample(): every prompt needs at least one token")
    if decode not in DECODES:
        raise ValueError(f"decode={decode!r}: use one of {DECODES}")
    if temperature < 0 or not 0 < top_p <= 1 or max_new_tokens < 1:
        raise ValueError(f"temperature={temperature}, top_p={top_p}, max_new_tokens={max_new_tokens}: "
                         "need temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1")
    device = next(model.parameters()).device
    if decode == "auto":
        decode = "graph" if device.type == "cuda" else "eager"
    if decode in ("graph", "compile") and device.type != "cuda":
        decode = "eager"
    pad = pad_token_id(model.generation_config, tokenizer)
    eos = end_of_answer_ids(model.generation_config, tokenizer) if eos_token_id is None else (
        [int(eos_token_id)] if isinstance(eos_token_id, int) else [int(i) for i in eos_token_id])
    if batch_size is None:
        batch_size = _default_batch(model, device, max(map(len, prompts)), max_new_tokens, len(prompts))
    batch_size = max(1, min(int(batch_size), len(prompts)))
    order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))  # similar lengths share a batch
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    info = {"decode": decode, "batch_size": batch_size, "batches": len(batches), "capture_s": 0.0}
    t0 = time.perf_counter()
    out: list[list[int] | None] = [None] * len(prompts)
    bar = None
    if progress and not callable(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=len(prompts), desc="sampling", unit="answer")
    try:
        with torch.no_grad():
            runner = _StaticRunner(model, pad, eos, max_new_tokens, temperature, top_p, decode, batch_size,
                                   max(len(p) for p in prompts), device, info)
            with runner:
                for idx in batches:
                    rows = runner.run([prompts[i] for i in idx], gen)
                    for i, ids in zip(idx, rows):
                        out[i] = ids
                    if bar is not None:
                        bar.update(len(idx))
                    elif callable(progress):
                        progress(len(idx))
            info["decode"] = runner.decode
    finally:
        if bar is not None:
            bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    info["seconds"] = time.perf_counter() - t0
    info["tokens"] = sum(len(r) for r in out)
    if stats is not None:
        stats.update(info)
    return out


# ---------------------------------------------------------------- sampling

def next_tokens(logits, temperature: float, top_p: float, generator=None):
    """One token per row of `logits` [B, V]: greedy at temperature 0, else HF's temperature/top-p warpers + multinomial."""
    import torch

    scores = logits.float()
    if temperature == 0:
        return scores.argmax(-1)
    if temperature != 1.0:
        from transformers.generation.logits_process import TemperatureLogitsWarper

        scores = TemperatureLogitsWarper(float(temperature))(None, scores)
    if top_p < 1.0:
        from transformers.generation.logits_process import TopPLogitsWarper

        scores = TopPLogitsWarper(float(top_p))(None, scores)
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)


def _default_batch(model, device, prompt_len: int, max_new_tokens: int, n_prompts: int) -> int:
    """On CUDA what gpu_profile says the card holds (up to 512); elsewhere 16."""
    if device.type != "cuda":
        return 16
    from helpers.gpu import plan as gp

    info = gp.detect(str(device))
    shape = gp.ModelShape.from_model(unwrap_peft(model))
    return gp.generation_batch_size(info, shape, prompt_len, max_new_tokens, n_prompts)


# ---------------------------------------------------------------- decode attention

def _register_decode_attention() -> None:
    """An attention function that reads each KV head once for all its query heads while decoding (sdpa otherwise)."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import sdpa_mask

    def gqa_decode(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
        import torch

        b, h, q_len, d = query.shape
        hk = key.shape[1]
        if q_len != 1 or h % hk or (attention_mask is not None and attention_mask.dtype != torch.bool):
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                          scaling=scaling, **kwargs)
        scale = scaling if scaling is not None else d ** -0.5
        q = query.reshape(b, hk, h // hk, d)  # query heads grouped under their KV head: [B, Hk, G, D]
        scores = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # [B, Hk, G, L]
        if attention_mask is not None:  # [B, 1, 1, L], True = attend
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        probs = torch.softmax(scores, dim=-1).to(value.dtype)
        attn = torch.matmul(probs, value)  # [B, Hk, G, D]
        return attn.reshape(b, h, 1, d).transpose(1, 2).contiguous(), None

    AttentionInterface.register(DECODE_ATTENTION, gqa_decode)
    AttentionMaskInterface.register(DECODE_ATTENTION, sdpa_mask)


# ---------------------------------------------------------------- runners

class _StaticRunner:
    """Prefill eagerly into a StaticCache, then decode one token a step (CUDA graph, compiled, or eager)."""

    def __init__(self, model, pad, eos, max_new, temperature, top_p, decode, batch, longest_prompt, device, info):
        import torch
        from transformers import StaticCache

        self.model, self.pad, self.eos, self.max_new = model, pad, eos, int(max_new)
        self.temperature, self.top_p, self.decode, self.device, self.info = temperature, top_p, decode, device, info
        self.inner = unwrap_peft(model)
        params = inspect.signature(type(self.inner).forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.B = batch
        self.L = -(-(longest_prompt + self.max_new) // 8) * 8  # one cache length for all batches (graph reuse)
        self.cache = StaticCache(config=self.inner.config, max_cache_len=self.L)
        if any(getattr(layer, "is_sliding", False) for layer in getattr(self.cache, "layers", [])):
            self.decode = "eager"  # sliding-window layers track their length in Python: not replayable as a graph
        self.eos_t = torch.tensor(eos or [-1], device=device)
        self.ids = torch.full((self.B, 1), pad, dtype=torch.long, device=device)
        self.pos = torch.zeros((self.B, 1), dtype=torch.long, device=device)
        self.mask = torch.ones((self.B, self.L), dtype=torch.long, device=device)
        self.graph = self.graph_logits = self.compiled = None
        self.saved_attn = None

    def __enter__(self):
        cfg = self.inner.config
        if getattr(cfg, "_attn_implementation", None) == "sdpa":
            _register_decode_attention()
            self.saved_attn = cfg._attn_implementation
            cfg._attn_implementation = DECODE_ATTENTION
        return self

    def __exit__(self, *exc):
        if self.saved_attn is not None:
            self.inner.config._attn_implementation = self.saved_attn
        self.graph = self.graph_logits = self.compiled = None
        self.cache = None
        return False

    def _forward(self, ids, pos, mask, keep=1):
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=keep,
                         **{self.cache_kw: self.cache})
        return out.logits

    def _decode_eager(self):
        return self._forward(self.ids, self.pos, self.mask)

    def _prefill(self, ids, n_real):
        import torch

        self.cache.reset()
        P = ids.shape[1]
        cols = torch.arange(self.L, device=self.device)
        self.mask.copy_((cols[None, :] >= (P - n_real)[:, None]).long())
        pos = (self.mask[:, :P].cumsum(-1) - 1).masked_fill(self.mask[:, :P] == 0, 0)
        return self._forward(ids, pos, self.mask)[:, -1]

    def _capture(self):
        """Record one decode step as a CUDA graph (after a dummy prefill); falls back to eager on failure."""
        import torch

        t0 = time.perf_counter()
        try:
            dummy = torch.full((self.B, 1), self.pad, dtype=torch.long, device=self.device)
            self._prefill(dummy, torch.ones(self.B, dtype=torch.long, device=self.device))
            self.pos.fill_(1)
            if self.decode == "compile":
                self.compiled = torch.compile(self._decode_eager, mode="reduce-overhead", fullgraph=False)
                for _ in range(3):
                    self.compiled()
            else:
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    for _ in range(2):
                        self._decode_eager()
                torch.cuda.current_stream(self.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):  # other threads may use CUDA
                    logits = self._decode_eager()
                self.graph, self.graph_logits = graph, logits
            torch.cuda.synchronize(self.device)
        except Exception as e:  # an op that cannot be captured: decode eagerly, still with the static cache
            warnings.warn(f"fast_generate: {self.decode} capture failed ({type(e).__name__}: {str(e)[:200]}); "
                          "decoding eagerly", RuntimeWarning, stacklevel=3)
            self.decode, self.graph, self.compiled = "eager", None, None
            torch.cuda.synchronize(self.device)
        self.info["capture_s"] = round(time.perf_counter() - t0, 2)

    def _step(self):
        if self.graph is not None:
            self.graph.replay()
            return self.graph_logits[:, -1]
        if self.compiled is not None:
            return self.compiled()[:, -1]
        return self._decode_eager()[:, -1]

    def run(self, rows: list[list[int]], gen) -> list[list[int]]:
        import torch

        n = len(rows)
        rows = rows + [rows[0]] * (self.B - n)  # a full batch keeps every shape static
        P = max(len(r) for r in rows)
        ids = torch.tensor([[self.pad] * (P - len(r)) + r for r in rows], dtype=torch.long, device=self.device)
        n_real = torch.tensor([len(r) for r in rows], dtype=torch.long, device=self.device)
        if self.decode in ("graph", "compile") and self.graph is None and self.compiled is None:
            self._capture()
        logits = self._prefill(ids, n_real)
        tokens = torch.full((self.B, self.max_new), self.pad, dtype=torch.long, device=self.device)
        done = torch.zeros(self.B, dtype=torch.bool, device=self.device)
        for t in range(self.max_new):
            nxt = next_tokens(logits, self.temperature, self.top_p, gen)
            nxt = torch.where(done, torch.full_like(nxt, self.pad), nxt)
            tokens[:, t] = nxt
            done |= torch.isin(nxt, self.eos_t)
            if t + 1 == self.max_new or ((t + 1) % _CHECK_EVERY == 0 and bool(done[:n].all())):
                break
            self.ids.copy_(nxt.view(self.B, 1))
            self.pos.copy_((n_real + t).view(self.B, 1))
            logits = self._step()
        eos = set(self.eos)
        return [trim_at_end(r, eos) for r in tokens[:n].tolist()]
