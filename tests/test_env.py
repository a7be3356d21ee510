"""The setup checklist: no key, a malformed key, a .env two folders up, and keys never printed."""

import contextlib
import io
import os

import pytest

from helpers import env
from helpers.runs import redact
from helpers.gpu import plan as gpu_plan

FAKE_KEY = "sk-test-THISISNOTAREALKEY0123456789abcdef"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("OPENAI_API_KEY", "HF_TOKEN", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _by_name(checks):
    return {c.name: c for c in checks}


def test_no_key_at_all_is_fine(clean_env):
    checks = _by_name(env.setup_checklist(live=False))
    assert checks["OPENAI_API_KEY"].ok is None
    assert "copy .env.example to .env" in checks["OPENAI_API_KEY"].fix
    assert checks["HF_TOKEN"].ok is None
    assert checks["default model"].ok is True
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert env.print_checklist(list(checks.values())) is True


def test_badly_formatted_key_is_named(clean_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "my key here")
    check = env.check_openai_key(live=True)
    assert check.ok is False and "not shaped like an OpenAI key" in check.detail


def test_env_two_folders_up_is_found(clean_env, monkeypatch):
    (clean_env / ".env").write_text(f"OPENAI_API_KEY={FAKE_KEY}\nHF_TOKEN=hf_abcdefghijklmnopqrstuv\n")
    deep = clean_env / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    found = env.load_env()
    assert found == clean_env / ".env"
    assert os.environ["OPENAI_API_KEY"] == FAKE_KEY
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("HF_TOKEN")


def test_key_never_printed_even_when_the_live_check_fails(clean_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens: the call fails fast
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        checks = env.setup_checklist(live=True)
        env.print_checklist(checks)
    text = out.getvalue()
    assert _by_name(checks)["OPENAI_API_KEY"].ok is False
    assert FAKE_KEY not in text and "hf_abcdefghijklmnopqrstuvwxyz" not in text
    assert "sk-te…" in text


def test_redact_masks_values():
    assert FAKE_KEY not in redact(f"error with key {FAKE_KEY}", [FAKE_KEY])
    assert env.mask(None) == "<unset>"


def test_gpu_kernels_line_only_on_cuda_and_names_the_fix():
    assert env.check_gpu_kernels(cuda=False) == []
    [line] = env.check_gpu_kernels(cuda=True)
    if gpu_plan.liger_available():
        assert line.ok is True and line.detail.startswith("liger-kernel ")
    else:  # the CPU install has no liger-kernel (it is the `gpu` extra)
        assert line.ok is None and "liger-kernel" in line.detail and "'.[gpu]'" in line.fix
        assert "fix: pip install -e '.[gpu]'" in line.line()
