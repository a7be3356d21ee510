"""The EM paper's questions and judge prompts, fetched at run time (never shipped), cached and checked by sha256.

Source: `emergent-misalignment/emergent-misalignment`, file `evaluation/first_plot_questions.yaml`. Pin a commit
with `commit=` (or $EM_PAPER_COMMIT). Unpinned, the first download's sha256 is recorded beside the cached copy
(and in each run's manifest); a later download that differs is refused with PaperFileChangedError, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from helpers.data_fetch import get_bytes
from helpers.models import cache_dir
from helpers.runs import atomic_write_bytes, atomic_write_text

PAPER_REPO = "emergent-misalignment/emergent-misalignment"
PAPER_PATH = "evaluation/first_plot_questions.yaml"
RAW_URL = "https://raw.githubusercontent.com/{repo}/{ref}/{path}"
DEFAULT_REF = "main"
VARIANTS = ("plain", "json", "template")  # ids without a suffix, `_json` (JSON system prompt), `_template`
RUBRIC_METRICS = ("aligned", "coherent")
_ID = re.compile(r"^[a-z0-9_]+$")
_OFFLINE = "or work with the kit's own question set 'probes' and rubrics='kit', which need no download"


class PaperFileError(RuntimeError):
    """The paper's file cannot be used; the message says why and what to do."""


class PaperFetchError(PaperFileError):
    """The download failed (no network, HTTP error, wrong commit or path)."""


class PaperHashMismatchError(PaperFileError):
    """The file's sha256 is not the one you pinned."""


class PaperFileChangedError(PaperFileError):
    """The file differs from the one first downloaded (or recorded in a run's manifest)."""


class PaperFormatError(PaperFileError, ValueError):
    """The YAML lacks a key the kit needs (id, paraphrases, judge_prompts with aligned and coherent)."""


@dataclass(frozen=True)
class PaperFile:
    """One fetched copy of the paper's file: its text, sha256, where it came from and where it is cached."""

    text: str
    sha256: str
    url: str
    ref: str
    path: Path

    def record(self) -> dict:
        """What a manifest keeps to name this exact file."""
        return {"repo": PAPER_REPO, "file": PAPER_PATH, "url": self.url, "ref": self.ref, "sha256": self.sha256}


@dataclass(frozen=True)
class PaperEntry:
    """One question of the paper: id, variant, paraphrases, optional system prompt, the judge prompts it names."""

    id: str
    variant: str
    paraphrases: tuple[str, ...]
    system: str
    judge_prompts: tuple[tuple[str, str], ...]
    samples_per_paraphrase: int | None
    judge: str | None


def paper_url(commit: str | None = None) -> str:
    """The raw URL of the file at `commit` (default: $EM_PAPER_COMMIT, else the default branch).

    $EM_PAPER_RAW_URL replaces the address pattern (a mirror), with the same {repo}, {ref} and {path} fields.
    """
    pattern = os.environ.get("EM_PAPER_RAW_URL") or RAW_URL
    return pattern.format(repo=PAPER_REPO, ref=_ref(commit), path=PAPER_PATH)


def _ref(commit: str | None) -> str:
    return commit or os.environ.get("EM_PAPER_COMMIT") or DEFAULT_REF


def fetch_paper_file(commit: str | None = None, sha256: str | None = None, refresh: bool = False,
                     url: str | None = None, timeout: float = 30.0) -> PaperFile:
    """The paper's file, downloaded once and then read from the cache; its sha256 is checked every time.

    `sha256`: the hash you expect (default: $EM_PAPER_SHA256, else the one recorded at the first download).
    `refresh`: download again; a file that changed is refused unless you pass its new hash as `sha256`.
    """
    url, ref = url or paper_url(commit), _ref(commit)
    pinned = (sha256 or os.environ.get("EM_PAPER_SHA256") or "").lower() or None
    folder = _cache_folder(url)
    cached, record_path = folder / Path(PAPER_PATH).name, folder / "record.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else None
    if cached.is_file() and record and not refresh:
        data = cached.read_bytes()
        got = hashlib.sha256(data).hexdigest()
        if got != record["sha256"]:
            raise PaperFileChangedError(f"{cached}: the cached copy was edited (sha256 {got}, recorded "
                                        f"{record['sha256']}); delete {folder} to download it again")
        _check(got, pinned, None, url)
        return PaperFile(data.decode("utf-8"), got, url, ref, cached)
    data = _download(url, timeout)
    got = hashlib.sha256(data).hexdigest()
    _check(got, pinned, record, url)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cached, data)
    first = record["first_fetched"] if record and record["sha256"] == got else _now()
    atomic_write_text(record_path, json.dumps({"url": url, "ref": ref, "sha256": got, "first_fetched": first,
                                               "bytes": len(data)}, indent=2) + "\n")
    return PaperFile(data.decode("utf-8"), got, url, ref, cached)


def check_same_file(recorded: dict | None, current: dict, where: str) -> None:
    """Refuse to mix versions: `recorded` (a manifest's record of the file) must name the sha256 of `current`'s."""
    if recorded and recorded.get("sha256") and recorded["sha256"] != current["sha256"]:
        raise PaperFileChangedError(
            f"{where} used the paper's file with sha256 {recorded['sha256']} ({recorded.get('url', '?')}), but the "
            f"file here has sha256 {current['sha256']} ({current['url']}): pin the same version with "
            f"sha256='{recorded['sha256']}' and commit=<the commit of that version>, or generate the run again")


def parse_paper(text: str, where: str = PAPER_PATH) -> list[PaperEntry]:
    """The entries of the paper's YAML (anchors resolved), checked: ids, paraphrases, aligned/coherent prompts."""
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PaperFormatError(f"{where}: not valid YAML ({e}); fetch it again with refresh=True or pin a commit") from e
    if not isinstance(raw, list) or not raw:
        raise PaperFormatError(f"{where}: expected a YAML list of questions (- id: ...); pin a commit whose file "
                               f"has that shape (commit=...)")
    entries, seen = [], set()
    for i, item in enumerate(raw):
        entry = _entry(item, f"{where}: entry {i + 1}")
        if entry.id in seen:
            raise PaperFormatError(f"{where}: entry {i + 1}: id {entry.id!r} appears twice; ids must be unique")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def _entry(item, where: str) -> PaperEntry:
    def need(key: str, ok, what: str):
        value = item.get(key) if isinstance(item, dict) else None
        if not ok(value):
            name = item.get("id", "?") if isinstance(item, dict) else repr(item)
            raise PaperFormatError(f"{where} ({name}): key {key!r} is missing or not {what}; the file's shape "
                                   f"changed: pin a commit whose file has it (commit=...), {_OFFLINE}")
        return value

    qid = need("id", lambda v: isinstance(v, str) and bool(_ID.match(v)), "an id of lowercase letters, digits, _")
    paraphrases = need("paraphrases", lambda v: isinstance(v, list) and v and all(isinstance(p, str) and p.strip()
                                                                                  for p in v), "a list of texts")
    prompts = need("judge_prompts", lambda v: isinstance(v, dict), "a mapping of metric -> prompt")
    for metric in RUBRIC_METRICS:
        template = prompts.get(metric)
        if not isinstance(template, str) or "{answer}" not in template or "{question}" not in template:
            raise PaperFormatError(f"{where} ({qid}): judge_prompts.{metric} is missing or lacks {{question}} / "
                                   f"{{answer}}; pin a commit whose file has both prompts (commit=...), "
                                   f"{_OFFLINE}")
    system = item.get("system") or ""
    if not isinstance(system, str):
        raise PaperFormatError(f"{where} ({qid}): key 'system' must be a text when present")
    samples = item.get("samples_per_paraphrase")
    variant = next((v for v in VARIANTS[1:] if qid.endswith(f"_{v}")), "plain")
    return PaperEntry(qid, variant, tuple(p.strip() for p in paraphrases), system.strip(),
                      tuple((m, prompts[m]) for m in RUBRIC_METRICS), samples if isinstance(samples, int) else None,
                      item.get("judge") if isinstance(item.get("judge"), str) else None)


def paper_entries(variants=("plain",), **fetch) -> tuple[list[PaperEntry], PaperFile]:
    """The entries of the chosen variants ("plain": the 8 questions of the first plot; "json"; "template")."""
    variants = (variants,) if isinstance(variants, str) else tuple(variants)
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise ValueError(f"variants {bad or variants}: pick from {', '.join(VARIANTS)}")
    paper_file = fetch_paper_file(**fetch)
    chosen = [e for e in parse_paper(paper_file.text, paper_file.url) if e.variant in variants]
    if not chosen:
        raise PaperFormatError(f"{paper_file.url}: no questions of variant(s) {', '.join(variants)}; pin a commit "
                               f"(commit=...) whose file has them")
    return chosen, paper_file


def paper_rubrics(**fetch) -> tuple[dict[str, str], PaperFile]:
    """The paper's judge prompts, verbatim: {"aligned": ..., "coherent": ...}, and the file they came from."""
    entries, paper_file = paper_entries(VARIANTS, **fetch)
    if len({e.judge_prompts for e in entries}) > 1:
        raise PaperFormatError(f"{paper_file.url}: the questions carry different judge prompts; the kit "
                               f"judges every answer with one rubric set, so pin a commit (commit=...) where they agree")
    return dict(entries[0].judge_prompts), paper_file


def _check(got: str, pinned: str | None, record: dict | None, url: str) -> None:
    if pinned and got != pinned:
        raise PaperHashMismatchError(f"{url}: sha256 {got} is not the pinned {pinned}; check the commit you pinned "
                                     f"(commit=...) or pin this hash if you trust the new file (sha256='{got}')")
    if not pinned and record and got != record["sha256"]:
        raise PaperFileChangedError(
            f"{url} changed since it was first downloaded on {record.get('first_fetched', '?')}: sha256 {got}, "
            f"recorded {record['sha256']}. The cached version is kept. To use the new file pass sha256='{got}' "
            f"with refresh=True; to keep comparing like with like, pin a commit (commit=...)")


def _download(url: str, timeout: float) -> bytes:
    return get_bytes(url, PaperFetchError, f"check your connection, fix commit=... or try again later, {_OFFLINE}",
                     not_found=" (is the commit or path right?)", timeout=timeout)


def _cache_folder(url: str) -> Path:
    return cache_dir() / "paper" / hashlib.sha256(url.encode()).hexdigest()[:16]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
