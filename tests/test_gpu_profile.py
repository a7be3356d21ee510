"""helpers.gpu.plan: the GPU defaults as plain decisions of card memory/capability and model shape."""

import dataclasses

import pytest

from helpers.gpu import plan as gp

LLAMA = gp.LLAMA_32_1B


def test_llama_1b_shape_from_config_matches_the_real_parameter_count():
    from transformers import LlamaConfig

    cfg = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                      num_attention_heads=32, num_key_value_heads=8, head_dim=64, tie_word_embeddings=True)
    shape = gp.ModelShape.from_config(cfg)
    assert shape.n_params == 1_235_814_400 == LLAMA.n_params
    assert shape.kv_bytes_per_token() == 2 * 16 * 8 * 64 * 2  # 32 KiB of K and V per token


def test_t4_profile_fp16_no_checkpointing_and_fits_15_gib():
    plan = gp.plan_training(gp.T4, LLAMA, batch_size=16, max_length=512, liger=False)
    assert plan.precision == "fp16" and not gp.T4.bf16
    assert not plan.gradient_checkpointing
    assert plan.micro_batch * plan.grad_accum == 16 and plan.micro_batch < 16
    assert plan.est_peak_gib < 15
    assert gp.generation_batch_size(gp.T4, LLAMA, prompt_len=64, max_new_tokens=200) == 256


def test_t4_with_liger_takes_bigger_micro_batches():
    without = gp.plan_training(gp.T4, LLAMA, 16, liger=False)
    with_liger = gp.plan_training(gp.T4, LLAMA, 16, liger=True)
    assert with_liger.liger and not without.liger
    assert with_liger.micro_batch > without.micro_batch


def test_h100_bf16_whole_batch_in_one_micro_batch():
    plan = gp.plan_training(gp.H100, LLAMA, batch_size=32, max_length=512, liger=True)
    assert plan.precision == "bf16" and (plan.micro_batch, plan.grad_accum) == (32, 1)
    assert not plan.gradient_checkpointing and plan.group_by_length and not plan.padding_free
    assert gp.generation_batch_size(gp.H100, LLAMA) == gp.GEN_BATCH_CAP_LARGE


@pytest.mark.parametrize("info", [gp.T4, gp.L4, gp.A100_40, gp.H100])
@pytest.mark.parametrize("batch,accum", [(1, 1), (8, 1), (16, 1), (2, 8), (48, 1), (64, 2), (7, 3)])
def test_conversations_per_step_never_change(info, batch, accum):
    plan = gp.plan_training(info, LLAMA, batch, accum, max_length=1024, liger=False)
    assert plan.micro_batch * plan.grad_accum == batch * accum


def test_checkpointing_only_when_one_sequence_does_not_fit():
    small = gp.GpuInfo("6 GiB card", total_gib=6.0, free_gib=6.0, capability=(8, 6))
    assert gp.plan_training(small, LLAMA, 8, max_length=4096, liger=False).gradient_checkpointing
    assert not gp.plan_training(small, LLAMA, 8, max_length=256, liger=False).gradient_checkpointing


def test_free_memory_limits_the_plan():
    busy = dataclasses.replace(gp.H100, free_gib=20.0)
    assert gp.plan_training(busy, LLAMA, 32, liger=False).micro_batch < 32


def test_4bit_keeps_checkpointing_and_skips_liger():
    plan = gp.plan_training(gp.T4, LLAMA, 16, load_in_4bit=True, liger=True)
    assert plan.gradient_checkpointing and not plan.liger


def test_padding_free_only_with_flash_attention():
    assert gp.plan_training(gp.H100, LLAMA, 32, flash_attention=True, liger=False).padding_free
    assert not gp.plan_training(gp.H100, LLAMA, 32, liger=False).padding_free


def test_generation_batch_shrinks_with_context_and_prompt_count():
    long_answers = gp.generation_batch_size(gp.L4, LLAMA, prompt_len=600, max_new_tokens=1500)
    assert 1 <= long_answers < gp.generation_batch_size(gp.L4, LLAMA, prompt_len=64, max_new_tokens=200)
    assert gp.generation_batch_size(gp.H100, LLAMA, n_prompts=10) == 10


def test_kwargs_are_sft_config_fields_and_build_a_config(tmp_path):
    from trl import SFTConfig

    plan = gp.plan_training(gp.T4, LLAMA, 16, liger=False)
    kwargs = gp.plan_to_kwargs(plan)
    names = {f.name for f in dataclasses.fields(SFTConfig)}
    assert set(kwargs) <= names
    assert kwargs["fp16"] and not kwargs["bf16"] and kwargs["gradient_checkpointing"] is False
    cfg = SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **{**kwargs, "fp16": False})
    assert cfg.per_device_train_batch_size == plan.micro_batch
    assert cfg.gradient_accumulation_steps == plan.grad_accum
    grouping = gp.grouping_kwargs(True)
    assert all(getattr(cfg, k) == v for k, v in grouping.items())


def test_precision_follows_the_loaded_weights():
    import torch

    plan = gp.plan_training(gp.H100, LLAMA, 32, liger=False)
    assert gp.plan_to_kwargs(plan, torch.float16)["fp16"] is True
    assert gp.plan_to_kwargs(plan, torch.bfloat16)["bf16"] is True


def test_plan_for_model_off_cuda_and_for_a_given_card(tiny):
    model, _ = tiny
    assert gp.plan_for_model(model, "cpu", batch_size=8) is None
    kw = gp.plan_to_kwargs(gp.plan_for_model(model, "cpu", batch_size=8, grad_accum=2, info=gp.T4))
    assert kw["per_device_train_batch_size"] * kw["gradient_accumulation_steps"] == 16
    assert kw["fp16"] is True and kw["gradient_checkpointing"] is False


def test_liger_on_wherever_it_runs():
    roomy = gp.plan_training(gp.H100, LLAMA, batch_size=32, max_length=512, liger=True)
    assert roomy.liger and roomy.micro_batch == 32 and gp.plan_to_kwargs(roomy)["use_liger_kernel"] is True
    missing = gp.plan_training(gp.H100, LLAMA, batch_size=32, max_length=512, liger=False)
    assert not missing.liger and any("pip install liger-kernel" in r for r in missing.reasons)
