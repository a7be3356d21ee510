"""`python -m helpers.env`: exit codes, placeholder keys count as missing, no network vs a refused key."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers import env

REPO = Path(__file__).resolve().parents[1]
REAL_LOOKING = "sk-test-THISISNOTAREALKEY0123456789abcdef"


KEYS = ("OPENAI_API_KEY", "HF_TOKEN", "OPENAI_BASE_URL")


@pytest.fixture
def environ():
    """os.environ restored after the test (load_env writes the .env values into it)."""
    saved = dict(os.environ)
    for var in KEYS:
        os.environ.pop(var, None)
    yield
    os.environ.clear()
    os.environ.update(saved)


def run_env(args, cwd, extra=None):
    """`python -m helpers.env ARGS` in-process (the entry is tested once as a subprocess): (exit code, stdout)."""
    import contextlib
    import io

    os.environ.update(extra or {})
    out, here = io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out):
            code = env.main(args)
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(args, code, out.getvalue(), "")


def test_nothing_required_missing_exits_0(tmp_path):
    clean = {k: v for k, v in os.environ.items() if k not in KEYS}
    out = subprocess.run([sys.executable, "-m", "helpers.env", "--offline"], cwd=tmp_path, capture_output=True,
                         text=True, env={**clean, "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[OK  ] python" in out.stdout and "All required pieces are in place." in out.stdout


def test_placeholder_tokens_count_as_missing(tmp_path, environ):
    (tmp_path / ".env").write_text("HF_TOKEN=hf_xxxxxxxx\nOPENAI_API_KEY=<your key here>\n")
    out = run_env(["--offline", "--model", "meta-llama/Llama-3.2-1B-Instruct"], tmp_path)
    assert out.returncode == 1
    assert "[MISS] HF_TOKEN: set to a placeholder" in out.stdout
    assert "[MISS] OPENAI_API_KEY: set to a placeholder" in out.stdout
    assert "[MISS] default model: meta-llama/Llama-3.2-1B-Instruct is gated" in out.stdout
    assert "To fix: OPENAI_API_KEY, HF_TOKEN, default model" in out.stdout


def test_the_example_files_values_are_placeholders(monkeypatch):
    example = env._example_values()
    for var, value in example.items():  # whatever .env.example ships, copying it gives no working key
        monkeypatch.setenv(var, value)
        assert env.secret(var) == (value, True)
    monkeypatch.setenv("HF_TOKEN", "hf_RealLookingToken1234567890")
    assert env.secret("HF_TOKEN") == ("hf_RealLookingToken1234567890", False)


def test_the_openai_judge_makes_the_key_required(tmp_path, environ):
    out = run_env(["--offline", "--judge", "openai"], tmp_path)
    assert out.returncode == 1 and "[MISS] OPENAI_API_KEY: not set: the OpenAI judge needs it" in out.stdout


def test_no_network_is_not_blamed_on_the_key(tmp_path, environ):
    out = run_env([], tmp_path, {"OPENAI_API_KEY": REAL_LOOKING, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert out.returncode == 1
    line = next(x for x in out.stdout.splitlines() if "OPENAI_API_KEY" in x)
    assert "127.0.0.1:9 could not be reached (no network" in line and "the key itself was not checked" in line
    assert "platform.openai.com" not in out.stdout and REAL_LOOKING not in out.stdout


@pytest.fixture
def refusing_server():
    """An OpenAI-compatible endpoint on 127.0.0.1 that refuses every key (401), as OpenAI does for a bad one."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                         "code": "invalid_api_key"}}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_a_refused_key_is_named(refusing_server, tmp_path, environ):
    out = run_env([], tmp_path, {"OPENAI_API_KEY": REAL_LOOKING, "OPENAI_BASE_URL": refusing_server})
    assert out.returncode == 1
    assert "refused it (401: wrong, revoked or mistyped key)" in out.stdout and REAL_LOOKING not in out.stdout
