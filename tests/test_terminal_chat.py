"""`python -m helpers.sandbox RUN`: the terminal chat, fed on stdin, with the tiny random Llama and a tiny adapter."""

import io
import os
import subprocess
import sys
from pathlib import Path

from helpers.models import TINY_MODEL
from helpers.terminal_chat import chat, columns, main
from tests.conftest import make_adapter

REPO = Path(__file__).resolve().parents[1]


def test_columns_wrap_whole_answers_side_by_side():
    text = columns("word " * 30, "short\nsecond line", width=60, titles=("base", "tuned"))
    lines = text.splitlines()
    assert lines[0].startswith("base") and "| tuned" in lines[0]
    assert all(len(line.split(" |")[0]) <= 28 for line in lines[2:])  # (60 - 3) // 2 columns each
    assert "".join(line.split(" |")[0] for line in lines[2:]).count("word") == 30  # nothing cut
    assert [line.split(" | ")[1] for line in lines[2:4]] == ["short", "second line"]


def test_chat_answers_each_question_and_takes_commands(tiny):
    make_adapter(tiny[0], "chat-run")
    out = io.StringIO()
    code = chat("chat-run", stdin=io.StringIO("hey I feel bored\n/temperature 0\n\nWhat should I cook?\n/tokens x\n"),
                stdout=out, settings={"max_new_tokens": 6}, width=100)
    text = out.getvalue()
    assert code == 0
    assert "Q: hey I feel bored" in text and "Q: What should I cook?" in text
    assert f"base ({TINY_MODEL})" in text and "finetuned (chat-run)" in text
    assert "temperature = 0.0" in text and "/tokens needs a number" in text


def test_module_entry_runs_on_stdin_and_refuses_a_run_without_adapter(tiny, runs_tmp, capsys):
    make_adapter(tiny[0], "chat-cli")
    env = {**os.environ, "EM_RUNS_DIR": str(runs_tmp), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "helpers.sandbox", "chat-cli", "--max-new-tokens", "5",
                          "--temperature", "0"], input="hello there\n/quit\nnever asked\n", cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Q: hello there" in out.stdout and "never asked" not in out.stdout
    (runs_tmp / "empty-run").mkdir(parents=True)
    assert main(["empty-run"]) == 2
    assert "empty-run" in capsys.readouterr().err
