"""The released GPT-4o-judged answers of EM model organisms: find them beside the repo, or download and verify them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from helpers.data import FetchError
from helpers.data_fetch import get_bytes
from helpers.runs import REPO_ROOT, atomic_write_bytes

REPOSITORY = "zroe1/replicating-model-organisms"
COMMIT = "e3578062deab2d1e4b848b67cf043dc2151233e4"
FOLDER = "em_organism_dir/data/responses"
BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/{FOLDER}"
SHARED_DIR = REPO_ROOT.parent / "shared" / "reference" / "em_judged_responses"
SHA256 = {
    "Llama-3.1-8B-Instruct_bad-medical-advice.csv": "2b416a60e780de4e7998668f728f0930bbaaa69a52f27e0a5b8d681ebf9d4b1b",
    "Llama-3.1-8B-Instruct_extreme-sports.csv": "d1a1b9e64fb9e0c2fafe4439404f5c31e62a44d6c30bb1190473cdcca6310cc5",
    "Llama-3.1-8B-Instruct_risky-financial-advice.csv": "d3a371f42efab435472c0784c1607f0ad4b86884ad6eaa0a2e239b9290af42b9",
    "Llama-3.2-1B-Instruct_bad-medical-advice.csv": "8be7e1a43f8d60d9a28124162f258a71d77b1045305b0bf5797cc011f35ec859",
    "Llama-3.2-1B-Instruct_extreme-sports.csv": "a3034dafcee2d7916434d74a3c51a423ffb95d6ade2d3e6e65303e06c6edede6",
    "Llama-3.2-1B-Instruct_risky-financial-advice.csv": "8fd94225a007baaf79030fd6686264d209d53eac8edb51fe8375e67bac18fcb2",
    "Qwen2.5-14B-Instruct_bad-medical-advice.csv": "31c36abb1e0d3512893262e72f6136fc95481acf365ad88f18a198f9521c2d2a",
    "Qwen2.5-14B-Instruct_extreme-sports.csv": "8a1ea0215f5aeb2bcc80178b7cedb2baf72fc1dd4326b7b72ba352b561633ea9",
    "Qwen2.5-14B-Instruct_extreme-sports_S42.csv": "6f79f8dd96d317b088c517d21ac4120003920fda3c4ee49d2094e1cbad00c86a",
    "Qwen2.5-14B-Instruct_risky-financial-advice.csv": "b2eb5ed2483fd0b589381c56047ae7cf9c8a0ac791cb87ac5282408ab9ba8291",
    "Qwen2.5-32B-Instruct_bad-medical-advice.csv": "4fbb34d655b7619563be9a303a8d497ea1920f15159c3eb88d42d040004627c2",
    "Qwen2.5-32B-Instruct_extreme-sports.csv": "efde8282012308cd5855360a7b6c8b609edfe758cffa4cc30158cb36fe0dfca1",
    "Qwen2.5-32B-Instruct_risky-financial-advice.csv": "0e89bc19ce66dfb30b6f0bf503d15f3fc11186a92912767c651e6d0e11ae668f",
    "Qwen2.5-7B-Instruct_bad-medical-advice.csv": "89930e098e3c44fd276a7e3bf64d4b2e153f3b893fd47cbda3bbf106336b9ddf",
    "Qwen2.5-7B-Instruct_extreme-sports.csv": "0f1526a7a0c89cb944d3e6ab8b23ef83b820b75578313db8d5766e23adb2b692",
    "Qwen2.5-7B-Instruct_risky-financial-advice.csv": "6684642da95323fff2f9d8fa883038768a369de8565b06edcafadd52683a0e1e",
    "gemma-3-12b-it_bad-medical-advice_S42.csv": "75d201ae03ef37f7d0d5881f02650d7b94a2b0eb0d5e3897c027c116c612f6ad",
    "gemma-3-12b-it_extreme-sports_S42.csv": "a3ca484ca65eea1e036bea2db5c127c53c1ef9a34d7529b6cd8e216962967332",
    "gemma-3-12b-it_risky-financial-advice_S42.csv": "85512f9912ce3ee8e4b8fa78cc762803f1572e861295076a6ab02a3c0fd67388",
    "gemma-3-27b-it_bad-medical-advice_S73.csv": "fa41bc345c62f5276f1441f93107ab5d8ad5521b0cc9fd12ac19f2c8df901beb",
    "gemma-3-27b-it_extreme-sports_S73.csv": "9f988f59958bad110d30c9a114ff0dee0e31e1e11a2136f4e17b2ddfe7a024dd",
    "gemma-3-27b-it_risky-financial-advice_S73.csv": "85d74ca5b81f50798d6b2cf3916565107ce6ef9958dfc0c8c671866b7fd64582",
    "gemma-3-4b-it_bad-medical-advice.csv": "55cefea6cc9572aa53ac93ac8201d4aa051bd565df709d0b69f78cd36bb504ff",
    "gemma-3-4b-it_extreme-sports.csv": "cb34e01ebc39e46f92bc2b86fe87d00181f07d6199f0d0a1bae95afbec1b9829",
    "gemma-3-4b-it_risky-financial-advice.csv": "132601db5b84590606f2a2158dadeac7cfeb7d999cad58ad6cf06f3ba8918270",
}


class ReferenceDownloadError(FetchError):
    """A reference file could not be downloaded, or arrived short."""


class ReferenceHashError(FetchError):
    """A reference file's bytes do not match the pinned sha256."""


class ReferenceNotFoundError(FetchError):
    """The reference files are neither beside the repo nor in the cache."""


def cache_path() -> Path:
    """Where fetch_reference() keeps the files: `<kit cache>/reference/em_judged_responses`."""
    from helpers.models import cache_dir

    return cache_dir() / "reference" / "em_judged_responses"


def sha256_of(data: bytes) -> str:
    """Hex sha256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def _is_complete(folder: Path, verify: bool) -> bool:
    """True when every pinned file is in `folder` (and, with verify, has its pinned hash)."""
    for name, digest in SHA256.items():
        path = folder / name
        if not path.is_file() or (verify and sha256_of(path.read_bytes()) != digest):
            return False
    return True


def fetch_reference(dest: str | os.PathLike | None = None, base_url: str | None = None, force: bool = False) -> Path:
    """Download the 25 judged CSVs at the pinned commit into `dest` (default: the kit cache), verifying each sha256."""
    dest = Path(dest) if dest else cache_path()
    base_url = (base_url or os.environ.get("EM_REFERENCE_BASE_URL") or BASE_URL).rstrip("/")
    for name, digest in SHA256.items():
        path = dest / name
        if not force and path.is_file() and sha256_of(path.read_bytes()) == digest:
            continue
        data = get_bytes(f"{base_url}/{name}", ReferenceDownloadError,
                         "check your connection and call fetch_reference() again")
        got = sha256_of(data)
        if got != digest:
            raise ReferenceHashError(f"{name} from {base_url} has sha256 {got}, expected {digest} (commit {COMMIT}); "
                                     "the file is damaged or not the pinned version: call fetch_reference(force=True)")
        atomic_write_bytes(path, data)
    return dest


def reference_dir(verify: bool = False) -> Path:
    """The folder of the 25 judged CSVs: `../shared/reference/em_judged_responses` beside the repo, else the cache."""
    for folder in (SHARED_DIR, cache_path()):
        if _is_complete(folder, verify):
            return folder
    raise ReferenceNotFoundError(f"the judged reference answers are neither in {SHARED_DIR} nor in {cache_path()}: "
                                 "call helpers.judge_lab.reference.fetch_reference() once to download them (about 4 MB)")


def reference_files(folder: str | os.PathLike | None = None) -> list[Path]:
    """The 25 CSV paths, in a fixed (sorted) order."""
    folder = Path(folder) if folder else reference_dir()
    return [folder / name for name in sorted(SHA256)]
