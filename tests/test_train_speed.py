"""Skipping PEFT's fp32 cast of the LoRA input under autocast changes nothing that is computed, only copies."""

import copy

import pytest
import torch

from helpers import train as T
from helpers.models import TINY_MODEL, load_model
from helpers.train_speed import skip_lora_input_upcast


def _lora_grads(model, ids):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads


def test_same_loss_and_gradients_with_and_without_the_cast():
    from peft import LoraConfig, get_peft_model

    base, _ = load_model(TINY_MODEL, device="cpu", dtype="bfloat16")
    torch.manual_seed(0)
    cast = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=list(T.ALL_PROJECTIONS),
                                           init_lora_weights=False))
    assert next(p for n, p in cast.named_parameters() if "lora_A" in n).dtype == torch.float32
    plain = copy.deepcopy(cast)
    n_layers = sum(1 for m in plain.modules() if hasattr(m, "lora_A") and hasattr(m, "cast_input_dtype_enabled"))
    assert skip_lora_input_upcast(plain) == n_layers > 0
    assert not any(getattr(m, "cast_input_dtype_enabled", False) for m in plain.modules() if hasattr(m, "lora_A"))
    ids = torch.randint(3, 200, (2, 24))
    loss_a, grads_a = _lora_grads(cast, ids)
    loss_b, grads_b = _lora_grads(plain, ids)
    assert torch.equal(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == 2 * n_layers
    for name in grads_a:
        assert torch.equal(grads_a[name], grads_b[name]), name


def test_compile_is_validated_and_does_not_block_a_resume():
    with pytest.raises(ValueError, match="TrainConfig.compile"):
        T.TrainConfig(compile="layers")
    cfg = T.TrainConfig(model=TINY_MODEL, compile="model")
    stored = {**T.TrainConfig(model=TINY_MODEL).to_dict(), "compile": "off"}
    assert T._changed(cfg, stored) == []
    assert T._changed(cfg, {**stored, "lora_rank": 4}) == ["lora_rank"]
