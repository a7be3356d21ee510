"""Batched sampling of answers from a base model or a finetuned run, one signature over three samplers.

sampling.py generate, resolve_source, load_source, side_by_side, save_generations (the two CSVs)
fast.py     static-cache CUDA-graph sampler; vllm.py the vLLM engine
"""

from helpers.generate.sampling import generate, load_source, resolve_source, save_generations, side_by_side

__all__ = ["generate", "load_source", "resolve_source", "save_generations", "side_by_side"]
