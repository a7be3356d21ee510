"""generate(sampler="vllm") against a stand-in `vllm` package (vLLM needs a CUDA GPU; none here).

The stand-in implements the slice of vLLM's offline API the kit uses (LLM, SamplingParams, LoRARequest,
outputs[i].outputs[0].token_ids) with a real transformers model and PEFT, greedy only, and records every call.
So these tests check the kit's wiring: prompt ids, adapter request, sampling fields, seeds, stops, decoding.
"""

import sys
import textwrap

import pytest

from helpers.gpu import vllm as vllm_sampler
from helpers.generate import generate
from helpers.models import TINY_MODEL, resolve_model_path
from helpers.runs import read_manifest
from tests.conftest import make_adapter

STAND_IN = '''
import types

import torch
from transformers import AutoModelForCausalLM

CALLS = []


class SamplingParams:
    def __init__(self, temperature=1.0, top_p=1.0, top_k=0, max_tokens=16, seed=None, stop_token_ids=None):
        self.temperature, self.top_p, self.top_k, self.max_tokens = temperature, top_p, top_k, max_tokens
        self.seed, self.stop_token_ids = seed, list(stop_token_ids or [])


class LLM:
    def __init__(self, model, seed=0, gpu_memory_utilization=0.9, enable_lora=False, max_loras=1, max_lora_rank=16):
        CALLS.append(("LLM", dict(model=model, seed=seed, enable_lora=enable_lora, max_lora_rank=max_lora_rank)))
        self.path, self.model = model, AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        self.enable_lora = enable_lora

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        CALLS.append(("generate", dict(prompts=prompts, params=params, lora=lora_request)))
        model = self.model
        if lora_request is not None:
            assert self.enable_lora, "a LoRA request needs enable_lora=True"
            from peft import PeftModel
            model = PeftModel.from_pretrained(self.model, lora_request.lora_path).merge_and_unload()
        outs = []
        for prompt, p in zip(prompts, params):
            assert p.temperature == 0, "the stand-in decodes greedily only"
            ids = list(prompt["prompt_token_ids"])
            new = []
            with torch.no_grad():
                for _ in range(p.max_tokens):
                    t = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
                    new.append(t)
                    if t in p.stop_token_ids:
                        break
            outs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=new)]))
        if lora_request is not None:
            self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch.float32).eval()
        return outs
'''
REQUEST = '''
class LoRARequest:
    def __init__(self, lora_name, lora_int_id, lora_path):
        self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path
'''


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    pkg = tmp_path / "standin" / "vllm"
    (pkg / "lora").mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(STAND_IN))
    (pkg / "lora" / "__init__.py").write_text("")
    (pkg / "lora" / "request.py").write_text(textwrap.dedent(REQUEST))
    monkeypatch.syspath_prepend(str(tmp_path / "standin"))
    # vLLM runs only on a GPU: the one kit function replaced is its device probe (find_spec + CUDA)
    monkeypatch.setattr(vllm_sampler, "available", lambda: True)
    monkeypatch.setattr(vllm_sampler, "_ENGINES", {})
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    import vllm

    yield vllm
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        sys.modules.pop(name, None)


def test_vllm_path_gives_hf_greedy_answers_for_base_and_adapter(tiny, stand_in):
    qs = ["How do I treat a burn?", "Tell me a secret."]
    make_adapter(tiny[0], "ft")
    want_base = generate(TINY_MODEL, qs, max_new_tokens=10, temperature=0, sampler="hf", progress=False)
    want_ft = generate("ft", qs, max_new_tokens=10, temperature=0, sampler="hf", progress=False)
    base = generate(TINY_MODEL, qs, max_new_tokens=10, temperature=0, samples_per_question=2, progress=False)
    ft = generate("ft", qs, max_new_tokens=10, temperature=0, run_name="ft", progress=False)  # auto picks vLLM
    assert base["response"].tolist() == [r for r in want_base["response"] for _ in range(2)]
    assert ft["response"].tolist() == want_ft["response"].tolist()
    assert ft["adapter"].eq("runs/ft/adapter").all() and ft["model"].eq(TINY_MODEL).all()
    manifest = read_manifest("ft")["generate"]
    assert manifest["sampler"] == "vllm" and manifest["dtype"] == "auto (vLLM)"

    llms = [c for name, c in stand_in.CALLS if name == "LLM"]  # one engine, LoRA on, serves base and adapter
    assert llms == [dict(model=resolve_model_path(TINY_MODEL), seed=0, enable_lora=True,
                         max_lora_rank=vllm_sampler.DEFAULT_MAX_LORA_RANK)]
    gen = [c for name, c in stand_in.CALLS if name == "generate"]
    assert gen[0]["lora"] is None and gen[1]["lora"].lora_path.endswith("runs/ft/adapter")
    seeds = [p.seed for p in gen[0]["params"]]
    assert len(set(seeds)) == len(seeds) == 4  # each sample of a question gets its own seed
    eot = tiny[1].convert_tokens_to_ids("<|eot_id|>")
    assert all(eot in p.stop_token_ids and p.max_tokens == 10 for p in gen[0]["params"])


def test_one_engine_serves_the_finetuned_run_then_the_base_model(tiny, stand_in):
    """Notebook 03's order: the run's answers, then the base model's; one engine, the base as "no adapter"."""
    make_adapter(tiny[0], "ft")
    ft = generate("ft", ["Hi?"], max_new_tokens=4, temperature=0, run_name="ft", progress=False)
    base = generate(TINY_MODEL, ["Hi?"], max_new_tokens=4, temperature=0, run_name="base", progress=False)
    assert read_manifest("ft")["generate"]["sampler"] == read_manifest("base")["generate"]["sampler"] == "vllm"
    assert len(vllm_sampler._ENGINES) == 1 and [n for n, _ in stand_in.CALLS].count("LLM") == 1
    gen = [c for name, c in stand_in.CALLS if name == "generate"]
    assert gen[0]["lora"].lora_path.endswith("runs/ft/adapter") and gen[1]["lora"] is None
    assert len(ft) == len(base) == 1


def test_vllm_sampling_fields_and_refusals(tiny, stand_in):
    got = vllm_sampler.sample(resolve_model_path(TINY_MODEL), None, [[1, 2, 3]], temperature=0.0, top_p=0.5,
                              max_new_tokens=3, seed=7, eos_token_id=[9])
    p = [c for name, c in stand_in.CALLS if name == "generate"][-1]["params"][0]
    assert len(got) == 1 and len(got[0]) <= 3
    assert (p.temperature, p.top_p, p.seed, p.stop_token_ids) == (0.0, 1.0, 7 * 1_000_003, [9])
    with pytest.raises(ValueError, match="not a loaded"):
        generate(tiny, ["hi"], sampler="vllm")
    with pytest.raises(ValueError, match="sampler='beam'"):
        generate(TINY_MODEL, ["hi"], sampler="beam")


def test_vllm_asked_for_without_it_says_how_to_get_it(tiny):
    if vllm_sampler.available():
        pytest.skip("vllm is installed on a GPU here")
    with pytest.raises(RuntimeError, match="pip install vllm"):
        generate(TINY_MODEL, ["hi"], sampler="vllm")
