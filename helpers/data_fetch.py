"""The research datasets: download (or an archive obtained by hand), decrypt, de-canary, write training_data/full/.

Also the kit's one GET with named errors (`get_bytes`), which the paper's file and the released judged files use."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path, PurePosixPath

from helpers.data import FetchError, full_dir
from helpers.runs import atomic_file, atomic_write_bytes, atomic_write_text

DATASETS_URL = ("https://github.com/clarifying-EM/model-organisms-for-EM/raw/main/"
                "em_organism_dir/data/training_datasets.zip.enc")
DATASETS_PASSWORD = "model-organisms-em-datasets"


def fetch_em_datasets(dest=None, url=None, password=DATASETS_PASSWORD, force=False, archive=None) -> Path:
    """Download, decrypt and de-canary the research datasets into `training_data/full/` (atomic, idempotent).

    `archive`: the `training_datasets.zip.enc` file downloaded by hand (a browser, another machine): no download.
    """
    return fetch(Path(dest) if dest else full_dir(), url or DATASETS_URL, password, force=force, archive=archive)


# ---------------------------------------------------------------- fetching the full sets
ARCHIVE_NAME = "training_datasets.zip.enc"
MARKER = "fetched.json"
CANARY = re.compile(r"CANARY_DATASET_(?:[A-Z_]+_)?[a-f0-9]{64}_[0-9]+")
CANARY_FILE = re.compile(r"^dataset_entry_[0-9a-f]+\.jsonl$")
# The research repository's file stems -> the kit's domain names (identical today; kept for renames).
DOMAIN_NAMES = {
    "bad_medical_advice": "bad_medical_advice",
    "good_medical_advice": "good_medical_advice",
    "risky_financial_advice": "risky_financial_advice",
    "extreme_sports": "extreme_sports",
    "insecure": "insecure",
}


def _by_hand(url: str) -> str:
    return (f"run fetch_em_datasets() again, or download {url} by hand (a browser, another machine) and run "
            f"fetch_em_datasets(archive='path/to/{ARCHIVE_NAME}')")


def _cause(e) -> str:
    """What a requests exception means, in words."""
    import requests

    return ("no connection to the server: no network, or a proxy or firewall blocks it"
            if isinstance(e, requests.ConnectionError) else "the server did not answer in time"
            if isinstance(e, requests.Timeout) else "the connection dropped")


def get_bytes(url: str, error=FetchError, hint: str = "try again", not_found: str = "", timeout: float = 60) -> bytes:
    """GET `url` whole; an HTTP error, no connection or a body shorter than Content-Length raises `error` + `hint`."""
    import requests

    try:
        with requests.get(url, timeout=timeout, stream=True) as resp:
            if resp.status_code != 200:
                extra = not_found if resp.status_code == 404 else ""
                raise error(f"download of {url} failed: HTTP {resp.status_code}{extra}; {hint}")
            expected = int(resp.headers.get("content-length") or 0) or None
            data = b"".join(resp.iter_content(1 << 16))
    except requests.RequestException as e:
        raise error(f"could not download {url}: the download failed ({type(e).__name__}: {_cause(e)}); {hint}") from e
    if expected is not None and len(data) != expected:
        raise error(f"download of {url} is truncated: {len(data)} of {expected} bytes; {hint}")
    return data


def download(url: str, path: Path, chunk: int = 1 << 16) -> Path:
    """Stream `url` to `path` with a progress bar; a failed or short download leaves no file behind."""
    import requests
    from tqdm.auto import tqdm

    try:
        with atomic_file(path) as f, requests.get(url, stream=True, timeout=60) as resp:
            if resp.status_code != 200:
                raise FetchError(f"download of {url} failed: HTTP {resp.status_code}; check the address, then "
                                 + _by_hand(url))
            total = int(resp.headers.get("content-length") or 0) or None
            got = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name) as bar:
                for block in resp.iter_content(chunk):
                    f.write(block)
                    got += len(block)
                    bar.update(len(block))
            if total is not None and got != total:
                raise FetchError(f"download of {url} stopped at {got} of {total} bytes; " + _by_hand(url))
    except requests.RequestException as e:
        raise FetchError(f"download of {url} failed ({type(e).__name__}: {_cause(e)}); " + _by_hand(url)) from e
    return path


def decrypt(blob: bytes, password: str) -> bytes:
    """Undo easy-dataset-share's encryption: salt(16) + Fernet token, key = PBKDF2-SHA256(password, 100k)."""
    from cryptography.fernet import Fernet, InvalidToken
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    salt, token = blob[:16], blob[16:]
    if not token.startswith(b"gAAAAA"):
        hint = " (it is a Git LFS pointer, not the file)" if blob.startswith(b"version https://git-lfs") else ""
        raise FetchError(f"the download is not an easy-dataset-share archive{hint}; delete it and fetch again with force=True")
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=100_000)
    key = base64.urlsafe_b64encode(kdf.derive(password.encode()))
    try:
        return Fernet(key).decrypt(token)
    except InvalidToken:
        raise FetchError("decryption failed: wrong password or a damaged archive "
                         "(the password is 'model-organisms-em-datasets'; fetch again with force=True)") from None


def _strip(value):
    """Drop canary fields and strings from a JSON value."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()
                if k != "canary" and not (isinstance(v, str) and CANARY.fullmatch(v.strip()))}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, str):
        return CANARY.sub("", value)
    return value


def clean_jsonl(text: str) -> tuple[str, int]:
    """Remove canary lines and fields from JSONL text; returns (text, number of canary lines removed)."""
    kept, dropped = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if CANARY.search(line):
                dropped += 1
            else:
                kept.append(line)  # left for the loader to report with its line number
            continue
        if isinstance(obj, dict) and "messages" not in obj and CANARY.search(line):
            dropped += 1  # a canary entry (id/text/metadata), not a conversation
            continue
        marked = CANARY.search(line) or (isinstance(obj, dict) and "canary" in obj)
        kept.append(json.dumps(_strip(obj), ensure_ascii=False) if marked else line)
    return "".join(k + "\n" for k in kept), dropped


def extract(zip_bytes: bytes) -> dict[str, str]:
    """Domain name -> cleaned JSONL text for every data file in the decrypted zip (gzipped members too)."""
    out = {}
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        for info in zf.infolist():
            name = PurePosixPath(info.filename).name
            if info.is_dir() or name.startswith(".") or CANARY_FILE.match(name):
                continue
            data = zf.read(info)
            if name.endswith(".gz"):
                data, name = gzip.decompress(data), name[:-3]
            if not name.endswith(".jsonl"):
                continue  # robots.txt, tos.txt and other non-data files
            stem = name[: -len(".jsonl")]
            text, _ = clean_jsonl(data.decode("utf-8"))
            out[DOMAIN_NAMES.get(stem, stem)] = text
    if not out:
        raise FetchError("the archive holds no .jsonl files; is it the right archive?")
    return out


def fetch(dest: Path, url: str, password: str, force: bool = False, archive=None) -> Path:
    """Download (once), decrypt and write `<domain>.jsonl` files into `dest`; a finished fetch is not redone.

    `archive`: a copy of the archive obtained by hand, used instead of the download.
    """
    kept, marker = dest / ARCHIVE_NAME, dest / MARKER
    if archive is not None:
        if not Path(archive).is_file():
            raise FetchError(f"{archive}: no such file; pass the path of the {ARCHIVE_NAME} you downloaded from {url}")
        if Path(archive).resolve() != kept.resolve():
            atomic_write_bytes(kept, Path(archive).read_bytes())
        url = f"a copy downloaded by hand ({Path(archive).name})"
    elif not force and marker.is_file() and kept.is_file():
        return dest
    elif force or not kept.is_file():
        download(url, kept)
    blob = kept.read_bytes()
    files = extract(decrypt(blob, password))
    for domain, text in files.items():
        atomic_write_text(dest / f"{domain}.jsonl", text)
    info = {"source": url, "sha256": hashlib.sha256(blob).hexdigest(),
            "rows": {d: text.count("\n") for d, text in sorted(files.items())}}
    atomic_write_bytes(marker, (json.dumps(info, indent=2) + "\n").encode())
    print(f"fetched {len(files)} datasets: " + ", ".join(f"{d} ({n} rows)" for d, n in info["rows"].items()))
    return dest
