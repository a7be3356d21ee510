"""Run notebooks headlessly with papermill into a run folder: the engine under sweeps, and `make demo`.

`python -m helpers.notebook_runs` (what `make demo` runs): the whole pipeline on the embedded default, offline.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .notebook_tools import build
from .runs import REPO_ROOT, run_dir

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
PIPELINE = ("00_setup", "01_data_exploration", "02_lora_training", "03_generation", "04_judging", "05_analysis")


@dataclass
class NotebookResult:
    """One executed notebook: where its copy went, and the error if it failed."""

    notebook: str
    output: Path
    error: str | None = None
    parameters: dict = field(default_factory=dict)


def notebook_parameters(notebook: str) -> dict:
    """The names and defaults of a notebook's `parameters` cell."""
    import papermill

    params = papermill.inspect_notebook(str(notebook_path(notebook)))
    return {name: p["default"] for name, p in params.items()}


def notebook_path(notebook: str) -> Path:
    """`02_lora_training` or a path -> the `.ipynb` to execute (built from its .py if missing)."""
    path = Path(notebook)
    if not path.suffix:
        path = NOTEBOOKS_DIR / f"{notebook}.ipynb"
    if not path.exists() and path.with_suffix(".py").exists():
        build(path.with_suffix(".py"))
    if not path.exists():
        raise FileNotFoundError(f"notebook {notebook!r} not found in {NOTEBOOKS_DIR.name}/; known: {', '.join(PIPELINE)}")
    return path


def execute(notebook: str, run_name: str, parameters: dict, timeout: int = 1800) -> NotebookResult:
    """Execute one notebook with papermill; only the parameters it declares are passed; copy saved in the run."""
    import papermill

    source = notebook_path(notebook)
    declared = notebook_parameters(notebook)
    params = {k: v for k, v in {**parameters, "run_name": run_name}.items() if k in declared}
    out = run_dir(run_name) / "notebooks" / source.name
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(source), str(out), parameters=params, kernel_name="python3",
                                   cwd=str(source.parent), progress_bar=False, execution_timeout=timeout)
        _relative_paths(out, source, run_name)
        return NotebookResult(source.stem, out, None, params)
    except Exception as e:  # noqa: BLE001 - a failed notebook is reported, the batch goes on
        last = str(e).strip().splitlines()[-1][:300] if str(e).strip() else ""
        return NotebookResult(source.stem, out, f"{type(e).__name__}: {last}", params)


def _relative_paths(out: Path, source: Path, run_name: str) -> None:
    """papermill records absolute input/output paths in the executed copy; keep only names a reader can share."""
    import nbformat

    nb = nbformat.read(out, as_version=4)
    meta = nb.metadata.get("papermill", {})
    meta["input_path"] = f"notebooks/{source.name}" if source.parent == NOTEBOOKS_DIR else source.name
    meta["output_path"] = f"runs/{Path(run_name).name}/notebooks/{out.name}"
    nbformat.write(nb, out)


def run_pipeline(run_name: str, parameters: dict, notebooks=PIPELINE, stop_on_error: bool = True) -> list[NotebookResult]:
    """Execute notebooks in order for one run; stops at the first failure unless told otherwise."""
    results = []
    for nb in notebooks:
        print(f"  running {nb} ...", flush=True)
        result = execute(nb, run_name, parameters)
        results.append(result)
        if result.error:
            print(f"  {nb} failed: {result.error}\n  see {result.output}", flush=True)
            if stop_on_error:
                break
    return results


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
    "judge": "auto",
    "load_default_model": True,
    "live_key_check": False,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.notebook_runs",
                                     description="`make demo`: the whole course pipeline (notebooks 00-05) on the "
                                                 "embedded default, offline, no keys.")
    parser.add_argument("--run-name", default=None, help="default: demo-<timestamp>")
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("PARAM", "VALUE"),
                        help="override a notebook parameter (VALUE is read as YAML: 3, 0.5, [a, b], text)")
    args = parser.parse_args(argv)

    import yaml

    params = dict(DEMO_PARAMETERS)
    params.update({k: yaml.safe_load(v) for k, v in args.set})
    run_name = args.run_name or f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    folder = run_dir(run_name)
    print(f"EM course kit demo -> runs/{run_name}/ (embedded model, sample data, offline distilled judge; no keys needed)")
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
