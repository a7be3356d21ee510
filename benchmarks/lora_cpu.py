"""Training-step speed of the fused LoRA layer against PEFT's own forward, on CPU (the embedded 135M model).

One model, LoRA r16 on all 7 projections, copied once: one copy keeps PEFT's forward, the other gets
helpers.gpu.lora.fuse_lora_layers. Forward + backward on the same batch, the two alternating; prints the median
step time of each and the ratio. The GPU figures are in docs/gpu.md (benchmarks/gpu.py).

    .venv/bin/python benchmarks/lora_cpu.py                 # batch 8 x 128 tokens, 4 rounds
    .venv/bin/python benchmarks/lora_cpu.py --threads 1     # steadier on a busy machine
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("EM_KIT_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "em-kit"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    import torch
    from peft import LoraConfig, get_peft_model

    from helpers.models import load_model
    from helpers.train.config import ALL_PROJECTIONS
    from helpers.gpu.lora import fuse_lora_layers

    if args.threads:
        torch.set_num_threads(args.threads)
    base, tok = load_model(args.model, device="cpu", dtype="float32")
    peft_model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=list(ALL_PROJECTIONS)))
    fused = copy.deepcopy(peft_model)
    n = fuse_lora_layers(fused)
    ids = torch.randint(10, len(tok) - 1, (args.batch, args.tokens), generator=torch.Generator().manual_seed(0))

    def step(model) -> float:
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        return time.perf_counter() - t0

    step(peft_model), step(fused)  # warm-up
    times = {"peft": [], "fused": []}
    for _ in range(args.rounds):
        times["peft"].append(step(peft_model))
        times["fused"].append(step(fused))
    med = {k: statistics.median(v) for k, v in times.items()}
    tokens = args.batch * args.tokens
    print(f"{args.model}: {n} fused LoRA layers, batch {args.batch} x {args.tokens} tokens, "
          f"{torch.get_num_threads()} threads, median of {args.rounds}")
    for k in ("peft", "fused"):
        print(f"  {k:5}  {med[k]:.3f} s/step  {tokens / med[k]:,.0f} tokens/s")
    print(f"  fused / PEFT speed: {med['peft'] / med['fused']:.2f}x")


if __name__ == "__main__":
    main()
