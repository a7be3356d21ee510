"""Answer states (helpers/judge/distilled/embedded.py) of the fitting rows, computed once and kept (float16).

`python -m helpers.judge_lab.features_cache reference|kit` fills the cache; fitting reads it (keyed by a hash of each
question and answer, so a changed answer is never matched to stale numbers).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.judge.distilled.embedded import WIDTH, EmbeddedOptions, answer_states

LAB_DATA = Path(__file__).resolve().parent / "data"
REFERENCE_EVERY = 10  # the reference rows with answer states: every 10th (1,000 of 10,000), a fixed subset


def row_key(question: str, answer: str) -> str:
    """A short hash of a question and its answer."""
    return hashlib.sha256(f"{question}\x00{answer}".encode()).hexdigest()[:16]


def cache_path(name: str) -> Path:
    """The cache file `name` (kit or reference)."""
    return LAB_DATA / f"states_{name}.npz"


def load_cache(name: str) -> dict[str, np.ndarray]:
    """key -> feature row, from one cache file (empty when missing)."""
    path = cache_path(name)
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        if z["x"].shape[1] != WIDTH or z["options"].item() != json.dumps(EmbeddedOptions().fitted()):
            raise ValueError(f"{path} holds states of other options: delete it and recompute "
                             f"(python -m helpers.judge_lab.features_cache {name})")
        return dict(zip(z["keys"].tolist(), z["x"].astype(np.float32)))


def save_cache(name: str, cache: dict[str, np.ndarray]) -> None:
    from helpers.runs import atomic_write_bytes
    import io

    keys = sorted(cache)
    buf = io.BytesIO()
    x = np.array([cache[k] for k in keys], dtype=np.float16).reshape(-1, WIDTH)
    np.savez_compressed(buf, keys=np.array(keys), x=x, options=np.array(json.dumps(EmbeddedOptions().fitted())))
    atomic_write_bytes(cache_path(name), buf.getvalue())


def compute(name: str, questions, answers, chunk: int = 64) -> None:
    """Fill the cache `name` for these rows, a chunk at a time (saved after each, so a stopped run resumes)."""
    cache = load_cache(name)
    todo = [(row_key(q, a), q, a) for q, a in zip(questions, answers)]
    todo = list({k: (k, q, a) for k, q, a in todo if k not in cache}.values())
    todo.sort(key=lambda r: r[1])  # answers to one question together: the prompt is run once
    start = time.perf_counter()
    for i in range(0, len(todo), chunk):
        part = todo[i:i + chunk]
        x = answer_states([q for _, q, _ in part], [a for _, _, a in part])
        cache.update({k: row for (k, _, _), row in zip(part, x)})
        save_cache(name, cache)
        done = i + len(part)
        print(f"{name}: {done}/{len(todo)} in {time.perf_counter() - start:.0f} s", flush=True)


def lookup(name: str, questions, answers) -> np.ndarray:
    """Feature rows for these answers; NaN rows where the cache has none."""
    cache = load_cache(name)
    nan = np.full(WIDTH, np.nan, dtype=np.float32)
    return np.array([cache.get(row_key(q, a), nan) for q, a in zip(questions, answers)]).reshape(-1, WIDTH)


def reference_subset(df: pd.DataFrame) -> pd.DataFrame:
    """The fixed reference rows that get answer states."""
    return df.iloc[::REFERENCE_EVERY]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", choices=["reference", "kit"])
    ap.add_argument("--answers", default=None, help="kit answers CSV (default: the shipped graded answers)")
    args = ap.parse_args(argv)
    if args.which == "reference":
        from helpers.judge_lab.fit import load_reference

        df = reference_subset(load_reference())
    else:
        from helpers.judge_lab.kit_data import KIT_ANSWERS

        df = pd.read_csv(args.answers or KIT_ANSWERS, keep_default_na=False)
    compute(args.which, [str(q) for q in df["question"]], [str(a) for a in df["response"]])


if __name__ == "__main__":
    main()
