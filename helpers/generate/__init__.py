"""Batched sampling of answers from a base model or a finetuned run, one signature over three samplers.

sampling.py generate, resolve_source, load_source, save_generations (the two CSVs), side_by_side, compare_answers
hf.py       batched transformers generate (the "hf" sampler and the local judge)
fast.py     static-cache CUDA-graph sampler; vllm.py the vLLM engine
"""

from helpers.generate.sampling import (compare_answers, generate, load_source, resolve_source, save_generations,
                                      side_by_side)

__all__ = ["compare_answers", "generate", "load_source", "resolve_source", "save_generations", "side_by_side"]
