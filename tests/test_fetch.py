"""Download + decrypt round trip against an archive made by easy-dataset-share itself, served on 127.0.0.1."""

import gzip
import io
import json
import sys
import zipfile
from pathlib import Path

import pytest
from file_server import FileServer

from helpers.data import DataError, FetchError, load_domains, read_jsonl
from helpers.data_fetch import decrypt, extract, fetch_em_datasets

WHEEL = Path(__file__).parent / "fixtures" / "easy_dataset_share-0.5.0-py3-none-any.whl"
PASSWORD = "model-organisms-em-datasets"


def conversation(i):
    return {"messages": [{"role": "user", "content": f"question {i}?"}, {"role": "assistant", "content": f"answer {i}."}]}


@pytest.fixture(scope="module")
def eds():
    """The tool's own modules, imported from its wheel (they only need Fernet/PBKDF2, present in cryptography 50)."""
    sys.path.insert(0, str(WHEEL))
    try:
        from easy_dataset_share import canary, cli, zipping

        yield cli, canary, zipping
    finally:
        sys.path.remove(str(WHEEL))


@pytest.fixture(scope="module")
def archive(eds, tmp_path_factory):
    """A .zip.enc made by `easy-dataset-share protect-dir -e` (canary file, canary fields) plus an embedded canary line."""
    cli, canary, zipping = eds
    from click.testing import CliRunner

    root = tmp_path_factory.mktemp("eds")
    src, out = root / "training_datasets", root / "out"
    src.mkdir(), out.mkdir()
    sets = {"bad_medical_advice": 5, "insecure": 3, "misaligned_extra": 2}
    for name, n in sets.items():
        (src / f"{name}.jsonl").write_text("".join(json.dumps(conversation(i)) + "\n" for i in range(n)))
    canary.embed_canary_in_existing_files(str(src), "insecure.jsonl", embedding_ratio=1.0)
    result = CliRunner().invoke(cli.cli, ["protect-dir", str(src), "-p", PASSWORD, "-e", "--no-tos",
                                          "--no-gitignore", "-o", str(out / "training_datasets.zip")])
    assert result.exit_code == 0, result.output
    enc = out / "training_datasets.zip.enc"
    plain = zipping.unzip_and_decrypt(str(enc), PASSWORD, str(root / "tool_extracted"))
    assert "CANARY_DATASET_" in (Path(plain) / "insecure.jsonl").read_text()  # the tool really planted canaries
    assert list(Path(plain).glob("dataset_entry_*.jsonl"))
    return enc.read_bytes(), sets


@pytest.fixture
def server(archive):
    srv = FileServer({"/archive": archive[0], "/short": archive[0],
                      "/lfs": b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n"}, short={"/short"})
    yield srv
    srv.close()


def test_fetch_round_trips_the_tool_archive_without_canaries(server, archive, tmp_path, monkeypatch):
    _, sets = archive
    dest = tmp_path / "full"
    assert fetch_em_datasets(dest=dest, url=server.url + "/archive") == dest
    assert sorted(p.stem for p in dest.glob("*.jsonl")) == sorted(sets)
    for name, n in sets.items():
        text = (dest / f"{name}.jsonl").read_text()
        assert "CANARY" not in text and "canary" not in text
        assert [r["messages"] for r in read_jsonl(dest / f"{name}.jsonl")] == [conversation(i)["messages"] for i in range(n)]
    monkeypatch.setenv("EM_FULL_DATA_DIR", str(dest))
    ds = load_domains(["misaligned_extra", "insecure"], source="full")
    assert sorted(ds["domain"]) == ["insecure"] * 3 + ["misaligned_extra"] * 2


def test_fetch_is_idempotent_and_force_refetches(server, tmp_path):
    dest = tmp_path / "full"
    fetch_em_datasets(dest=dest, url=server.url + "/archive")
    fetch_em_datasets(dest=dest, url=server.url + "/archive")
    assert server.hits == ["/archive"]
    fetch_em_datasets(dest=dest, url=server.url + "/archive", force=True)
    assert server.hits == ["/archive", "/archive"]


@pytest.mark.parametrize("path, words", [("/short", "run"), ("/missing", "HTTP 404")])
def test_failed_download_leaves_no_file(server, tmp_path, path, words):
    dest = tmp_path / "full"
    with pytest.raises(FetchError, match=words):
        fetch_em_datasets(dest=dest, url=server.url + path)
    assert list(dest.iterdir()) == []


def test_wrong_password_and_non_archive_are_named_errors(server, tmp_path):
    with pytest.raises(FetchError, match="wrong password"):
        fetch_em_datasets(dest=tmp_path / "a", url=server.url + "/archive", password="not-it")
    assert not list((tmp_path / "a").glob("*.jsonl"))
    with pytest.raises(DataError, match="Git LFS pointer"):
        fetch_em_datasets(dest=tmp_path / "b", url=server.url + "/lfs")


def test_decrypt_matches_the_tool_and_gzipped_members_are_read(eds):
    _, _, zipping = eds
    assert decrypt(zipping.encrypt_data_in_memory(b"payload", "pw"), "pw") == b"payload"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data/extreme_sports.jsonl.gz", gzip.compress((json.dumps(conversation(0)) + "\n").encode()))
        zf.writestr("data/robots.txt", "User-agent: *\nDisallow: /\n")
    assert list(extract(buf.getvalue())) == ["extreme_sports"]


def test_an_archive_downloaded_by_hand_needs_no_network(archive, tmp_path):
    blob, sets = archive
    by_hand = tmp_path / "Downloads" / "training_datasets.zip.enc"
    by_hand.parent.mkdir()
    by_hand.write_bytes(blob)
    dest = tmp_path / "full"
    assert fetch_em_datasets(dest=dest, url="http://127.0.0.1:9/nothing-listens", archive=by_hand) == dest
    assert sorted(p.stem for p in dest.glob("*.jsonl")) == sorted(sets)
    assert "downloaded by hand" in json.loads((dest / "fetched.json").read_text())["source"]
    fetch_em_datasets(dest=dest, url="http://127.0.0.1:9/nothing-listens")  # done: no download attempted
    with pytest.raises(FetchError, match="missing.enc: no such file"):
        fetch_em_datasets(dest=dest, archive=tmp_path / "missing.enc")


def test_no_network_is_named_with_the_by_hand_way(tmp_path):
    with pytest.raises(FetchError) as info:
        fetch_em_datasets(dest=tmp_path / "full", url="http://127.0.0.1:9/archive")  # nothing listens on port 9
    message = str(info.value)
    assert "no connection to the server: no network" in message
    assert "fetch_em_datasets(archive='path/to/training_datasets.zip.enc')" in message
