"""bitsandbytes stays out of a CPU session: no import, no red CPU-kernel warning; 4-bit still says what to do."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from helpers.bnb_guard import torch_cuda_version

REPO = Path(__file__).resolve().parent.parent

CPU_SESSION = """
import sys
from helpers.generate import generate
from helpers.models import TINY_MODEL, load_model
from helpers.train import TrainConfig, train
import peft
model, tok = load_model(TINY_MODEL, device="cpu")
lora = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj"]))
generate((lora, tok), ["hello"], samples_per_question=1, max_new_tokens=4, progress=False)
try:
    train(TrainConfig(model=TINY_MODEL, load_in_4bit=True, run_name="q4"))
except RuntimeError as e:
    print("4-bit:", e)
print("bitsandbytes imported:", sys.modules.get("bitsandbytes") is not None)
"""


def test_torch_cuda_version_is_read_without_importing_torch():
    assert torch_cuda_version() == torch.version.cuda


def test_a_cpu_session_never_imports_bitsandbytes(runs_tmp):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "EM_RUNS_DIR": str(runs_tmp)}
    out = subprocess.run([sys.executable, "-c", CPU_SESSION], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "gemm_4bit_forward" not in out.stderr + out.stdout
    assert "4-bit: load_in_4bit=True needs a CUDA GPU" in out.stdout
    if torch.version.cuda is None:  # a CPU build of torch cannot run 4-bit: bitsandbytes is not even imported
        assert "bitsandbytes imported: False" in out.stdout
