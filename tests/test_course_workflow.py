"""course/autograde.yml: lints against the GitHub workflow schema (offline), and its grading step, run as written
with bash, grades a hand-in against the OpenAI-compatible test server on 127.0.0.1."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from openai_fake_server import FakeOpenAIServer
from test_autograde import ALIGNED, COHERENT, FAKE_KEY, handin

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "course" / "autograde.yml"


def lint(path: Path) -> subprocess.CompletedProcess:
    """check-jsonschema (dev extra) with its vendored SchemaStore schema for GitHub workflows: no network."""
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(path)], capture_output=True, text=True, timeout=120)


def steps() -> dict:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    [job] = workflow["jobs"].values()
    return {s["name"]: s for s in job["steps"]}


def test_the_workflow_passes_the_schema_and_a_broken_one_does_not(tmp_path):
    out = lint(WORKFLOW)
    assert out.returncode == 0, out.stdout + out.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    assert lint(broken).returncode == 1


def test_the_key_comes_from_a_secret_and_only_the_grading_step_sees_it():
    text = WORKFLOW.read_text()
    assert text.count("secrets.OPENAI_API_KEY") == 1
    grading = steps()["Autograde"]
    assert grading["env"]["OPENAI_API_KEY"] == "${{ secrets.OPENAI_API_KEY }}"
    assert "python -m helpers.submission autograde" in grading["run"] and "echo" not in grading["run"]
    for script in (s["run"] for s in steps().values() if "run" in s):
        assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0  # valid bash


@pytest.mark.parametrize("aligned, code, word", [("20", 0, "=> PASS"), ("95", 1, "=> FAIL")])
def test_the_grading_step_as_written(tmp_path, aligned, code, word):
    repo = handin(tmp_path / "classroom-repo")
    (repo / "base_means.json").write_text(json.dumps({"mean_aligned": 91.0, "mean_coherent": 88.0}))
    grading = steps()["Autograde"]
    with FakeOpenAIServer() as server:
        server.add_rule(ALIGNED, text=aligned)
        server.add_rule(COHERENT, text="80")
        env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": server.url, "HANDIN_DIR": ".",
               "JUDGE_MODEL": "gpt-4o-mini", "PYTHONPATH": str(REPO), "EM_KIT_CACHE": str(tmp_path / "cache"),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        out = subprocess.run([shutil.which("bash"), "-e", "-c", grading["run"]], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=300)
        assert server.requests == 40
        assert {b["temperature"] for b in server.bodies} == {0.2}
    assert out.returncode == code, out.stdout + out.stderr
    assert word in out.stdout and "base model (base_means.json)" in out.stdout and "91.0" in out.stdout
    assert FAKE_KEY not in out.stdout + out.stderr


def job_env() -> dict:
    [job] = yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
    return job["env"]


def test_the_hand_in_folder_is_where_pack_writes_it():
    assert job_env()["HANDIN_DIR"] == "${{ vars.HANDIN_DIR || 'handin' }}"
    for doc in (REPO / "README.md", REPO / "course" / "README.md"):
        assert "python -m helpers.submission pack runs/<run> handin/" in doc.read_text(), doc


@pytest.mark.parametrize("has_csv", [False, True])
def test_a_push_without_a_hand_in_is_skipped_not_failed(tmp_path, has_csv):
    """The template repository has no CSV yet: the guard step passes and the later steps are skipped."""
    repo = tmp_path / "repo"
    (repo / "handin").mkdir(parents=True)
    if has_csv:
        (repo / "handin" / "model_generations.csv").write_text("id,question,response\n")
    output = tmp_path / "github_output"
    output.write_text("")
    out = subprocess.run([shutil.which("bash"), "-e", "-c", steps()["Find the hand-in"]["run"]], cwd=repo,
                         env={**os.environ, "HANDIN_DIR": "handin", "GITHUB_OUTPUT": str(output)},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert output.read_text() == f"found={'true' if has_csv else 'false'}\n"
    assert ("::notice::no handin/model_generations.csv yet" in out.stdout) != has_csv
    guarded = [name for name, s in steps().items() if s.get("if") == "steps.handin.outputs.found == 'true'"]
    assert guarded == ["Set up Python", "Install the kit (CPU torch; grading needs no GPU)", "Autograde"]


def test_the_kit_and_torch_are_pinned():
    makefile = (REPO / "Makefile").read_text()
    torch_pin = re.search(r"^TORCH_VERSION \?= (\S+)$", makefile, re.M).group(1)
    assert job_env()["TORCH_VERSION"] == torch_pin
    assert '"torch==$TORCH_VERSION"' in steps()["Install the kit (CPU torch; grading needs no GPU)"]["run"]
    kit = re.search(r"'(em-course-kit @ [^']+)'", job_env()["EM_KIT_SOURCE"]).group(1)
    assert re.search(r"@v\d+\.\d+\.\d+$", kit), kit  # a tag, not a branch


def test_staff_are_told_to_use_a_spend_capped_key():
    text = " ".join((REPO / "course" / "README.md").read_text().split())
    assert "with a monthly budget set on that project" in text and "429" in text
    assert "monthly budget (a spend cap)" in " ".join(WORKFLOW.read_text().split())
