"""Parameter sweeps: `python -m helpers.maintainer.sweep sweeps/rank_x_epochs.yaml` runs a grid of notebook parameters."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from helpers.notebook_runs import PIPELINE, run_pipeline
from helpers.profiles import PROFILES, profile_name
from helpers.runs import atomic_write_csv, run_dir


@dataclass
class Sweep:
    """A grid over notebook parameters; every combination becomes its own run folder."""

    name: str
    grid: dict
    fixed: dict = field(default_factory=dict)
    profile: str = "auto"  # fills every parameter that neither `grid` nor `fixed` sets (helpers/profiles.py)
    notebooks: tuple = PIPELINE[2:]

    def combinations(self) -> list[dict]:
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def run_name(self, combo: dict) -> str:
        parts = [f"{k}-{_slug(v)}" for k, v in combo.items()]
        return f"{self.name}--" + "--".join(parts)


def _slug(value) -> str:
    text = "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return re.sub(r"[^A-Za-z0-9.+]+", "_", text)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep YAML file (keys: name, profile, grid, fixed, notebooks)."""
    import yaml

    path = Path(path)
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - {"name", "profile", "grid", "fixed", "notebooks"}
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: name, profile, grid, fixed, notebooks")
    grid = spec.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"{path}: `grid` must map parameter names to lists of values, e.g. `lora_rank: [4, 16]`")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{path}: grid.{key} must be a non-empty list, got {values!r}")
    notebooks = tuple(spec.get("notebooks") or PIPELINE[2:])
    profile = str(spec.get("profile") or "auto")
    if profile != "auto" and profile not in PROFILES:
        raise ValueError(f"{path}: profile {profile!r} is unknown; pick one of auto, {', '.join(PROFILES)}")
    return Sweep(name=spec.get("name") or path.stem, grid=grid, fixed=spec.get("fixed") or {}, notebooks=notebooks,
                 profile=profile)


def analysis_finished(run_name: str) -> bool:
    """A combination is done when its analysis wrote summary.json."""
    return (run_dir(run_name, create=False) / "summary.json").is_file()


def run_sweep(sweep: Sweep) -> "pandas.DataFrame":  # noqa: F821
    """Run every unfinished combination, go on past failures, then collect one table and one plot."""
    status = {}
    combos = sweep.combinations()
    for i, combo in enumerate(combos, 1):
        name = sweep.run_name(combo)
        if analysis_finished(name):
            print(f"[{i}/{len(combos)}] {name}: finished earlier, skipped")
            status[name] = "skipped (finished)"
            continue
        print(f"[{i}/{len(combos)}] {name}")
        results = run_pipeline(name, {"profile": sweep.profile, **sweep.fixed, **combo}, sweep.notebooks)
        failed = [r for r in results if r.error]
        status[name] = f"failed in {failed[0].notebook}: {failed[0].error}" if failed else "ok"
    table = collect(sweep, status)
    out = run_dir(f"sweep-{sweep.name}")
    atomic_write_csv(table, out / "results.csv")
    plot_sweep(table, sweep, out / "em_vs_params.png")
    failures = table[table.status.str.startswith("failed")]
    print(f"\n{len(table) - len(failures)}/{len(table)} combinations have results; table: runs/sweep-{sweep.name}/results.csv")
    for _, row in failures.iterrows():
        print(f"  FAILED {row.run_name}: {row.status}")
    return table


def collect(sweep: Sweep, status: dict | None = None):
    """One row per combination: the swept values, EM rate with its interval, means, and status."""
    import pandas as pd

    rows = []
    for combo in sweep.combinations():
        name = sweep.run_name(combo)
        row = {"run_name": name, **{k: _slug(v) if isinstance(v, (list, tuple)) else v for k, v in combo.items()}}
        summary_path = run_dir(name, create=False) / "summary.json"
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            for key in ("em_rate", "mean_aligned", "mean_coherent", "n_scored"):
                row[key] = summary.get(key)
            lo, hi = (summary.get("em_rate_ci") or [None, None])[:2]
            row["em_rate_lo"], row["em_rate_hi"] = lo, hi
        row["status"] = (status or {}).get(name, "ok" if summary_path.is_file() else "not run")
        rows.append(row)
    return pd.DataFrame(rows)


def plot_sweep(table, sweep: Sweep, path: Path):
    """EM rate (95% CI) against the first swept parameter, one line per value of the second."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    keys = list(sweep.grid)
    done = table.dropna(subset=["em_rate"]) if "em_rate" in table else table.iloc[0:0]
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(done):
        hue = keys[1] if len(keys) > 1 else None
        done = done.assign(**{k: done[k].astype(str) for k in keys})
        sns.pointplot(data=done, x=keys[0], y="em_rate", hue=hue, ax=ax, dodge=0.2, linestyle="none")
        for _, row in done.iterrows():  # the bootstrap intervals from each run's summary
            if row.em_rate_lo is not None and row.em_rate_hi is not None:
                x = list(dict.fromkeys(done[keys[0]])).index(row[keys[0]])
                ax.vlines(x, row.em_rate_lo, row.em_rate_hi, color="grey", alpha=0.6)
    ax.set_ylabel("EM rate (95% CI)")
    ax.set_title(f"sweep {sweep.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.maintainer.sweep", description=__doc__)
    parser.add_argument("sweep_file", help="a YAML file, e.g. sweeps/rank_x_epochs.yaml")
    parser.add_argument("--profile", default=None, help="overrides the file's `profile` (default there: auto)")
    args = parser.parse_args(argv)
    sweep = load_sweep(args.sweep_file)
    if args.profile:
        profile_name(args.profile)  # an unknown name is a clear error before anything runs
        sweep.profile = args.profile
    table = run_sweep(sweep)
    return 1 if table.status.str.startswith("failed").any() else 0


if __name__ == "__main__":
    sys.exit(main())
