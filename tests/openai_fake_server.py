"""A real HTTP server on 127.0.0.1 that speaks OpenAI chat completions (with logprobs), with scripted faults.

Used by the judge tests and `benchmarks/judge_concurrency.py`; run it by hand with
`python tests/openai_fake_server.py --latency 0.1` and point OPENAI_BASE_URL at the URL it prints.
"""

from __future__ import annotations

import argparse
import json
import math
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

DEFAULT_TOP = [("85", 0.6), ("90", 0.25), ("80", 0.1), ("75", 0.03)]
FAULTS = ("429", "500", "timeout", "garbage", "echo_auth", "no_logprobs", "not_chat", "bad_logprobs", "empty_text",
          "junk_tokens")
JUNK_TOP = [("\ufffd", 0.5), ("", 0.2), ("<|", 0.15), ("\u200b", 0.1)]  # line noise with valid probabilities


@dataclass
class Rule:
    """When `match` (a substring of the user message, or a predicate) fits: apply `fault`, or reply with
    `top` (token, probability) pairs / `text`. `times` limits how often the rule fires (None = always)."""

    match: str | Callable[[str], bool]
    fault: str | None = None
    top: list | None = None
    text: str | None = None
    times: int | None = None
    fired: int = 0

    def fits(self, prompt: str) -> bool:
        ok = self.match(prompt) if callable(self.match) else self.match in prompt
        return ok and (self.times is None or self.fired < self.times)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # hundreds of concurrent clients connect at once in the benchmark


class FakeOpenAIServer:
    """Threaded chat-completions server. Counts requests received and answered, per prompt."""

    def __init__(self, latency: float = 0.0, timeout_sleep: float = 2.0,
                 prompt_tokens: int | Callable[[str], int] | None = None):
        # prompt_tokens: the usage each reply reports, a number or a function of the prompt (default len // 4)
        self.latency, self.timeout_sleep, self.prompt_tokens = latency, timeout_sleep, prompt_tokens
        self.rules: list[Rule] = []
        self.requests = 0  # received
        self.answered = 0  # 200 replies fully written
        self.received_prompts: list[str] = []
        self.bodies: list[dict] = []  # request bodies as received
        self.answered_prompts: Counter = Counter()
        # usage of every request the model ran on, as an endpoint bills it: also when the client had gone (a timeout,
        # a kill) before the reply was written; an error status (429, 5xx, 401) is not billed
        self.billed = {"prompt_tokens": 0, "completion_tokens": 0}
        self.auth_headers: set = set()
        self.block_after: int | None = None  # requests beyond this many wait until release()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._httpd = None

    # -- control -------------------------------------------------------------------------------------
    def add_rule(self, match, fault=None, top=None, text=None, times=None) -> Rule:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"fault {fault!r}: pick from {FAULTS}")
        rule = Rule(match, fault, top, text, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def release(self) -> None:
        self._release.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "FakeOpenAIServer":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- behaviour -----------------------------------------------------------------------------------
    def _pick(self, prompt: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.fits(prompt):
                    rule.fired += 1
                    return rule
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body wait on a delayed ACK (~40 ms a reply)
    fake: FakeOpenAIServer

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> bool:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            return True
        except OSError:
            return False

    def _peer_gone(self) -> bool:
        """True when the client hung up (timed out or was killed) while we were sleeping."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def do_GET(self):
        """GET /v1/_stats: the counters, for a client in another process (the benchmark)."""
        fake = self.fake
        with fake._lock:
            stats = {"requests": fake.requests, "answered": fake.answered, **fake.billed}
        self._send(200 if self.path.endswith("/_stats") else 404, json.dumps(stats).encode())

    def do_POST(self):
        fake = self.fake
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        with fake._lock:
            fake.requests += 1
            n = fake.requests
            fake.received_prompts.append(prompt)
            fake.bodies.append(body)
            fake.auth_headers.add(self.headers.get("Authorization", ""))
        if fake.block_after is not None and n > fake.block_after:
            fake._release.wait(60)
        time.sleep(fake.latency)
        rule = fake._pick(prompt)
        fault = rule.fault if rule else None
        retry_fast = {"retry-after": "1", "retry-after-ms": "10"}  # as OpenAI sends; the SDK prefers -ms
        if fault == "429":
            self._send(429, b'{"error": {"message": "Rate limit reached", "type": "rate_limit"}}', retry_fast)
            return
        if fault == "500":
            self._send(500, b'{"error": {"message": "server error", "type": "server_error"}}', retry_fast)
            return
        if fault == "timeout":
            time.sleep(fake.timeout_sleep)  # the client has given up by now
        if fault == "garbage":
            self._send(200, b"<html>this is not json{{{")
            return
        if fault == "not_chat":  # JSON, status 200, but not a chat completion (a proxy's error page, say)
            self._send(200, b'{"object": "error", "message": "upstream overloaded, try later"}')
            return
        if fault == "echo_auth":  # a careless server that echoes the credentials it was sent
            msg = {"error": {"message": f"Incorrect API key provided: {self.headers.get('Authorization')}",
                             "type": "invalid_request_error"}}
            self._send(401, json.dumps(msg).encode(), {"x-should-retry": "false"})
            return
        top = (rule.top if rule and rule.top else None) or (JUNK_TOP if fault == "junk_tokens" else DEFAULT_TOP)
        content = rule.text if rule and rule.text is not None else top[0][0]
        logprobs = None
        if body.get("logprobs") and fault != "no_logprobs":
            k = int(body.get("top_logprobs") or 0)
            first = top[0][0]
            items = [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())} for t, p in top[:k]]
            logprobs = {"content": [{"token": first, "logprob": math.log(top[0][1]), "bytes": list(first.encode()),
                                     "top_logprobs": items}]}
            content = first
        if fault == "bad_logprobs" and logprobs:  # "log-probabilities" above 0: a broken server, not a judge
            for item in logprobs["content"][0]["top_logprobs"]:
                item["token"], item["logprob"] = "\ufffd", 2.5
        if fault == "empty_text":
            content = ""
        if fault == "junk_tokens":
            content = top[0][0]
        counted = fake.prompt_tokens
        tokens_in = len(prompt) // 4 if counted is None else counted(prompt) if callable(counted) else counted
        reply = {"id": f"chatcmpl-fake{n}", "object": "chat.completion", "created": int(time.time()),
                 "model": body.get("model", "fake"),
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                              "logprobs": logprobs, "finish_reason": "length"}],
                 "usage": {"prompt_tokens": tokens_in, "completion_tokens": 1, "total_tokens": tokens_in + 1}}
        with fake._lock:
            fake.billed["prompt_tokens"] += tokens_in
            fake.billed["completion_tokens"] += 1
        if not self._peer_gone() and self._send(200, json.dumps(reply).encode()):
            with fake._lock:
                fake.answered += 1
                fake.answered_prompts[prompt] += 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.0)
    args = ap.parse_args()
    server = FakeOpenAIServer(latency=args.latency).start()
    print(server.url, flush=True)
    threading.Event().wait()
