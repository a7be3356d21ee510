"""Keep each notebook's `.py` (jupytext py:percent, the source) and `.ipynb` (committed, stripped) in step."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def build(py_path: str | Path) -> Path:
    """Write the `.ipynb` twin of a py:percent script: no outputs, no widget state, a python3 kernelspec."""
    import jupytext

    py_path = Path(py_path)
    nb = jupytext.read(py_path)
    nb = strip(nb)
    out = py_path.with_suffix(".ipynb")
    if out.exists():  # keep the cell ids of cells still in place, so a rebuild changes only what changed
        old = jupytext.read(out).cells
        for new, was in zip(nb.cells, old if len(old) == len(nb.cells) else []):
            if new.cell_type == was.cell_type and "id" in was:
                new["id"] = was["id"]
    jupytext.write(nb, out, fmt="ipynb")
    return out


def strip(nb):
    """Drop outputs, execution counts and widget state; keep only tags in cell metadata."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    return nb


def pair_problems(py_path: str | Path) -> list[str]:
    """Differences between a script and its `.ipynb` (missing twin, cell count, type, tags or source)."""
    import jupytext

    py_path = Path(py_path)
    ipynb = py_path.with_suffix(".ipynb")
    if not ipynb.exists():
        return [f"{ipynb}: missing; run `python -m helpers.maintainer.notebook_tools build {py_path}`"]
    a, b = jupytext.read(py_path).cells, jupytext.read(ipynb).cells
    fix = f"run `python -m helpers.maintainer.notebook_tools build {py_path}` (or `jupytext --sync`) and commit both"
    if len(a) != len(b):
        return [f"{ipynb}: {len(b)} cells, but {py_path.name} has {len(a)}; {fix}"]
    problems = []
    for i, (x, y) in enumerate(zip(a, b)):
        same = (x.cell_type == y.cell_type and x.source.strip() == y.source.strip()
                and x.metadata.get("tags", []) == y.metadata.get("tags", []))
        if not same:
            problems.append(f"{ipynb}: cell {i} differs from {py_path.name}; {fix}")
    return problems


def dirty_problems(ipynb_path: str | Path) -> list[str]:
    """Outputs, execution counts or widget state left in a committed notebook."""
    import nbformat

    nb = nbformat.read(ipynb_path, as_version=4)
    problems = []
    if "widgets" in nb.metadata:
        problems.append(f"{ipynb_path}: carries widget state in its metadata")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"{ipynb_path}: cell {i} has outputs; build it again from its .py")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.maintainer.notebook_tools", description=__doc__)
    parser.add_argument("command", choices=["build", "check"])
    parser.add_argument("scripts", nargs="+", help="notebooks/*.py")
    args = parser.parse_args(argv)
    problems = []
    for script in args.scripts:
        script = Path(script).with_suffix(".py")
        if args.command == "build":
            print(f"built {build(script)}")
        else:
            problems += pair_problems(script) + dirty_problems(script.with_suffix(".ipynb"))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
