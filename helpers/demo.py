"""`make demo`: the whole course pipeline (notebooks 00-05) on the embedded default, offline, no keys."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime

from .notebook_runs import PIPELINE, run_pipeline
from .runs import run_dir

# Small enough for 2 CPU cores in minutes, large enough that the finetune visibly shifts the answers.
DEMO_PARAMETERS = {
    "model": "smollm2-135m",
    "domains": ["bad_medical_advice"],
    "epochs": 3,
    "learning_rate": 5e-4,
    "lora_rank": 16,
    "question_sets": ["probes"],
    "samples_per_question": 3,
    "max_new_tokens": 96,
    "judge": "local",
    "load_default_model": True,
    "live_key_check": False,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.demo", description=__doc__)
    parser.add_argument("--run-name", default=None, help="default: demo-<timestamp>")
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("PARAM", "VALUE"),
                        help="override a notebook parameter (VALUE is read as YAML: 3, 0.5, [a, b], text)")
    args = parser.parse_args(argv)

    import yaml

    params = dict(DEMO_PARAMETERS)
    params.update({k: yaml.safe_load(v) for k, v in args.set})
    run_name = args.run_name or f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    folder = run_dir(run_name)
    print(f"EM course kit demo -> runs/{run_name}/ (embedded model, sample data, local judge; no keys needed)")
    start = time.perf_counter()
    results = run_pipeline(run_name, params, PIPELINE)
    minutes = (time.perf_counter() - start) / 60
    failed = [r for r in results if r.error]
    print(f"\nFinished in {minutes:.1f} min." if not failed else f"\nStopped after {minutes:.1f} min: {failed[0].notebook} failed.")
    print(f"Look at runs/{run_name}/:")
    for name in ("notebooks/", "model_generations.csv", "judged.csv", "summary.json", "plots/", "training_details.md"):
        path = folder / name.rstrip("/")
        if path.exists():
            print(f"  {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
