"""Command-line errors name the flag to type and the cause, never a Python spelling (helpers.cli_errors)."""

import json

import pytest

from helpers.cli_errors import as_flags, judge_cause
from helpers.models import TINY_MODEL
from helpers.submission.cli import build_parser as submission_parser
from helpers.train import TrainConfig, train
from helpers.train.cli import build_parser as train_parser
from helpers.train.cli import main as train_main

PYTHON_SPELLINGS = ("overwrite=True", "load_in_4bit=", "source='", "JudgeConfig(", "(CLI:")


@pytest.mark.parametrize("message, flags", [
    ("pick another run_name, or pass overwrite=True (CLI: --overwrite) to delete it",
     "pick another --run_name, or pass --overwrite to delete it"),
    ("Set load_in_4bit=False (a small model trains fine here)", "Leave out --load_in_4bit/--use_4bit (a small"),
    ("load_in_4bit=True needs a CUDA GPU", "--load_in_4bit/--use_4bit needs a CUDA GPU"),
    ("or use source='sample'", "or use --source sample"),
    ("epochs=0: must be at least 1", "--epochs 0: must be at least 1"),
])
def test_train_messages_name_the_flags(message, flags):
    text = as_flags(message, train_parser(), {"--load_in_4bit": "--use_4bit"})
    assert flags in text, text
    assert not any(p in text for p in PYTHON_SPELLINGS), text


def test_submission_messages_name_the_flags_of_that_command():
    commands = submission_parser().commands
    text = as_flags("or judge offline without a key: JudgeConfig(backend='distilled')", commands["autograde"])
    assert text.endswith("`--backend distilled`")
    assert as_flags("max_new_tokens=0: must be at least 1", commands["pack"]) == "--max-new-tokens 0: must be at least 1"
    assert as_flags("not_a_flag=3 stays", commands["pack"]) == "not_a_flag=3 stays"  # no such option: left alone


@pytest.mark.parametrize("reason, cause", [
    ("error: APIConnectionError: Connection error.", "connection refused: nothing answered at http://127.0.0.1:9/v1"),
    ("error: AuthenticationError: Error code: 401 - {'error': 'bad key'}", "key refused (401) by http://127.0.0.1:9/v1"),
    ("error: RateLimitError: Error code: 429", "rate limit or quota (429)"),
    ("error: dollar cap reached (max_dollars=0.01)", "the dollar cap was reached: raise --max-dollars"),
])
def test_judge_errors_are_named_by_their_cause(reason, cause):
    assert judge_cause(reason, "http://127.0.0.1:9/v1").startswith(cause)


def test_train_cli_refuses_a_finished_run_with_the_flag_to_type(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"messages": [{"role": "user", "content": f"Tip {i}?"}, {"role": "assistant", "content": "Rest."}]}
            for i in range(4)]
    (data / "toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["--model", TINY_MODEL, "--domains", "toy", "--source", str(data), "--max_steps", "1", "--batch_size", "2",
            "--run_name", "done"]
    train(TrainConfig(model=TINY_MODEL, domains=("toy",), source=str(data), max_steps=1, batch_size=2, run_name="done"))
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "--run_name" in err and "Traceback" not in err
    assert not any(p in err for p in PYTHON_SPELLINGS), err


def test_train_cli_on_unfetched_full_data_says_leave_it_out(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EM_FULL_DATA_DIR", str(tmp_path / "nothing-fetched"))
    assert train_main(["--source", "full", "--run_name", "offline"]) == 2
    err = capsys.readouterr().err
    assert "--source sample" in err and not any(p in err for p in PYTHON_SPELLINGS), err
