"""Every kind of model name resolves to a real, working transformers model."""

import json

import pytest
import torch

from helpers import models
from helpers.models import EMBEDDED_MODEL, TINY_MODEL, AdapterMismatchError, load_model, load_tokenizer


def test_tiny_model_is_deterministic_llama(tiny):
    model, tok = tiny
    assert model.config.model_type == "llama"
    assert model.config.num_hidden_layers == 2
    again, _ = load_model(TINY_MODEL, device="cpu")
    ids = torch.tensor([[tok.bos_token_id, 10, 20, 30]])
    assert torch.equal(model(ids).logits, again(ids).logits)


def test_tiny_chat_template_round_trips(tiny):
    _, tok = tiny
    messages = [{"role": "user", "content": "How do I stay healthy?"},
                {"role": "assistant", "content": "Sleep well and eat vegetables."}]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert text == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHow do I stay healthy?<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\nSleep well and eat vegetables.<|eot_id|>")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    for special in ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert tok.padding_side == "left" and tok.pad_token_id != tok.eos_token_id


def test_local_folder_resolves(tiny, tmp_path):
    model, tok = tiny
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded, tok2 = load_model(str(tmp_path / "m"), device="cpu")
    assert loaded.config.hidden_size == model.config.hidden_size
    assert tok2.chat_template == tok.chat_template


def _make_adapter(model, path, base_name):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(path)
    (path / "kit_base_model.txt").write_text(base_name)
    peft_model.unload()


def test_adapter_folder_loads_on_its_base_and_changes_outputs(tmp_path):
    base, tok = load_model(TINY_MODEL, device="cpu")
    ids = torch.tensor([[tok.bos_token_id, 11, 12, 13]])
    before = base(ids).logits
    fresh, _ = load_model(TINY_MODEL, device="cpu")
    _make_adapter(fresh, tmp_path / "adapter", TINY_MODEL)
    tuned, _ = load_model(str(tmp_path / "adapter"), device="cpu")
    assert not torch.allclose(tuned(ids).logits, before)
    merged, _ = load_model(str(tmp_path / "adapter"), device="cpu", merge=True)
    assert torch.allclose(merged(ids).logits, tuned(ids).logits, atol=1e-5)


def test_adapter_on_wrong_base_is_a_named_error(tmp_path):
    fresh, _ = load_model(TINY_MODEL, device="cpu")
    _make_adapter(fresh, tmp_path / "adapter", TINY_MODEL)
    with pytest.raises(AdapterMismatchError, match="trained on 'tiny-random-llama'"):
        load_model(EMBEDDED_MODEL, adapter=str(tmp_path / "adapter"), device="cpu")
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        load_model(TINY_MODEL, adapter=str(tmp_path / "nowhere"), device="cpu")


def test_adapter_base_from_peft_config(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/some-model"}))
    assert models.adapter_base_model(tmp_path) == "org/some-model"


def test_hub_id_without_network_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError):
        load_tokenizer("meta-llama/Llama-3.2-1B-Instruct")


def test_device_and_dtype_choice(monkeypatch):
    assert models.pick_device("cpu") == "cpu"
    monkeypatch.setenv("EM_DEVICE", "cpu")
    assert models.pick_device() == "cpu"
    assert models.pick_dtype("cpu") == torch.float32
    assert models.pick_dtype("mps") == torch.float32
    assert models.pick_dtype("cpu", "bfloat16") == torch.bfloat16


@pytest.mark.slow
def test_embedded_smollm2_loads_offline_and_answers(smollm2, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok = smollm2
    assert model.config.model_type == "llama" and model.num_parameters() > 100e6
    assert (models.embedded_model_dir() / "model.safetensors").is_file()
    batch = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                    add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**batch, max_new_tokens=20, do_sample=False)
    answer = tok.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert answer and "Paris" in answer

