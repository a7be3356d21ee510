"""Generation speed: the original homework loop (one prompt at a time) against helpers.generate.generate (batched).

Both sides use the same loaded model, the same prompts, the same pure-sampling settings (temperature 1, top_p 1,
top_k off) and the same max_new_tokens; tokens/s counts the answer tokens up to and including the end-of-turn token.

    EM_KIT_CACHE=.cache/em-kit .venv/bin/python benchmarks/generation_cpu.py            # 64 prompts, 48 tokens
    .venv/bin/python benchmarks/generation_cpu.py --batch-sizes 64 32 --no-prefix-row   # sweep, prefix cache off
    .venv/bin/python benchmarks/generation_cpu.py --threads 1 --baseline-prompts 16     # steadier on a busy machine
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("EM_KIT_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "em-kit"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def prompts(n: int) -> list[str]:
    """n question texts from the kit's sets (probes first), cycled if n is larger than the sets."""
    from helpers.questions import QUESTION_SETS, load_questions

    texts = [q.text for q in load_questions(QUESTION_SETS)]
    return [texts[i % len(texts)] for i in range(n)]


def original_loop(model, tok, texts, max_new_tokens, temperature, top_p):
    """The homework's loop: for each prompt, tokenize, model.generate on that one prompt, decode."""
    eos = tok.eos_token_id
    answers, tokens = [], 0
    for text in texts:
        inputs = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                         return_tensors="pt", return_dict=True).to(model.device)
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                             top_p=top_p, top_k=0, pad_token_id=tok.pad_token_id, eos_token_id=eos)
        new = out[0, inputs["input_ids"].shape[1]:]
        tokens += int(new.numel())
        answers.append(tok.decode(new, skip_special_tokens=True))
    return answers, tokens


def main(argv=None) -> None:
    import torch

    from helpers.generate import generate
    from helpers.models import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64])
    ap.add_argument("--baseline-prompts", type=int, default=None,
                    help="time the one-at-a-time loop on the first N prompts only (tokens/s is a rate); default all")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-prefix-row", action="store_true",
                    help="also time generate() without shared-prefix caching (plain left padding)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads for both sides (1 is steadier on a busy, shared machine)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model, tok = load_model(args.model, device=args.device)
    texts = prompts(args.prompts)
    print(f"model {args.model} on {args.device} ({torch.get_num_threads()} threads), {len(texts)} prompts, "
          f"max_new_tokens {args.max_new_tokens}, temperature {args.temperature}, top_p {args.top_p}, top_k off", flush=True)

    torch.manual_seed(0)
    original_loop(model, tok, texts[:1], 4, args.temperature, args.top_p)  # warm-up, both sides
    generate((model, tok), texts[:2], max_new_tokens=4, progress=False)

    base_texts = texts[: args.baseline_prompts or len(texts)]
    torch.manual_seed(0)
    t0 = time.perf_counter()
    _, base_tokens = original_loop(model, tok, base_texts, args.max_new_tokens, args.temperature, args.top_p)
    base_s = time.perf_counter() - t0
    base_rate = base_tokens / base_s
    print(f"{'one prompt at a time':<32} {len(base_texts):>4} prompts {base_tokens:>6} tokens {base_s:8.1f} s "
          f"{base_rate:9.1f} tokens/s", flush=True)

    variants = [(bs, True) for bs in args.batch_sizes] + ([(args.batch_sizes[0], False)] if args.no_prefix_row else [])
    for bs, share in variants:
        t0 = time.perf_counter()
        df = generate((model, tok), texts, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                      top_p=args.top_p, batch_size=bs, share_prefix=share, progress=False)
        secs = time.perf_counter() - t0
        rate = df.attrs["generated_tokens"] / secs
        label = f"generate(), batch {bs}" + ("" if share else ", no prefix")
        print(f"{label:<32} {len(texts):>4} prompts {df.attrs['generated_tokens']:>6} tokens "
              f"{secs:8.1f} s {rate:9.1f} tokens/s   ratio {rate / base_rate:5.1f}x", flush=True)


if __name__ == "__main__":
    main()
