"""fetch_reference() against a real HTTP server on 127.0.0.1 serving copies of the judged files (and damaged ones)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers import reference
from helpers.reference import (ReferenceDownloadError, ReferenceHashError, ReferenceNotFoundError, fetch_reference,
                               reference_dir, sha256_of)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "em_judged_responses"
NAMES = sorted(reference.SHA256)


def serve(files: dict[str, bytes]):
    """A real HTTP server on 127.0.0.1: /good/<file> (the real bytes), /bad/<file> (one byte changed),
    /short/<file> (Content-Length of the whole, half the body sent); returns (server, base url, list of paths hit)."""
    hits = []

    def damaged(kind: str, body: bytes) -> tuple[bytes, int]:
        if kind == "bad":
            return body[:-2] + (b"X" if body[-2:-1] != b"X" else b"Y") + body[-1:], len(body)
        return (body[: len(body) // 2] if kind == "short" else body), len(body)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            kind, _, name = self.path.strip("/").partition("/")
            if name not in files or kind not in ("good", "bad", "short"):
                return self.send_error(404)
            body, length = damaged(kind, files[name])
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_port}", hits


class Served:
    """What the tests use: `url` and `hits`."""

    def __init__(self, url, hits):
        self.url, self.hits = url, hits


@pytest.fixture(scope="module")
def server():
    httpd, url, hits = serve({name: (SHARED / name).read_bytes() for name in NAMES})
    yield Served(url, hits)
    httpd.shutdown()
    httpd.server_close()


def test_shared_copies_match_the_pinned_hashes():
    assert [sha256_of((SHARED / n).read_bytes()) for n in NAMES] == [reference.SHA256[n] for n in NAMES]
    assert reference_dir(verify=True) == reference.SHARED_DIR


def test_fetch_downloads_verifies_caches_and_skips_good_files(server, tmp_path, monkeypatch):
    monkeypatch.setenv("EM_KIT_CACHE", str(tmp_path / "cache"))
    dest = fetch_reference(base_url=server.url + "/good")
    assert dest == tmp_path / "cache" / "reference" / "em_judged_responses"
    assert sorted(p.name for p in dest.iterdir()) == NAMES  # no temporary files left behind
    assert all((dest / n).read_bytes() == (SHARED / n).read_bytes() for n in NAMES)
    assert len(server.hits) == 25
    fetch_reference(base_url=server.url + "/good")  # every file already verified: nothing downloaded again
    assert len(server.hits) == 25
    monkeypatch.setattr(reference, "SHARED_DIR", tmp_path / "no-shared")
    assert reference_dir() == dest  # without ../shared the cache is found


def test_wrong_hash_is_a_named_error_and_writes_nothing(server, tmp_path):
    with pytest.raises(ReferenceHashError, match=f"{NAMES[0]}.*expected {reference.SHA256[NAMES[0]]}"):
        fetch_reference(tmp_path / "ref", base_url=server.url + "/bad")
    assert not (tmp_path / "ref").exists() or not list((tmp_path / "ref").iterdir())


def test_truncated_and_missing_files_are_named_errors(server, tmp_path, monkeypatch):
    with pytest.raises(ReferenceDownloadError, match="truncated|failed"):
        fetch_reference(tmp_path / "a", base_url=server.url + "/short")
    with pytest.raises(ReferenceDownloadError, match="HTTP 404"):
        fetch_reference(tmp_path / "b", base_url=server.url + "/nothing-here")
    monkeypatch.setenv("EM_REFERENCE_BASE_URL", server.url + "/good")
    assert sorted(p.name for p in fetch_reference(tmp_path / "c").iterdir()) == NAMES  # the env var is the base URL
    for folder in ("a", "b"):
        assert not (tmp_path / folder).exists() or not list((tmp_path / folder).iterdir())


def test_reference_dir_names_the_fix_when_nothing_is_there(tmp_path, monkeypatch):
    monkeypatch.setattr(reference, "SHARED_DIR", tmp_path / "none")
    monkeypatch.setenv("EM_KIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ReferenceNotFoundError, match=r"fetch_reference\(\)"):
        reference_dir()
