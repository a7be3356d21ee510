"""bitsandbytes only where 4-bit can run: peft imports it whenever it is installed, and on CPU it prints a
red "Failed to load CPU gemm_4bit_forward ..." that students read as a broken install."""

from __future__ import annotations

import ast
import importlib.util
import logging
import sys
from pathlib import Path

CPU_KERNEL_WARNING = "Failed to load CPU gemm_4bit_forward"


def torch_cuda_version() -> str | None:
    """torch's CUDA version (None for a CPU build), read from torch/version.py without importing torch."""
    if "torch" in sys.modules:
        return sys.modules["torch"].version.cuda
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return None
    tree = ast.parse(Path(spec.origin).with_name("version.py").read_text())
    for node in tree.body:
        target = getattr(node, "target", None) or (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "cuda" and node.value is not None:
            return ast.literal_eval(node.value)
    return None


def hide_bitsandbytes_without_cuda() -> None:
    """With a torch built without CUDA (no 4-bit possible), make bitsandbytes invisible to peft and transformers;
    elsewhere drop only its CPU-kernel warning."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
        lambda record: not str(record.msg).startswith(CPU_KERNEL_WARNING))
    if "bitsandbytes" in sys.modules:
        return
    try:
        cuda = torch_cuda_version()
    except (OSError, SyntaxError, ValueError):
        return
    if cuda is None:
        sys.modules["bitsandbytes"] = None  # find_spec() says "not installed"; `import bitsandbytes` fails
