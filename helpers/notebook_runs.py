"""Run notebooks headlessly with papermill into a run folder: the engine under sweeps, and `make demo`.

`python -m helpers.notebook_runs` (what `make demo` runs): the whole pipeline under one profile (default: auto,
cpu-demo offline without a GPU), one line per notebook, then what the run showed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .profiles import PROFILES, profile_name
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
        from helpers.maintainer.notebook_tools import build

        build(path.with_suffix(".py"))
    if not path.exists():
        raise FileNotFoundError(f"notebook {notebook!r} not found in {NOTEBOOKS_DIR.name}/; known: {', '.join(PIPELINE)}")
    return path


def execute(notebook: str, run_name: str, parameters: dict, timeout: int = 1800, progress: bool = False) -> NotebookResult:
    """Execute one notebook with papermill; only the parameters it declares are passed; copy saved in the run.

    `progress`: print a line every few seconds while a cell runs long (which cell, and its latest text output).
    """
    import papermill

    notebook_file = notebook_path(notebook)
    declared = notebook_parameters(notebook)
    params = {k: v for k, v in {**parameters, "run_name": run_name}.items() if k in declared}
    out = run_dir(run_name) / "notebooks" / notebook_file.name
    out.parent.mkdir(parents=True, exist_ok=True)
    watcher = _Watcher(out) if progress else None
    try:
        if watcher:
            watcher.start()
        papermill.execute_notebook(str(notebook_file), str(out), parameters=params, kernel_name="python3",
                                   cwd=str(notebook_file.parent), progress_bar=False, execution_timeout=timeout,
                                   autosave_cell_every=5 if progress else 30, **local_kernel())
        _relative_paths(out, notebook_file, run_name)
        return NotebookResult(notebook_file.stem, out, None, params)
    except Exception as e:  # noqa: BLE001 - a failed notebook is reported, the batch goes on
        last = str(e).strip().splitlines()[-1][:300] if str(e).strip() else ""
        return NotebookResult(notebook_file.stem, out, f"{type(e).__name__}: {last}", params)
    finally:
        if watcher:
            watcher.stop()


def local_kernel() -> dict:
    """Kernel options for papermill: the kernel talks over local IPC sockets in a private temporary folder, not
    TCP (ipykernel warns "Kernel is running over TCP without encryption"); Windows has no IPC and keeps TCP."""
    if sys.platform == "win32":
        return {}
    import tempfile

    from jupyter_client.manager import KernelManager

    class IpcKernelManager(KernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = str(Path(tempfile.mkdtemp(prefix="em-kit-kernel-")) / "kernel")  # sockets kernel-<port>

    return {"kernel_manager_class": IpcKernelManager}


class _Watcher(threading.Thread):
    """Reads the executed copy that papermill saves as it goes; prints the running cell when it has run a while."""

    def __init__(self, path: Path, every: float = 15.0):
        super().__init__(daemon=True)
        self.path, self.every, self.done = path, every, threading.Event()
        self.start_time = time.monotonic()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=2)

    def run(self) -> None:
        while not self.done.wait(self.every):
            line = self.status()
            if line:
                print(f"      {_minutes(time.monotonic() - self.start_time)}  {line}", flush=True)

    def status(self) -> str | None:
        import nbformat

        try:
            nb = nbformat.read(self.path, as_version=4)
        except Exception:  # noqa: BLE001 - papermill may be halfway through writing it
            return None
        code = [c for c in nb.cells if c.cell_type == "code"]
        running = [i for i, c in enumerate(code) if c.metadata.get("papermill", {}).get("status") == "running"]
        if not running:
            return None
        cell = code[running[0]]
        first = next((ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")), "")
        return f"cell {running[0] + 1}/{len(code)}: {first[:60]}" + _last_output(cell)


def _last_output(cell) -> str:
    """The last line a cell has printed so far, or "" (warnings and widgets such as progress bars are left out)."""
    for output in reversed(cell.get("outputs", [])):
        text = output.get("text", "") if output.get("output_type") == "stream" and output.get("name") == "stdout" else ""
        text = "".join(text) if isinstance(text, list) else text
        lines = [ln.strip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]
        if lines:
            return f"  | {lines[-1][:70]}"
    return ""


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def _relative_paths(out: Path, notebook_file: Path, run_name: str) -> None:
    """papermill records absolute input/output paths in the executed copy; keep only names a reader can share."""
    import nbformat

    nb = nbformat.read(out, as_version=4)
    meta = nb.metadata.get("papermill", {})
    meta["input_path"] = f"notebooks/{notebook_file.name}" if notebook_file.parent == NOTEBOOKS_DIR else notebook_file.name
    meta["output_path"] = f"runs/{Path(run_name).name}/notebooks/{out.name}"
    nbformat.write(nb, out)


def run_pipeline(run_name: str, parameters: dict, notebooks=PIPELINE, stop_on_error: bool = True,
                 progress: bool = True) -> list[NotebookResult]:
    """Execute notebooks in order for one run: one line per notebook with its time; stops at the first failure."""
    results = []
    for i, nb in enumerate(notebooks, 1):
        print(f"  [{i}/{len(notebooks)}] {nb} ...", flush=True)
        start = time.monotonic()
        result = execute(nb, run_name, parameters, progress=progress)
        results.append(result)
        took = _minutes(time.monotonic() - start)
        if result.error:
            print(f"  [{i}/{len(notebooks)}] {nb} failed after {took}: {result.error}\n  see {result.output}", flush=True)
            if stop_on_error:
                break
        else:
            print(f"  [{i}/{len(notebooks)}] {nb} done in {took}", flush=True)
    return results


# Only what a headless run needs; everything else comes from the profile (helpers/profiles.py).
DEMO_PARAMETERS = {
    "load_default_model": True,
    "live_key_check": False,
    "sandbox": False,
}


def print_findings(run_name: str) -> list[str]:
    """The plain sentences notebook 05 wrote into summary.json (what the finetuning changed), printed."""
    path = run_dir(run_name, create=False) / "summary.json"
    sentences = json.loads(path.read_text()).get("sentences", []) if path.is_file() else []
    if sentences:
        print("\nWhat this run shows:")
        for line in sentences:
            print(textwrap.fill(line, width=110, initial_indent="  - ", subsequent_indent="    "))
    return sentences


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.notebook_runs",
                                     description="`make demo`: the whole course pipeline (notebooks 00-05) under "
                                                 "one profile, then what the run showed.")
    parser.add_argument("--run-name", default=None, help="default: demo-<timestamp>")
    parser.add_argument("--profile", default="auto", choices=["auto", *PROFILES],
                        help="the settings the notebooks start from (default: auto, picked from this machine)")
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("PARAM", "VALUE"),
                        help="override a notebook parameter (VALUE is read as YAML: 3, 0.5, [a, b], text)")
    args = parser.parse_args(argv)

    import yaml

    params = {**DEMO_PARAMETERS, "profile": args.profile}
    params.update({k: yaml.safe_load(v) for k, v in args.set})
    run_name = args.run_name or f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    folder = run_dir(run_name)
    profile = profile_name(args.profile)
    picked = f" (picked by {args.profile})" if args.profile != profile else ""
    print(f"EM course kit demo -> runs/{run_name}/, profile {profile}{picked}")
    start = time.perf_counter()
    results = run_pipeline(run_name, params, PIPELINE)
    minutes = (time.perf_counter() - start) / 60
    failed = [r for r in results if r.error]
    print(f"\nFinished in {minutes:.1f} min." if not failed else f"\nStopped after {minutes:.1f} min: {failed[0].notebook} failed.")
    if not failed:
        print_findings(run_name)
    print(f"\nLook at runs/{run_name}/:")
    for name in ("notebooks/", "model_generations.csv", "judged.csv", "summary.json", "plots/", "training_details.md"):
        path = folder / name.rstrip("/")
        if path.exists():
            print(f"  {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
