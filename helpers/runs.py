"""Run folders: every notebook reads and writes `runs/<run_name>/` through these helpers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
_SECRET_KEYS = re.compile(r"(key|token|secret|password)", re.I)
_KEY_SHAPED = re.compile(r"\bsk-[A-Za-z0-9_\-*]{6,}")  # an OpenAI-style key anywhere in a text
_URL_CREDENTIALS = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)  # user:password@ in a URL
SECRET_VARS = ("OPENAI_API_KEY", "HF_TOKEN")


def runs_root() -> Path:
    """The folder that holds all run folders (`$EM_RUNS_DIR` or `<repo>/runs`)."""
    return Path(os.environ.get("EM_RUNS_DIR", REPO_ROOT / "runs"))


RUN_NAME_MAX = 100  # characters; a folder name must also fit the file system's 255 bytes


def check_run_name(name: str) -> str:
    """`name` when it is a usable run folder name under runs/, else a ValueError that says what to change."""
    fix = "pick a plain name like 'my-first-run'"
    if not name or name.strip() != name:
        raise ValueError(f"run_name {name!r} is empty or has spaces at its ends: {fix}")
    if name in (".", ".."):
        where = "runs/ itself" if name == "." else "the folder above runs/"
        raise ValueError(f"run_name {name!r} would write into {where}, not into a run folder: {fix}")
    if len(name) > RUN_NAME_MAX or len(name.encode("utf-8")) > 255:
        raise ValueError(f"run_name is {len(name)} characters long ({len(name.encode('utf-8'))} bytes); the limit is "
                         f"{RUN_NAME_MAX} characters (255 bytes): pick a shorter name (it starts {name[:40]!r})")
    if any(c in name for c in "/\\\0") or not name.isprintable():
        raise ValueError(f"run_name {name!r} has a path separator or a control character: {fix}")
    return name


def run_dir(run_name: str | os.PathLike, create: bool = True) -> Path:
    """Path of one run folder: `runs/<name>` for a plain name; a folder path (with a separator) is taken as it is,
    but never with '..' in it, and its last part must be a usable name."""
    name = str(run_name)
    if os.sep in name or "/" in name or Path(name).is_absolute():
        path = Path(name)
        if ".." in path.parts:
            raise ValueError(f"run folder {name!r} goes up with '..' (it would be {path.resolve()}): name the run "
                             f"folder without '..', e.g. a plain run name (a folder under {runs_root()})")
        check_run_name(path.name or name)
    else:
        path = runs_root() / check_run_name(name)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def existing_run(run_name: str | os.PathLike) -> Path:
    """The folder of a run that exists; else a FileNotFoundError naming the run and listing the runs there are."""
    path = run_dir(run_name, create=False)
    if path.is_dir():
        return path
    root = runs_root()
    runs = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    there = f"the runs in {root}: {', '.join(runs)}" if runs else f"{root} holds no runs yet"
    raise FileNotFoundError(f"run {str(run_name)!r} does not exist ({path}): check run_name ({there}), or train it "
                            "first (notebook 02)")


def not_utf8(path: str | os.PathLike) -> ValueError:
    """The error for a text file that is not UTF-8: its first bad byte by line and byte offset, and the fix."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
        return ValueError(f"{path}: could not be read as UTF-8 text")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return ValueError(f"{path}: line {line}, byte {e.start} (0x{data[e.start]:02x}) is not UTF-8: save the file "
                          "as UTF-8 (a spreadsheet: 'CSV UTF-8'; a shell: iconv -f latin1 -t utf-8 in.csv > out.csv)")


def base_run_name(model: str) -> str:
    """The run folder name of an untrained base model, e.g. `base-smollm2-135m`."""
    return "base-" + re.sub(r"[^A-Za-z0-9._-]+", "-", model.rstrip("/").split("/")[-1])


def base_run_for(run: str | os.PathLike) -> str | None:
    """The base-model run that belongs to `run`: `base-<model>`, the model from its manifest (train, else generate)."""
    model = trained_config(run).get("model") or read_manifest(run).get("generate", {}).get("model")
    return base_run_name(str(model)) if model else None


def trained_config(run: str | os.PathLike) -> dict:
    """The training configuration a run recorded (manifest.json's `train.config`); {} for an untrained run."""
    config = read_manifest(run).get("train", {}).get("config")
    return config if isinstance(config, dict) else {}


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` only when the block ends without error: readers never see half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write a file so that readers see either the old or the new content, never half."""
    with atomic_file(path) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomic text write (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(df, path: str | os.PathLike) -> Path:
    """Atomic pandas CSV write; line ends inside text become \n (a lone \r would split a row for most readers)."""
    text_cols = [c for c in df.columns if df[c].dtype == object or str(df[c].dtype).startswith("str")]
    if text_cols:
        df = df.copy()
        for col in text_cols:
            df[col] = df[col].map(lambda v: v.replace("\r\n", "\n").replace("\r", "\n") if isinstance(v, str) else v)
    return atomic_write_text(path, df.to_csv(index=False))


def redact(text: str, secrets=None) -> str:
    """`text` with every secret value (default: $OPENAI_API_KEY, $HF_TOKEN) and anything key-shaped as <redacted>,
    and no credentials in a URL (`http://user:pass@host` -> `http://host`)."""
    values = secrets if secrets is not None else [os.environ.get(k) for k in SECRET_VARS]
    for value in values:
        if value and len(value) >= 8:
            text = text.replace(value, "<redacted>")
    return _KEY_SHAPED.sub("sk-<redacted>", _URL_CREDENTIALS.sub(r"\1", text))


def scrub_secrets(obj: Any) -> Any:
    """Drop values whose key looks like a secret (key, token, secret, password); texts as `redact` leaves them."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: ("<redacted>" if _SECRET_KEYS.search(str(k)) and isinstance(v, str) and v else scrub_secrets(v))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_secrets(v) for v in obj]
    return obj


def write_manifest(run: str | os.PathLike, updates: dict, section: str | None = None, replace: bool = False) -> dict:
    """Merge `updates` (optionally under `section`; `replace`: the section becomes `updates`) into the run's
    manifest.json; secrets are scrubbed."""
    path = run_dir(run) / "manifest.json"
    manifest = read_manifest(run) if path.exists() else {}
    clean = scrub_secrets(updates)
    if section and replace:
        manifest[section] = clean
    elif section:
        manifest.setdefault(section, {}).update(clean)
    else:
        manifest.update(clean)
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return manifest


def read_manifest(run: str | os.PathLike) -> dict:
    """The run's manifest.json as a dict (empty if the run has none yet)."""
    path = run_dir(run, create=False) / "manifest.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); fix or delete the file") from e


def git_commit() -> str | None:
    """The kit's git commit, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names=("torch", "transformers", "peft", "trl", "datasets", "accelerate", "openai")) -> dict:
    """Installed versions of the packages that shape a run."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for n in names:
        try:
            found[n] = version(n)
        except PackageNotFoundError:
            found[n] = None
    return found
