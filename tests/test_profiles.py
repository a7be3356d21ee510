"""Profiles: auto picks from the hardware, a parameter you set wins, the run's model wins, the manifest records both."""

import json
import re

import pytest

from helpers.notebook_runs import notebook_parameters
from helpers.profiles import (IN_DOMAIN, PROFILES, UnknownProfileError, auto_profile, expand_question_sets,
                              profile_for_card, resolve)
from helpers.questions import load_questions
from helpers.runs import REPO_ROOT, read_manifest, write_manifest

PROFILE_NOTEBOOKS = ("02_lora_training", "03_generation", "04_judging", "05_analysis")


def test_auto_is_cpu_demo_without_cuda_and_follows_the_card():
    import torch

    assert not torch.cuda.is_available()  # this machine; the card sizes below are the rule itself
    assert auto_profile() == "cpu-demo" and resolve("auto", epochs=None).profile == "cpu-demo"
    assert [profile_for_card(g) for g in (None, 14.7, 15.8, 22.0, 79.2)] == \
        ["cpu-demo", "colab-t4", "colab-t4", "gpu", "gpu"]


def test_a_parameter_you_set_wins_and_none_takes_the_profile():
    s = resolve("cpu-demo", epochs=5, learning_rate=None, question_sets=["probes"])
    assert s["epochs"] == 5 and s.origin["epochs"] == "parameter"
    assert s["learning_rate"] == PROFILES["cpu-demo"]["learning_rate"] and s.origin["learning_rate"] == "profile cpu-demo"
    assert s["question_sets"] == ["probes"]
    gpu = resolve("gpu", samples_per_question=None, temperature=None)
    assert (gpu["samples_per_question"], gpu["temperature"]) == (50, 1.0)  # the paper's counts and pure sampling
    assert list(s.table()["from"]) == ["parameter", "profile cpu-demo", "parameter"]


def test_profile_values_are_copies():
    s = resolve("cpu-demo", domains=None)
    s["domains"].append("extreme_sports")
    assert PROFILES["cpu-demo"]["domains"] == ["bad_medical_advice"]


def test_unknown_profile_and_unknown_parameter_are_named_errors():
    with pytest.raises(UnknownProfileError, match="pick one of auto, cpu-demo, colab-t4, gpu, paper, course"):
        resolve("laptop", epochs=None)
    with pytest.raises(KeyError, match="'no_such_setting' is None and profile 'cpu-demo' has no value"):
        resolve("cpu-demo", no_such_setting=None)


def test_the_run_keeps_the_model_it_was_trained_on():
    write_manifest("r1", {"config": {"model": "tiny-random-llama", "domains": ["extreme_sports"]}}, section="train")
    s = resolve("gpu", run_name="r1", model=None, domains=None, max_new_tokens=None)
    assert s["model"] == "tiny-random-llama" and s["domains"] == ["extreme_sports"]
    assert s.origin["model"].startswith("run r1") and s["max_new_tokens"] == 600
    assert resolve("gpu", run_name="r1", model="other")["model"] == "other"
    assert resolve("cpu-demo", run_name="never-trained", model=None)["model"] == "smollm2-135m"


def test_manifest_records_profile_and_final_values_merged_across_notebooks():
    resolve("cpu-demo", epochs=1, lora_rank=None).record("r2")
    resolve("auto", temperature=None, samples_per_question=2).record("r2")
    section = read_manifest("r2")["profile"]
    assert section["name"] == "cpu-demo" and section["requested"] == "auto"
    assert section["values"] == {"epochs": 1, "lora_rank": 16, "temperature": PROFILES["cpu-demo"]["temperature"],
                                 "samples_per_question": 2}
    assert section["overridden"] == ["epochs", "samples_per_question"]
    json.dumps(section)  # plain data


def test_in_domain_question_sets_follow_the_training_domains():
    assert expand_question_sets([IN_DOMAIN, "probes", "everyday"], ["bad_medical_advice"]) == \
        ["medical", "probes", "everyday"]
    assert expand_question_sets([IN_DOMAIN, "probes"], ["risky_financial_advice", "extreme_sports"]) == \
        ["financial", "extreme_sports", "probes"]
    assert expand_question_sets([IN_DOMAIN, "probes"], ["insecure"]) == ["probes"]  # code has no held-out set here
    for s in expand_question_sets(PROFILES["cpu-demo"]["question_sets"], PROFILES["cpu-demo"]["domains"]):
        assert load_questions(s)


def test_the_paper_and_course_profiles_name_their_protocols():
    s = resolve("paper", question_sets=None, judge=None, samples_per_question=None, rubrics=None)
    assert s["question_sets"] == ["paper"] and s["judge"] == "openai" and s["samples_per_question"] == 50
    assert s["rubrics"] == "paper"
    c = resolve("course", question_sets=None, epochs=None, lora_rank=None, learning_rate=None, domains=None)
    assert (c["question_sets"], c["epochs"], c["lora_rank"], c["learning_rate"]) == (["course"], 7, 16, 2e-4)
    assert c["domains"] == ["bad_medical_advice", "extreme_sports"]
    assert len(load_questions(c["question_sets"])) == 20  # the hand-in's 20 rows


def test_notebooks_take_a_profile_and_every_cpu_demo_value_is_a_parameter():
    from_profile = set()
    for nb in PROFILE_NOTEBOOKS:
        params = notebook_parameters(nb)
        assert params.get("profile") == '"auto"', nb
        from_profile |= {k for k, v in params.items() if v == "None"}
        source = (REPO_ROOT / "notebooks" / f"{nb}.py").read_text()
        assert not re.search(r"#.*\bGPU:", source), f"{nb}.py still has a 'GPU: ...' comment"
    missing = [k for k in PROFILES["cpu-demo"] if k not in from_profile]
    assert not missing, f"profile values that no notebook takes as a None (= from the profile) parameter: {missing}"


def test_auto_judge_is_openai_with_a_key_or_server_and_offline_without(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env above this folder
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    from helpers.judge import JudgeConfig

    assert JudgeConfig(backend="auto").backend == "distilled" and JudgeConfig(backend="local").backend == "local"
    assert JudgeConfig(backend="auto", base_url="http://127.0.0.1:8000/v1").backend == "openai"
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-test-0123456789abcdefghijklmnop\n")
    assert JudgeConfig(backend="auto").backend == "openai"  # a key in .env counts
    assert resolve("colab-t4", judge=None)["judge"] == "auto"


def test_choosing_another_judge_drops_the_profiles_judge_model():
    paper = resolve("paper", judge="distilled", judge_model=None)
    assert (paper["judge"], paper["judge_model"]) == ("distilled", "")  # not labelled as GPT-4o when scored offline
    assert resolve("paper", judge=None, judge_model=None)["judge_model"] == "gpt-4o-2024-08-06"
    assert resolve("paper", judge="openai", judge_model=None)["judge_model"] == "gpt-4o-2024-08-06"
