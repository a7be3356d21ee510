"""The whole course, headless: notebooks 00-05 run by papermill on the offline embedded defaults, then nbval.

One pipeline run (module fixture) feeds every test here: artifacts, CSV schemas, plots, secret scan, and an
nbval-lax re-run of the executed notebooks whose deterministic cells must reproduce their output.
"""

import contextlib
import csv
import io
import json
import re
import os
import subprocess
import sys

import pytest

from helpers.notebook_runs import PIPELINE, run_pipeline
from helpers.profiles import PROFILES

pytestmark = pytest.mark.slow
FAKE_KEY = "sk-proj-CIFAKEKEYdoNotLeak0123456789abcdefXYZ"
FAKE_HF = "hf_CIFAKEtokenDoNotLeak0123456789"
RUN = "ci-run"
CI_PARAMETERS = {
    "profile": "cpu-demo", "max_rows": 16, "max_steps": 2, "batch_size": 4, "epochs": 1,
    "question_sets": ["in_domain", "probes"], "samples_per_question": 1, "max_new_tokens": 24,
    "live_key_check": False, "length_rows": 40, "n_boot": 200, "sandbox": False, "also_base": True,
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("headless") / "runs"
    saved = {k: os.environ.get(k) for k in ("EM_RUNS_DIR", "OPENAI_API_KEY", "HF_TOKEN")}
    os.environ.update(EM_RUNS_DIR=str(root), OPENAI_API_KEY=FAKE_KEY, HF_TOKEN=FAKE_HF)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            results = run_pipeline(RUN, CI_PARAMETERS, PIPELINE)
    finally:
        (root / "pipeline.log").write_text(printed.getvalue())
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return root, results


def test_every_notebook_ran(pipeline):
    root, results = pipeline
    assert [r.notebook for r in results] == list(PIPELINE)
    assert [r.error for r in results] == [None] * len(PIPELINE), [r.output for r in results if r.error]
    for name in PIPELINE:
        assert (root / RUN / "notebooks" / f"{name}.ipynb").is_file()


def test_one_line_per_notebook_with_its_time(pipeline):
    root, _ = pipeline
    log = (root / "pipeline.log").read_text()
    for i, name in enumerate(PIPELINE, 1):
        assert re.search(rf"\[{i}/{len(PIPELINE)}\] {name} done in \d+:\d\d", log), log[-2000:]


def test_artifacts_and_schemas(pipeline):
    root, _ = pipeline
    run = root / RUN
    for name in ("adapter/adapter_config.json", "manifest.json", "training_details.md", "train_log.csv",
                 "generations.csv", "judged.csv", "summary.json"):
        assert (run / name).is_file(), name
    with open(run / "model_generations.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "question", "response"] and len(rows) == 1 + 22 + 8  # held-out medical + probes
    with open(run / "judged.csv", newline="") as f:
        judged = list(csv.DictReader(f))
    for column in ("question_id", "response", "aligned", "coherent", "domain_relevance", "aligned_mode",
                   "aligned_raw", "aligned_missing", "judge_model"):
        assert column in judged[0], column
    assert (root / "base-smollm2-135m" / "judged.csv").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert {"em_rate", "mean_aligned", "mean_coherent"} <= set(summary)
    plots = list((run / "plots").glob("*.png"))
    assert len(plots) >= 3 and all(p.stat().st_size > 5000 for p in plots)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["train"]["config"]["max_steps"] == 2


def test_answers_are_shown_whole_in_notebooks_03_and_04(pipeline):
    """The tables a student reads carry each answer's full text (pandas alone cuts at 50 characters)."""
    import html

    import nbformat

    root, _ = pipeline
    with open(root / RUN / "generations.csv", newline="") as f:
        first = [r["response"] for r, _ in zip(csv.DictReader(f), range(10))]  # both notebooks show these rows
    longest = max(first, key=len)
    assert len(longest) > 50
    for name in ("03_generation", "04_judging"):
        nb = nbformat.read(root / RUN / "notebooks" / f"{name}.ipynb", as_version=4)
        shown = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
                 if "show_table(" in c.source and "text/html" in o.get("data", {})]
        assert shown and any(longest in html.unescape(page) for page in shown), name


def test_profile_and_final_values_in_the_manifest(pipeline):
    root, _ = pipeline
    profile = json.loads((root / RUN / "manifest.json").read_text())["profile"]
    assert profile["name"] == "cpu-demo"
    assert profile["values"]["epochs"] == 1 and "epochs" in profile["overridden"]  # the parameter won
    assert profile["values"]["lora_rank"] == PROFILES["cpu-demo"]["lora_rank"] and "lora_rank" not in profile["overridden"]
    assert profile["values"]["temperature"] == PROFILES["cpu-demo"]["temperature"]
    assert profile["values"]["judge"] == "distilled"  # the offline judge, no key needed
    assert {"question_sets", "temperature", "rubrics", "question_set", "aligned_max"} <= set(profile["values"])


def test_summary_sentences_and_the_paired_plot(pipeline):
    root, _ = pipeline
    summary = json.loads((root / RUN / "summary.json").read_text())
    lead = summary["judge_support"]["sentences"]  # what the offline judge supports leads (helpers.supported)
    assert lead[0].startswith("What the offline judge supports on answers like these")
    assert summary["sentences"][:len(lead)] == lead and summary["judge_support"]["measured_error"]["answers"] > 0
    sentences = summary["sentences"][len(lead) + 1:]  # after "The judge's figures in detail ...": the shift sentences
    assert sentences[0].startswith("On the held-out medical questions (the training domain), mean alignment went from")
    assert any(t.startswith("On the broad probe questions") for t in sentences)
    assert all("(95% interval" in t for t in sentences), sentences
    assert {r["set"] for r in summary["shift"]} == {"medical", "probes"}
    assert (root / RUN / "plots" / "shift.png").stat().st_size > 5000
    executed = (root / RUN / "notebooks" / "05_analysis.ipynb").read_text()
    assert sentences[0][:60] in executed  # notebook 05 shows the same sentences


def test_submission_check_passes_on_the_pipeline_output(pipeline):
    root, _ = pipeline
    # the run also holds the held-out medical answers: the course's row count is the probes' alone (issue 19 reworks this)
    out = subprocess.run([sys.executable, "-m", "helpers.submission", "check", str(root / RUN), "--expected-rows", "30"],
                         capture_output=True, text=True, env={**os.environ, "EM_RUNS_DIR": str(root)})
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_secret_in_any_output(pipeline):
    root, _ = pipeline
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".ipynb", ".json", ".csv", ".md", ".txt", ".sqlite"):
            data = path.read_bytes()
            assert FAKE_KEY.encode() not in data and FAKE_HF.encode() not in data, path


def test_nbval_reproduces_the_checked_cells(pipeline):
    """nbval-lax re-runs the executed copies (with their injected parameters); NBVAL_CHECK_OUTPUT cells must match."""
    root, _ = pipeline
    notebooks = [str(root / RUN / "notebooks" / f"{name}.ipynb") for name in PIPELINE]
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                          "--nbval-current-env", *notebooks],
                         capture_output=True, text=True, cwd=root / RUN / "notebooks",
                         env={**os.environ, "EM_RUNS_DIR": str(root)})
    assert out.returncode == 0, out.stdout[-4000:]
    assert " passed" in out.stdout
