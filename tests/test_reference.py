"""fetch_reference() against a real HTTP server on 127.0.0.1 serving copies of the judged files (and damaged ones)."""

from pathlib import Path

import pytest
from file_server import FileServer

from helpers.judge_lab import reference
from helpers.judge_lab.reference import (ReferenceDownloadError, ReferenceHashError, ReferenceNotFoundError, fetch_reference,
                               reference_dir, sha256_of)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "em_judged_responses"
NAMES = sorted(reference.SHA256)


def _damaged(body: bytes) -> bytes:
    return body[:-2] + (b"X" if body[-2:-1] != b"X" else b"Y") + body[-1:]


@pytest.fixture(scope="module")
def server():
    """/good/<file> (the real bytes), /bad/<file> (one byte changed), /short/<file> (half the body sent)."""
    bodies = {name: (SHARED / name).read_bytes() for name in NAMES}
    files = {f"/good/{n}": b for n, b in bodies.items()} | {f"/bad/{n}": _damaged(b) for n, b in bodies.items()}
    files |= {f"/short/{n}": b for n, b in bodies.items()}
    served = FileServer(files, short=[f"/short/{n}" for n in NAMES])
    yield served
    served.close()


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
