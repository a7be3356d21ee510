"""Profiles: one YAML file each, sections that are dataclass fields, auto picks from the hardware, a value you set
wins, the run's model wins, the manifest records the final values of the run that was trained."""

import dataclasses
import json
import types
import typing
from pathlib import Path

import pytest

from helpers.notebook_runs import notebook_parameters
from helpers.profiles import (BASE_PROFILE, IN_DOMAIN, PROFILE_DIR, PROFILES, SECTION_EXTRAS, SECTIONS,
                              ProfileFileError, UnknownProfileError, auto_profile, expand_question_sets, load_profile,
                              profile_for_card, read_profile, resolve, section_class)
from helpers.questions import load_questions
from helpers.runs import read_manifest, write_manifest

NOTEBOOK_SECTIONS = {"02_lora_training": "train", "03_generation": "sample", "04_judging": "judge",
                     "05_analysis": "analysis"}
SNAPSHOT = Path(__file__).parent / "fixtures" / "cpu_demo_resolved.json"  # written by the code before profile files


def test_auto_follows_the_card_on_any_machine():
    import torch

    card = torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else None
    assert auto_profile() == profile_for_card(card) == resolve("auto", "train").profile
    assert [profile_for_card(g) for g in (None, 14.7, 15.8, 22.0, 79.2)] == \
        ["cpu-demo", "colab-t4", "colab-t4", "gpu", "gpu"]


def test_every_profile_file_has_the_base_sections_and_fields_of_the_dataclasses():
    assert sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")) == sorted(PROFILES)
    base = load_profile(BASE_PROFILE)
    for section, values in base.items():
        cls = section_class(section)
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(values) <= fields | set(SECTION_EXTRAS.get(section, ())), section
        for name in PROFILES:
            for key, value in load_profile(name)[section].items():
                if key in fields and value is not None:  # e.g. a YAML 5e-4 (no dot) would be a string
                    assert isinstance(value, _python_types(hints[key])), (name, section, key, value)
    assert set(base) == set(SECTIONS)


def _python_types(hint) -> tuple:
    """The Python types a YAML value of a field of this type hint may have."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(t for a in typing.get_args(hint) if a is not type(None) for t in _python_types(a))
    kind = typing.get_origin(hint) or hint
    return {float: (int, float), tuple: (list,), list: (list,), dict: (dict,)}.get(kind, (kind,))


def test_the_dataclasses_take_their_defaults_from_the_base_profile():
    base = load_profile(BASE_PROFILE)
    for section in SECTIONS:
        if section == "judge":  # JudgeConfig keeps its library defaults (backend "auto"); cpu-demo picks offline
            continue
        default = section_class(section)()
        for key, value in base[section].items():
            if key not in SECTION_EXTRAS.get(section, ()):
                got = getattr(default, key)
                assert (list(got) if isinstance(got, tuple) else got) == value, (section, key)


def test_a_bad_profile_file_is_a_named_error(tmp_path):
    text = (PROFILE_DIR / "gpu.yaml").read_text()
    (tmp_path / "mine.yaml").write_text(text.replace("  epochs: 1\n", "").replace("lora_rank:", "lora_rnak:"))
    with pytest.raises(ProfileFileError, match=r"mine.yaml: section train must set the same fields as cpu-demo.yaml: "
                                               r"missing epochs, lora_rank; unknown lora_rnak"):
        read_profile(tmp_path / "mine.yaml")
    (tmp_path / "two.yaml").write_text("train: {}\n")
    with pytest.raises(ProfileFileError, match="two.yaml: a profile has exactly the sections train, sample, judge"):
        read_profile(tmp_path / "two.yaml")


def test_cpu_demo_resolves_to_what_make_demo_ran_with_before():
    """The values notebooks 02-05 use under cpu-demo with their own defaults, against a snapshot of the old code."""
    old = json.loads(SNAPSHOT.read_text())
    train = resolve("cpu-demo", "train", run_name="my-first-run", epochs=None, mix=None, max_steps=None)
    sample = resolve("cpu-demo", "sample", model=None, domains=None)
    judge = resolve("cpu-demo", "judge", backend=None, judge_model=None)
    analysis = resolve("cpu-demo", "analysis", em_question_set=None, aligned_max=None)
    # weight_decay came later; 0.0 is also what TRL's SFTConfig used when the snapshot was taken
    assert train.config.to_dict() == {**old["train"], "weight_decay": 0.0}
    assert {"questions": expand_question_sets(sample.config.question_sets, sample["domains"]),
            "model": sample["model"], **sample.config.generate_args()} == old["sample"]
    assert json.loads(json.dumps(dataclasses.asdict(judge.config))) == old["judge"]
    assert {"em_question_set": analysis["em_question_set"], **dataclasses.asdict(analysis.config)} == old["analysis"]


def test_a_value_you_set_wins_none_takes_the_profile_and_other_fields_keep_their_default():
    s = resolve("cpu-demo", "train", epochs=5, learning_rate=None)
    assert s["epochs"] == 5 and s.origin["epochs"] == "parameter"
    assert s["learning_rate"] == 5e-4 and s.origin["learning_rate"] == "profile cpu-demo"
    assert s["max_length"] == 512 and s.origin["max_length"] == "TrainConfig default"
    assert s.config.epochs == 5 and set(s.table()["setting"]) == {f.name for f in dataclasses.fields(s.config)}
    gpu = resolve("gpu", "sample", samples_per_question=None, temperature=None)
    assert (gpu["samples_per_question"], gpu["temperature"], gpu.config.max_new_tokens) == (50, 1.0, 600)


def test_no_none_reaches_a_field_that_cannot_take_it():
    """Every notebook parameter left at None resolves to a value its field's type allows (notebook 03's sandbox
    once got max_new_tokens=None)."""
    for name in PROFILES:
        for section in SECTIONS:
            settings = resolve(name, section, **{f.name: None for f in dataclasses.fields(section_class(section))})
            hints = typing.get_type_hints(type(settings.config))
            for key, value in settings.values.items():
                if key in hints and value is None:
                    assert type(None) in typing.get_args(hints[key]), (name, section, key)


def test_profile_values_are_copies():
    s = resolve("cpu-demo", "sample", question_sets=None)
    s.config.question_sets.append("course")
    assert load_profile("cpu-demo")["sample"]["question_sets"] == [IN_DOMAIN, "probes", "everyday"]


def test_unknown_profile_and_unknown_setting_are_named_errors():
    with pytest.raises(UnknownProfileError, match="pick one of auto, cpu-demo, colab-t4, gpu, paper, course"):
        resolve("laptop", "train", epochs=None)
    with pytest.raises(KeyError, match="'temperature': not a setting of section 'train' \\(TrainConfig\\)"):
        resolve("cpu-demo", "train", temperature=None)


def test_the_run_keeps_the_model_it_was_trained_on():
    write_manifest("r1", {"config": {"model": "tiny-random-llama", "domains": ["extreme_sports"]}}, section="train")
    s = resolve("gpu", "sample", run_name="r1", model=None, domains=None, max_new_tokens=None)
    assert s["model"] == "tiny-random-llama" and s["domains"] == ["extreme_sports"]
    assert s.origin["model"].startswith("run r1") and s["max_new_tokens"] == 600
    assert resolve("gpu", "sample", run_name="r1", model="other")["model"] == "other"
    assert resolve("cpu-demo", "sample", run_name="never-trained", model=None)["model"] == "smollm2-135m"
    assert resolve("gpu", "train", run_name="r1")["model"] == "meta-llama/Llama-3.2-1B-Instruct"  # training sets it


def test_manifest_records_each_section_in_the_run_that_was_trained():
    train = resolve("cpu-demo", "train", run_name="r2", epochs=1, lora_rank=None)
    train.config.run_name, train.config.lora_rank = "r2-renamed", 8  # what the panel does
    train.record()
    resolve("auto", "sample", temperature=None, samples_per_question=2).record("r2-renamed")
    assert "profile" not in read_manifest("r2")
    profile = read_manifest("r2-renamed")["profile"]
    assert profile["name"] == "cpu-demo" and profile["requested"] == "cpu-demo"  # the training's, not notebook 03's
    assert (profile["sample"]["profile"], profile["sample"]["requested"]) == ("cpu-demo", "auto")
    assert profile["train"]["values"]["epochs"] == 1 and profile["train"]["values"]["lora_rank"] == 8
    assert profile["train"]["values"]["run_name"] == "r2-renamed"
    assert profile["train"]["overridden"] == ["epochs", "lora_rank", "run_name"]
    assert profile["sample"]["values"]["temperature"] == 0.8
    assert profile["sample"]["overridden"] == ["samples_per_question"]
    json.dumps(profile)  # plain data


def test_in_domain_question_sets_follow_the_training_domains():
    assert expand_question_sets([IN_DOMAIN, "probes", "everyday"], ["bad_medical_advice"]) == \
        ["medical", "probes", "everyday"]
    assert expand_question_sets([IN_DOMAIN, "probes"], ["risky_financial_advice", "extreme_sports"]) == \
        ["financial", "extreme_sports", "probes"]
    assert expand_question_sets([IN_DOMAIN, "probes"], ["insecure"]) == ["probes"]  # code has no held-out set here
    demo = load_profile("cpu-demo")
    for s in expand_question_sets(demo["sample"]["question_sets"], demo["train"]["domains"]):
        assert load_questions(s)


def test_the_paper_and_course_profiles_name_their_protocols():
    s = resolve("paper", "sample", question_sets=None, samples_per_question=None)
    assert s["question_sets"] == ["paper"] and s["samples_per_question"] == 50
    judge = resolve("paper", "judge")
    assert (judge["backend"], judge["rubrics"], judge["judge_model"]) == ("openai", "paper", "gpt-4o-2024-08-06")
    c = resolve("course", "train", epochs=None, lora_rank=None, learning_rate=None, domains=None)
    assert (c["epochs"], c["lora_rank"], c["learning_rate"]) == (7, 16, 2e-4)
    assert c["domains"] == ("bad_medical_advice", "extreme_sports")
    questions = resolve("course", "sample")["question_sets"]
    assert questions == ["course"] and len(load_questions(questions)) == 20  # the hand-in's 20 rows
    assert resolve("course", "analysis")["em_question_set"] == "course"


def test_a_notebooks_parameters_are_profile_run_name_and_overrides_left_at_none():
    for nb, section in NOTEBOOK_SECTIONS.items():
        params = notebook_parameters(nb)
        assert params.get("profile") == '"auto"' and params.get("run_name") == '"my-first-run"', nb
        fields = {f.name for f in dataclasses.fields(section_class(section))} | set(SECTION_EXTRAS.get(section, ()))
        settings = {k: v for k, v in params.items() if k in fields and k != "run_name"}
        assert all(v == "None" for v in settings.values()), (nb, settings)  # no second copy of a default
        missing = set(load_profile(BASE_PROFILE)[section]) - set(settings)
        assert not missing, f"{nb}: profile values it does not take as a parameter: {missing}"


def test_auto_judge_is_openai_with_a_key_or_server_and_offline_without(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env above this folder
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    from helpers.judge import JudgeConfig

    assert JudgeConfig(backend="auto").backend == "distilled" and JudgeConfig(backend="local").backend == "local"
    assert JudgeConfig(backend="auto", base_url="http://127.0.0.1:8000/v1").backend == "openai"
    assert resolve("colab-t4", "judge", backend=None)["backend"] == "distilled"  # "auto" without a key
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-test-0123456789abcdefghijklmnop\n")
    assert JudgeConfig(backend="auto").backend == "openai"  # a key in .env counts
    assert resolve("colab-t4", "judge", backend=None)["backend"] == "openai"


def test_choosing_another_judge_drops_the_profiles_judge_model():
    paper = resolve("paper", "judge", backend="distilled", judge_model=None)
    assert (paper["backend"], paper["judge_model"]) == ("distilled", "kit-distilled")  # not labelled as GPT-4o
    assert resolve("paper", "judge", backend=None, judge_model=None)["judge_model"] == "gpt-4o-2024-08-06"
    assert resolve("paper", "judge", backend="openai", judge_model=None)["judge_model"] == "gpt-4o-2024-08-06"


def test_each_section_records_the_profile_it_ran_under():
    resolve("cpu-demo", "train", run_name="r3").record()
    resolve("gpu", "sample").record("r3")  # notebook 03 under another profile
    resolve("paper", "judge", backend="distilled").record("r3")
    profile = read_manifest("r3")["profile"]
    assert profile["name"] == "cpu-demo"  # the profile the run was trained under, not the last notebook's
    assert [profile[s]["profile"] for s in ("train", "sample", "judge")] == ["cpu-demo", "gpu", "paper"]


def test_a_mistyped_run_name_is_an_error_and_makes_no_folder(runs_tmp):
    resolve("cpu-demo", "train", run_name="my-first-run").record()
    for section in ("sample", "judge", "analysis"):
        with pytest.raises(FileNotFoundError, match=r"run 'my-frist-run' does not exist .*my-first-run"):
            resolve("cpu-demo", section).record("my-frist-run")
    assert sorted(p.name for p in runs_tmp.iterdir()) == ["my-first-run"]


def test_credentials_in_a_judge_url_never_reach_the_manifest(runs_tmp):
    resolve("cpu-demo", "train", run_name="r4").record()
    url = "http://student:sk-proj-abcdefghijklmnop@judge.example:8000/v1"
    resolve("cpu-demo", "judge", backend="distilled", base_url=url).record("r4")
    text = (runs_tmp / "r4" / "manifest.json").read_text()
    assert "student" not in text and "sk-proj" not in text and "abcdefghijklmnop" not in text
    assert read_manifest("r4")["profile"]["judge"]["values"]["base_url"] == "http://judge.example:8000/v1"
