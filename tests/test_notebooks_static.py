"""Committed notebooks: each .ipynb is in step with its .py, carries no outputs or widget state, follows the pattern."""

from pathlib import Path

import nbformat
import pytest

from helpers.notebook_runs import PIPELINE
from helpers.maintainer.notebook_tools import dirty_problems, pair_problems

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("name", PIPELINE)
def test_pair_in_sync_and_stripped(name):
    script = NOTEBOOKS / f"{name}.py"
    assert script.exists(), f"{script} is missing"
    assert pair_problems(script) == []
    assert dirty_problems(script.with_suffix(".ipynb")) == []


@pytest.mark.parametrize("name", PIPELINE)
def test_notebook_shape(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and "colab-badge" in nb.cells[0].source
    assert '"google.colab" in sys.modules' in code[0].source, "first code cell must be the Colab installer"
    params = code[1]
    assert "parameters" in params.metadata.get("tags", []), "second code cell must be the parameters cell"
    if name != "00_setup":  # the setup checklist belongs to no run
        assert "run_name" in params.source
    for line in params.source.splitlines():  # plain literals only: papermill overrides them
        stripped = line.split("#")[0].strip()
        assert not stripped or "=" in stripped and "(" not in stripped.split("=", 1)[1], f"not a plain literal: {line}"


def test_pair_check_catches_drift(tmp_path):
    from helpers.maintainer.notebook_tools import build

    script = tmp_path / "x.py"
    script.write_text('# %% tags=["parameters"]\nrun_name = "a"\n\n# %%\nprint(run_name)\n')
    build(script)
    assert pair_problems(script) == []
    script.write_text('# %% tags=["parameters"]\nrun_name = "b"\n\n# %%\nprint(run_name)\n')
    assert "cell 0 differs" in pair_problems(script)[0]
    nb = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nb.metadata["widgets"] = {"state": {}}
    nbformat.write(nb, script.with_suffix(".ipynb"))
    problems = dirty_problems(script.with_suffix(".ipynb"))
    assert any("widget state" in p for p in problems) and any("has outputs" in p for p in problems)


@pytest.mark.parametrize("name", PIPELINE)
def test_papermill_sees_every_parameter(name):
    """papermill skips a parameter line with a second '=' (even in its comment): sweeps could not set it."""
    import papermill

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = [line.split("=")[0].strip() for line in params.source.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    assert sorted(papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))) == sorted(names)


WIDGET_CALLS = ("example_browser(", "config_panel(", "chat_sandbox(")


@pytest.mark.parametrize("name", PIPELINE)
def test_each_widget_cell_says_to_run_it_again_after_a_restart(name):
    """A reopened notebook shows "Error displaying widget: model not found" until the cell runs again."""
    cells = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells
    shown = [i for i, c in enumerate(cells) if c.cell_type == "code" and any(
        call in line for line in c.source.splitlines() if not line.startswith(("from ", "import ")) for call in WIDGET_CALLS)]
    assert bool(shown) == (name in ("01_data_exploration", "02_lora_training", "03_generation"))
    for i in shown:
        assert cells[i - 1].cell_type == "markdown" and "Run the cell below again" in cells[i - 1].source, (name, i)


@pytest.mark.parametrize("name", PIPELINE)
def test_students_cells_carry_no_test_markers(name):
    """nbval's check is a cell tag (nbval-check-output), not a `# NBVAL_CHECK_OUTPUT` line a student reads."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert not [c.source[:60] for c in nb.cells if "NBVAL" in c.source]


def test_deterministic_cells_are_still_checked_by_nbval():
    tagged = {name: sum("nbval-check-output" in c.metadata.get("tags", [])
                        for c in nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells) for name in PIPELINE}
    assert tagged["01_data_exploration"] == 1 and tagged["03_generation"] == 1 and tagged["04_judging"] == 3, tagged
