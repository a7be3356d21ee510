"""What answers come from: a model name, an adapter folder or a run (`resolve_model`), loaded once (`load_for_sampling`)."""

from __future__ import annotations

import copy
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from helpers.models import (EMBEDDED_MODEL, TINY_MODEL, _canonical, adapter_base_model, check_adapter_matches,
                            is_adapter_dir, load_model)
from helpers.runs import run_dir, runs_root


class AdapterNotFoundError(FileNotFoundError):
    """No adapter where one was expected (a run that was not trained yet, a wrong folder)."""


@dataclass(frozen=True)

class ModelRef:
    """What answers come from: a base `model` name and an optional `adapter` folder."""

    model: str
    adapter: str | None = None

    @property
    def label(self) -> str:
        """The adapter as a short path for tables (`runs/<run>/adapter`), "" for a base model."""
        return display_path(self.adapter) if self.adapter else ""


def display_path(path: str | os.PathLike) -> str:
    """A path as `runs/<run>/...` or relative to the working folder, so tables carry no home folders."""
    p = Path(path).resolve()
    for root, prefix in ((runs_root().resolve(), "runs"), (Path.cwd().resolve(), "")):
        try:
            rel = p.relative_to(root)
        except ValueError:
            continue
        return str(Path(prefix) / rel) if prefix else str(rel)
    return str(path)


def find_adapter(adapter_or_run: str | os.PathLike) -> Path:
    """The adapter folder of an adapter path, a run folder path, or a run name (`runs/<run>/adapter`)."""
    p = Path(adapter_or_run)
    candidates = [p, p / "adapter"]
    try:
        candidates.append(run_dir(str(adapter_or_run), create=False) / "adapter")
    except ValueError:
        pass
    for c in candidates:
        if is_adapter_dir(c):
            return c
    raise AdapterNotFoundError(
        f"no adapter found for {str(adapter_or_run)!r}: expected adapter_config.json in that folder or in "
        f"runs/{p.name}/adapter. Train the run first (notebook 02), or pass the path of an adapter folder."
    )


def resolve_model(model_or_run, adapter=None) -> ModelRef:
    """Work out the base model and adapter from a model name, hub id, folder, adapter folder or run name."""
    if adapter:
        found = find_adapter(adapter)
        check_adapter_matches(found, str(model_or_run))
        return ModelRef(str(model_or_run), str(found))
    name = str(model_or_run)
    if not name.strip():
        raise ValueError("model_or_run is empty: pass a model name (e.g. 'smollm2-135m') or a run name")
    p = Path(name)
    if name in (EMBEDDED_MODEL, TINY_MODEL):
        return ModelRef(name)
    if p.is_dir():
        if is_adapter_dir(p) or is_adapter_dir(p / "adapter"):
            found = find_adapter(p)
            return ModelRef(adapter_base_model(found), str(found))
        if (p / "config.json").is_file():
            return ModelRef(name)
        raise AdapterNotFoundError(f"folder {name!r} holds neither an adapter (adapter_config.json) nor a model (config.json)")
    if os.sep not in name and "/" not in name:
        try:
            run = run_dir(name, create=False)
        except ValueError:
            run = None
        if run is not None and run.is_dir():
            found = find_adapter(name)
            return ModelRef(adapter_base_model(found), str(found))
    return ModelRef(name)


def load_for_sampling(model_or_run, adapter=None, device: str | None = None, dtype=None):
    """`(model, tokenizer, ref)` ready for sampling, with any LoRA adapter merged into the weights."""
    if isinstance(model_or_run, (tuple, list)):
        return _prepare_loaded(model_or_run, adapter)
    ref = resolve_model(model_or_run, adapter)
    try:
        with _quiet_library_warnings():
            model, tok = load_model(ref.model, device=device, dtype=dtype, adapter=ref.adapter, merge=True)
    except OSError as e:
        if ref.adapter is None and "/" not in ref.model and not Path(ref.model).exists():
            raise AdapterNotFoundError(
                f"{ref.model!r} is neither a run with an adapter (runs/{ref.model}/adapter) nor a model "
                f"this machine can load: train the run first (notebook 02) or check the name ({e.__class__.__name__})"
            ) from e
        raise
    model.kit_model_ref = ref
    return model, tok, ref


def _prepare_loaded(pair, adapter=None):
    model, tok = pair
    ref = getattr(model, "kit_model_ref", None) or ModelRef(_model_label(model))
    if adapter:
        from peft import PeftModel

        found = find_adapter(adapter)
        check_adapter_matches(found, ref.model)
        model = PeftModel.from_pretrained(copy.deepcopy(model), str(found))  # leave the caller's model untouched
        ref = ModelRef(ref.model, str(found))
    if hasattr(model, "merge_and_unload") and not getattr(model, "is_loaded_in_4bit", False):
        if model is pair[0]:
            model = copy.deepcopy(model)  # merging rewrites the weights; the caller keeps the PeftModel
        with _quiet_library_warnings():
            model = model.merge_and_unload()
        if ref.adapter is None:
            ref = ModelRef(ref.model, "in-memory")
    model.kit_model_ref = ref
    return model, tok, ref


@contextmanager

def _quiet_library_warnings():
    """Hide the libraries' deprecation notices while loading and merging (they print install paths, not news)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _model_label(model) -> str:
    name = getattr(model, "name_or_path", "") or getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    return _canonical(str(name)) if name else "unknown"
