"""What answers come from: a model name, an adapter folder or a run (`resolve_source`), loaded once (`load_source`)."""

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

class Source:
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


def resolve_source(model_or_run, adapter=None) -> Source:
    """Work out the base model and adapter from a model name, hub id, folder, adapter folder or run name."""
    if adapter:
        found = find_adapter(adapter)
        check_adapter_matches(found, str(model_or_run))
        return Source(str(model_or_run), str(found))
    name = str(model_or_run)
    if not name.strip():
        raise ValueError("model_or_run is empty: pass a model name (e.g. 'smollm2-135m') or a run name")
    p = Path(name)
    if name in (EMBEDDED_MODEL, TINY_MODEL):
        return Source(name)
    if p.is_dir():
        if is_adapter_dir(p) or is_adapter_dir(p / "adapter"):
            found = find_adapter(p)
            return Source(adapter_base_model(found), str(found))
        if (p / "config.json").is_file():
            return Source(name)
        raise AdapterNotFoundError(f"folder {name!r} holds neither an adapter (adapter_config.json) nor a model (config.json)")
    if os.sep not in name and "/" not in name:
        try:
            run = run_dir(name, create=False)
        except ValueError:
            run = None
        if run is not None and run.is_dir():
            found = find_adapter(name)
            return Source(adapter_base_model(found), str(found))
    return Source(name)


def load_source(model_or_run, adapter=None, device: str | None = None, dtype=None):
    """`(model, tokenizer, source)` ready for sampling, with any LoRA adapter merged into the weights."""
    if isinstance(model_or_run, (tuple, list)):
        return _prepare_loaded(model_or_run, adapter)
    source = resolve_source(model_or_run, adapter)
    try:
        with _quiet_library_warnings():
            model, tok = load_model(source.model, device=device, dtype=dtype, adapter=source.adapter, merge=True)
    except OSError as e:
        if source.adapter is None and "/" not in source.model and not Path(source.model).exists():
            raise AdapterNotFoundError(
                f"{source.model!r} is neither a run with an adapter (runs/{source.model}/adapter) nor a model "
                f"this machine can load: train the run first (notebook 02) or check the name ({e.__class__.__name__})"
            ) from e
        raise
    model.kit_source = source
    return model, tok, source


def _prepare_loaded(pair, adapter=None):
    model, tok = pair
    source = getattr(model, "kit_source", None) or Source(_model_label(model))
    if adapter:
        from peft import PeftModel

        found = find_adapter(adapter)
        check_adapter_matches(found, source.model)
        model = PeftModel.from_pretrained(copy.deepcopy(model), str(found))  # leave the caller's model untouched
        source = Source(source.model, str(found))
    if hasattr(model, "merge_and_unload") and not getattr(model, "is_loaded_in_4bit", False):
        if model is pair[0]:
            model = copy.deepcopy(model)  # merging rewrites the weights; the caller keeps the PeftModel
        with _quiet_library_warnings():
            model = model.merge_and_unload()
        if source.adapter is None:
            source = Source(source.model, "in-memory")
    model.kit_source = source
    return model, tok, source


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
