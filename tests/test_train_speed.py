"""Speed settings change how fast LoRA trains, not what it learns: the skipped fp32 cast, the fused LoRA layers."""

import copy
import io

import pytest
import torch

from helpers.train import trainer as T
from helpers.train.config import ALL_PROJECTIONS, TrainConfig
from helpers.train.run_folder import _changed
from helpers.models import TINY_MODEL, load_model
from helpers.gpu.lora import _is_fused, fuse_lora_layers, skip_lora_input_upcast, unfuse_lora_layers


def _lora_grads(model, ids, amp: bool = True):
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads


def _lora_model(dtype: str, **lora):
    from peft import LoraConfig, get_peft_model

    base, _ = load_model(TINY_MODEL, device="cpu", dtype=dtype)
    torch.manual_seed(0)  # init_lora_weights=False: B is random too, so the LoRA term is not zero
    return get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=list(ALL_PROJECTIONS),
                                           init_lora_weights=False, **lora))


def _rel_err(got: dict, want: dict) -> float:
    return max(float((got[n].float() - want[n].float()).norm() / want[n].float().norm()) for n in want)


def test_same_loss_and_gradients_with_and_without_the_cast():
    from peft import LoraConfig, get_peft_model

    base, _ = load_model(TINY_MODEL, device="cpu", dtype="bfloat16")
    torch.manual_seed(0)
    cast = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=list(ALL_PROJECTIONS),
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
        TrainConfig(compile="layers")
    assert TrainConfig().compile == "off" and TrainConfig(compile="auto").compile == "off"  # older manifests
    cfg = TrainConfig(model=TINY_MODEL, compile="model")
    stored = {**TrainConfig(model=TINY_MODEL).to_dict(), "compile": "off"}
    assert _changed(cfg, stored) == []
    assert _changed(cfg, {**stored, "lora_rank": 4}) == ["lora_rank"]


def _tiny_trainer(speed=None, **cfg):
    from datasets import Dataset

    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                          {"role": "assistant", "content": f"Answer {i}."}]} for i in range(4)]
    config = TrainConfig(model=TINY_MODEL, run_name="speed", batch_size=2, max_steps=1, **cfg)
    train_ds, _, _ = T.prepare_data(config, Dataset.from_list(rows))
    return T.build_trainer(config, train_ds, speed=speed)


def _has_cudnn_guard(trainer) -> bool:
    from helpers.gpu.lora import NoCudnnAttention

    return any(isinstance(cb, NoCudnnAttention) for cb in trainer.callback_handler.callbacks)


def test_speed_defaults_reach_the_trainer():
    trainer = _tiny_trainer()
    on_cuda = T.train_device().startswith("cuda")
    assert trainer.args.torch_compile is False and _has_cudnn_guard(trainer) == on_cuda  # a CUDA-only switch
    assert trainer.kit_speed["fused_lora_layers"] == 0  # fused LoRA is opt-in
    assert not any(_is_fused(m) for m in trainer.model.modules())


def test_speed_options_are_plain_data_passed_to_build_trainer():
    from helpers.train.speed import TrainSpeed

    speed = TrainSpeed(fuse_lora=True, cudnn_attention=True, trainer_args={"logging_steps": 7})
    trainer = _tiny_trainer(speed, compile="model")
    assert trainer.args.torch_compile is True and trainer.args.logging_steps == 7
    assert not _has_cudnn_guard(trainer) and trainer.kit_speed["cudnn_attention"] is True
    n = 2 * len(ALL_PROJECTIONS)  # every adapted projection of both tiny layers
    assert trainer.kit_speed["fused_lora_layers"] == n == sum(_is_fused(m) for m in trainer.model.modules())


def _fused_outputs(model) -> list[str]:
    """Run-time check that the fused path ran: the grad_fn of every LoRA projection's output, per forward."""
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(type(out.grad_fn).__name__))
             for m in model.modules() if type(m).__name__ == "Linear" and hasattr(m, "lora_A")]
    return seen, hooks


def test_fused_lora_matches_peft_in_fp32():
    peft_model = _lora_model("float32")
    fused = copy.deepcopy(peft_model)
    assert fuse_lora_layers(fused) == 2 * len(ALL_PROJECTIONS)
    assert fuse_lora_layers(fused) == 0  # already fused: nothing patched twice
    ids = torch.randint(3, 200, (2, 24))
    seen, hooks = _fused_outputs(fused)
    loss_a, grads_a = _lora_grads(peft_model, ids, amp=False)
    loss_b, grads_b = _lora_grads(fused, ids, amp=False)
    assert seen == ["LoraLinearFunctionBackward"] * 2 * len(ALL_PROJECTIONS)
    assert torch.allclose(loss_a, loss_b, rtol=1e-6)
    assert grads_a.keys() == grads_b.keys() and _rel_err(grads_b, grads_a) < 1e-5


def test_fused_lora_function_gradients_are_exact():
    """float64 gradcheck with a bias, a 3-D input and a scale: the hand-written backward against finite differences."""
    from helpers.gpu.lora import LoraLinearFunction

    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    weight, bias = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    a = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(LoraLinearFunction.apply, (x, weight, bias, a, b, 0.7))
    y = LoraLinearFunction.apply(x, weight, bias, a, b, 0.7)
    assert torch.allclose(y, x @ weight.T + bias + 0.7 * (x @ a.T) @ b.T)


def test_fused_lora_under_bf16_autocast_is_as_close_to_fp32_as_peft_is():
    """In bf16 both round differently; measured against the fp32 truth, the fused layer errs about as much as PEFT."""
    peft_model = _lora_model("bfloat16")
    skip_lora_input_upcast(peft_model)
    fused, truth = copy.deepcopy(peft_model), copy.deepcopy(peft_model).float()
    fuse_lora_layers(fused)
    ids = torch.randint(3, 200, (4, 48))
    seen, _ = _fused_outputs(fused)
    loss_t, grads_t = _lora_grads(truth, ids, amp=False)
    loss_p, grads_p = _lora_grads(peft_model, ids)
    loss_f, grads_f = _lora_grads(fused, ids)
    assert set(seen) == {"LoraLinearFunctionBackward"}
    assert abs(loss_f - loss_t) < 0.02 and abs(loss_p - loss_t) < 0.02  # bf16 rounding of a loss near 6.5
    peft_err, fused_err = _rel_err(grads_p, grads_t), _rel_err(grads_f, grads_t)
    assert peft_err < 0.1 and fused_err < 2 * peft_err, (peft_err, fused_err)


def test_fused_lora_leaves_other_cases_to_peft():
    """Dropout, a LoRA bias, mixed dtypes without autocast and a disabled adapter get PEFT's forward: equal outputs."""
    ids = torch.randint(3, 200, (2, 16))
    for lora in ({"lora_dropout": 0.1}, {"lora_bias": True}):
        model = _lora_model("float32", **lora)
        assert fuse_lora_layers(model) == 0, lora

    mixed = _lora_model("bfloat16").eval()  # bf16 base, fp32 LoRA, no autocast: PEFT runs LoRA in fp32
    fused_mixed = copy.deepcopy(mixed)
    fuse_lora_layers(fused_mixed)
    with torch.no_grad():
        assert torch.equal(fused_mixed(input_ids=ids).logits, mixed(input_ids=ids).logits)

    model = _lora_model("float32").eval()
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
        fuse_lora_layers(model)
        with model.disable_adapter():
            assert torch.equal(model(input_ids=ids).logits, base)
        fused_out = model(input_ids=ids).logits
        assert torch.allclose(fused_out, plain, atol=1e-5) and not torch.equal(plain, base)
        buffer = io.BytesIO()  # a whole-model pickle of a fused model loads again
        torch.save(model, buffer)
        buffer.seek(0)
        assert torch.equal(torch.load(buffer, weights_only=False)(input_ids=ids).logits, fused_out)
        assert unfuse_lora_layers(model) == 2 * len(ALL_PROJECTIONS)
        assert torch.equal(model(input_ids=ids).logits, plain)


def test_no_cudnn_attention_holds_only_while_training():
    from helpers.gpu.lora import NoCudnnAttention

    cb, flag = NoCudnnAttention(), torch.backends.cuda.cudnn_sdp_enabled
    before = flag()
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        cb.on_train_begin(None, None, None)
        assert not flag()
        cb.on_train_end(None, None, None)
        assert flag()
        cb.on_train_end(None, None, None)  # a second end (no begin) changes nothing
        assert flag()
        cb.on_train_begin(None, None, None)
        cb.restore()  # what helpers.train.train calls when training raised
        assert flag()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)
