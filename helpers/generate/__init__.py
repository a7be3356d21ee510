"""Batched sampling of answers from a base model or a finetuned run, one signature over three samplers.

sampling.py generate, save_generations (the two CSVs), side_by_side, compare_answers
sources.py  resolve_model, load_for_sampling: a model name, an adapter folder or a run -> what answers come from
hf.py       batched transformers generate (the "hf" sampler and the local judge)
The GPU samplers ("fast": static cache and CUDA graphs, "vllm") live in helpers.gpu, loaded only when chosen.
"""

from helpers.generate.sampling import compare_answers, generate, save_generations, side_by_side
from helpers.generate.sources import load_for_sampling, resolve_model

__all__ = ["compare_answers", "generate", "load_for_sampling", "resolve_model", "save_generations", "side_by_side"]
