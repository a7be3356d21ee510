"""vLLM behind `helpers.generate.generate(sampler="vllm")`: the same prompt ids, pure sampling, LoRA as a request.

Used only where the `vllm` package and a CUDA GPU are present (`pip install vllm` on a GPU machine; it is not a kit
dependency). One engine per process loads the base model with LoRA enabled; an adapter is applied per request and
the base model is a request without one, so base-model and finetuned answers come from the same engine.
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts
DEFAULT_MAX_LORA_RANK = 64  # the engine's LoRA slot: adapters up to this rank need no new engine
_ENGINES: dict = {}  # (model path, max_lora_rank) -> the one engine
_LORA_IDS: dict = {}  # adapter folder -> its LoRARequest id


def available() -> bool:
    """True when vllm is installed and a CUDA GPU is visible."""
    if find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def adapter_rank(adapter: str | Path) -> int:
    """The LoRA rank r of an adapter folder (from adapter_config.json)."""
    path = Path(adapter) / "adapter_config.json"
    try:
        return int(json.loads(path.read_text())["r"])
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the LoRA rank 'r' ({e}); is this a PEFT LoRA adapter folder?") from e


def engine(model_path: str, seed: int = 0, max_lora_rank: int = DEFAULT_MAX_LORA_RANK,
           gpu_memory_utilization: float = 0.85):
    """The process's one vllm.LLM, LoRA enabled (the base model is "no adapter"): built once, reused by later calls.

    A call for another model, or for an adapter above the engine's max_lora_rank, replaces it (two engines at
    gpu_memory_utilization=0.85 cannot share a card)."""
    from vllm import LLM

    for key in [k for k in _ENGINES if k[0] != model_path or k[1] < max_lora_rank]:
        del _ENGINES[key]
        _free_gpu_memory()
    if not _ENGINES:
        _ENGINES[(model_path, max_lora_rank)] = LLM(model=model_path, seed=seed,
                                                    gpu_memory_utilization=gpu_memory_utilization,
                                                    enable_lora=True, max_loras=1, max_lora_rank=max_lora_rank)
    return next(iter(_ENGINES.values()))


def _free_gpu_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sample(model_path: str, adapter: str | None, prompts: list[list[int]], *, temperature: float, top_p: float,
           max_new_tokens: int, seed: int, eos_token_id: list[int], progress: bool = True) -> list[list[int]]:
    """New token ids for each prompt (ids of the chat prompt), in order; top-k is left at vLLM's default (off)."""
    from vllm import SamplingParams

    rank, lora = DEFAULT_MAX_LORA_RANK, None
    if adapter:
        from vllm.lora.request import LoRARequest

        r = adapter_rank(adapter)
        rank = next((x for x in LORA_RANKS if x >= max(r, DEFAULT_MAX_LORA_RANK)), None)
        if rank is None:
            raise ValueError(f"adapter {adapter}: rank {r} is above vLLM's largest max_lora_rank ({LORA_RANKS[-1]})")
        path = str(Path(adapter).resolve())
        lora_id = _LORA_IDS.setdefault(path, len(_LORA_IDS) + 1)  # vLLM caches an adapter by its id
        lora = LoRARequest(f"kit-adapter-{lora_id}", lora_id, path)
    llm = engine(model_path, seed=seed, max_lora_rank=rank)
    greedy = float(temperature) == 0
    params = [SamplingParams(temperature=0.0 if greedy else float(temperature), top_p=1.0 if greedy else float(top_p),
                             max_tokens=int(max_new_tokens), seed=int(seed) * 1_000_003 + i,
                             stop_token_ids=list(eos_token_id))
              for i in range(len(prompts))]  # a seed per answer: samples of one question differ, runs repeat
    outs = llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, lora_request=lora,
                        use_tqdm=progress)
    return [list(o.outputs[0].token_ids) for o in outs]
