"""What the notebooks show, as a student reads it (the browser pass of issue 24): one-line guards, panel and
sandbox widgets, counts as integers, the judge named in words, the trust table and failure modes."""

import pandas as pd
import pytest

from helpers.train import RunFinishedError, TrainConfig


def test_a_finished_run_ends_in_one_line_with_the_fix_not_a_traceback():
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    shell.user_ns["RunFinishedError"] = RunFinishedError
    with capture_output() as shown:
        shell.run_cell("raise RunFinishedError(\"run 'x' already finished training with other settings (changed: "
                       "epochs): pick another run_name, or pass overwrite=True\")")
    lines = [ln for ln in shown.stdout.splitlines() + shown.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "RunFinishedError" in lines[0] and "overwrite=True" in lines[0], lines
    assert "Traceback" not in shown.stdout + shown.stderr


def test_the_panel_shows_its_confirmation_on_top_and_whole_values():
    from helpers.widgets import config_panel

    panel = config_panel(TrainConfig(), fields=["epochs", "target_modules", "run_name"])
    status = panel.children[0]
    assert "confirms" in status.value  # the first line, in sight of every row
    panel.fields["epochs"].value = 5
    assert status.value.endswith("epochs = 5</span>")
    box = panel.fields["target_modules"]
    width = int(box.layout.width.removesuffix("px"))
    assert len(box.value) > 50 and width >= 8 * len(box.value)  # "q_proj, k_proj, ... down_proj" not cut off


def test_the_sandbox_takes_a_setting_left_at_none(tiny):
    from helpers.widgets import chat_sandbox

    sandbox = chat_sandbox(tiny, None, temperature=None, top_p=None, max_new_tokens=None)  # notebook 03's defaults
    assert sandbox.max_new_tokens.value == 150 and sandbox.temperature.value == 0.7 and sandbox.top_p.value == 1.0


def test_judge_summary_counts_are_integers():
    from helpers.judge import judge_summary

    judged = pd.DataFrame({"aligned": [80.0, None, 20.0], "aligned_missing": ["", "refusal", ""],
                           "coherent": [90.0, 50.0, None], "coherent_missing": ["", "", "error: timeout"]})
    table = judge_summary(judged, ["aligned", "coherent"])
    assert table.loc["aligned", "scored"] == 2 and str(table["scored"].dtype).startswith("int")
    assert "153.0" not in table.assign(scored=153).to_string() and "  2  " in f" {table.to_string()} "
    assert table["mean"].dtype == float


def test_the_trust_table_and_failure_modes_stay_in_the_notebook():
    from helpers.judge.distilled import card_section, trust_table

    assert not [i for i in trust_table().index if "issue" in i or "target" in i]
    section = card_section("Known failure modes")
    assert section.startswith("## Known failure modes") and " above" not in section
    pointers = [p for p in section.split("see ")[1:]]
    assert pointers and all("MODEL_CARD.md" in p.split(")")[0] + p.split(".")[0] for p in pointers), section


@pytest.mark.parametrize("judge, words", [
    ({}, "not recorded (judge the run with notebook 04)"),
    ({"backend": "distilled", "judge_model": "", "rubrics": "kit"}, "the offline distilled judge"),
    ({"backend": "openai", "judge_model": "gpt-4o-mini", "rubrics": "kit"},
     "gpt-4o-mini (OpenAI-compatible API), the kit's rubrics"),
    ({"backend": "openai", "judge_model": "gpt-4o-2024-08-06", "rubrics": "paper"},
     "gpt-4o-2024-08-06 (OpenAI-compatible API), the EM paper's prompts"),
])
def test_judged_by_in_words(judge, words):
    from helpers.analysis import judged_by_text
    from helpers.runs import write_manifest

    if judge:
        write_manifest("r", judge, section="judge")
    text = judged_by_text("r")
    assert text.startswith(words) and "{" not in text


def test_the_base_model_is_sampled_once_for_the_same_settings(tiny, capsys):
    from helpers.generate.reuse import generate_once
    from helpers.models import TINY_MODEL
    from helpers.questions import load_questions

    questions = load_questions("probes")[:3]
    first = generate_once(TINY_MODEL, questions, run_name="base-tiny", max_new_tokens=6, progress=False)
    assert "read back" not in capsys.readouterr().out
    again = generate_once(TINY_MODEL, questions, run_name="base-tiny", max_new_tokens=6, progress=False)
    assert "read back, not sampled again" in capsys.readouterr().out
    assert again["response"].tolist() == first["response"].tolist() and again["id"].tolist() == first["id"].tolist()
    other = generate_once(TINY_MODEL, questions, run_name="base-tiny", max_new_tokens=5, progress=False)
    assert "read back" not in capsys.readouterr().out and len(other) == 3  # other settings: sampled
    fewer = generate_once(TINY_MODEL, questions[:2], run_name="base-tiny", max_new_tokens=5, progress=False)
    assert "read back" not in capsys.readouterr().out and len(fewer) == 2  # other questions: sampled
