"""Run folders: atomic writes, manifests without secrets, names."""

import json

import pandas as pd
import pytest

from helpers.runs import atomic_write_csv, base_run_name, read_manifest, run_dir, write_manifest


def test_atomic_csv_keeps_rows_whole(tmp_path):
    df = pd.DataFrame({"response": ["one\rtwo", "three\r\nfour", "plain"], "n": [1, 2, 3]})
    atomic_write_csv(df, tmp_path / "x.csv")
    back = pd.read_csv(tmp_path / "x.csv")
    assert list(back.n) == [1, 2, 3] and list(back.response) == ["one\ntwo", "three\nfour", "plain"]
    assert not list(tmp_path.glob(".x.csv.*"))  # no temp file left behind


def test_manifest_merges_sections_and_scrubs_secrets(runs_tmp):
    write_manifest("r1", {"config": {"lr": 0.1}}, section="train")
    write_manifest("r1", {"api_key": "sk-secret-value", "judge_model": "gpt-4o-mini"}, section="judge")
    manifest = read_manifest("r1")
    assert manifest["train"]["config"]["lr"] == 0.1
    assert manifest["judge"]["api_key"] == "<redacted>"
    assert "sk-secret-value" not in (runs_tmp / "r1" / "manifest.json").read_text()


def test_broken_manifest_is_a_named_error(runs_tmp):
    (run_dir("r2") / "manifest.json").write_text("{oops")
    with pytest.raises(ValueError, match="manifest.json: not valid JSON"):
        read_manifest("r2")


def test_names():
    assert base_run_name("meta-llama/Llama-3.2-1B-Instruct") == "base-Llama-3.2-1B-Instruct"
    assert base_run_name("smollm2-135m") == "base-smollm2-135m"
    with pytest.raises(ValueError, match="plain name"):
        run_dir(" spaced ")
    assert json.loads(json.dumps(read_manifest("nothing-here"))) == {}


def test_run_names_are_confined_to_runs(runs_tmp):
    for name, message in [(".", "runs/ itself"), ("..", "the folder above runs/"), ("../x", r"goes up with '\.\.'"),
                          ("runs/../../x", r"goes up with '\.\.'"), ("a" * 300, "300 characters long.*limit is 100"),
                          ("é" * 150, r"150 characters long \(300 bytes\)"), ("tab\there", "control character")]:
        with pytest.raises(ValueError, match=message):
            run_dir(name)
    assert not runs_tmp.exists() and not (runs_tmp.parent / "x").exists()
    assert run_dir("my-run") == runs_tmp / "my-run" and run_dir(str(runs_tmp / "other")) == runs_tmp / "other"
