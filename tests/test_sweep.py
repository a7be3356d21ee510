"""Sweeps run every combination through papermill, skip finished ones, go on past failures, collect a table."""

import json
import shutil
from pathlib import Path

import pytest

from helpers.maintainer.notebook_tools import build
from helpers.maintainer.sweep import load_sweep, run_sweep

FIXTURE = Path(__file__).parent / "fixtures" / "sweep_probe.py"


@pytest.fixture
def probe_notebook(tmp_path):
    script = tmp_path / "sweep_probe.py"
    shutil.copy(FIXTURE, script)
    return build(script)


def test_sweep_runs_skips_and_reports_failures(tmp_path, probe_notebook, runs_tmp, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: t\nprofile: gpu\ngrid:\n  lora_rank: [4, 16]\n  epochs: [1, 2]\nfixed:\n  fail_on_rank: 16\n"
                    f"notebooks: [{probe_notebook}]\n")
    sweep = load_sweep(spec)
    table = run_sweep(sweep)
    assert len(table) == 4
    ok = table[table.status == "ok"].sort_values("epochs")
    assert list(ok.em_rate) == [0.04, 0.08]
    assert table[table.lora_rank == 16].status.str.startswith("failed in sweep_probe").all()
    assert (runs_tmp / "sweep-t" / "results.csv").is_file()
    assert (runs_tmp / "sweep-t" / "em_vs_params.png").stat().st_size > 5000
    assert (runs_tmp / "t--lora_rank-4--epochs-1" / "notebooks" / "sweep_probe.ipynb").is_file()
    assert "FAILED t--lora_rank-16--epochs-1" in capsys.readouterr().out
    summary = json.loads((runs_tmp / "t--lora_rank-4--epochs-1" / "summary.json").read_text())
    assert summary["profile"] == "gpu"  # the sweep's profile reaches every notebook

    again = run_sweep(sweep)  # finished combinations are skipped, failed ones are tried again
    assert set(again[again.lora_rank == 4].status) == {"skipped (finished)"}
    assert again[again.lora_rank == 16].status.str.startswith("failed").all()


def test_bad_sweep_files_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid:\n  lora_rank: 4\n")
    with pytest.raises(ValueError, match="grid.lora_rank must be a non-empty list"):
        load_sweep(bad)
    bad.write_text("grdi: {}\n")
    with pytest.raises(ValueError, match="unknown key"):
        load_sweep(bad)
    bad.write_text("profile: laptop\ngrid:\n  lora_rank: [4]\n")
    with pytest.raises(ValueError, match="profile 'laptop' is unknown; pick one of auto, cpu-demo"):
        load_sweep(bad)


def test_example_sweep_file_is_valid():
    sweep = load_sweep(Path(__file__).parents[1] / "sweeps" / "rank_x_epochs.yaml")
    assert len(sweep.combinations()) == 4
