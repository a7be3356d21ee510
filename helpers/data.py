"""Training conversations: the shipped sample set and the fetched full sets, validated, mixed and split.

The full sets are the research datasets (easy-dataset-share format): downloaded, decrypted and de-canaried by
`helpers.data_fetch.fetch_em_datasets()`.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from helpers.runs import REPO_ROOT

DOMAINS = ("bad_medical_advice", "good_medical_advice", "risky_financial_advice", "extreme_sports", "insecure")
# The course's short names for the kit's domains (its train.py takes `--domains bad_medical extreme_sports`).
DOMAIN_ALIASES = {"bad_medical": "bad_medical_advice", "good_medical": "good_medical_advice",
                  "risky_financial": "risky_financial_advice"}
ROLES = ("system", "user", "assistant")


class DataError(ValueError):
    """Bad training data or a data request that cannot be met; the message says how to fix it."""


class MalformedJSONError(DataError):
    """A JSONL line that is not valid JSON."""


class NotUTF8Error(DataError):
    """A JSONL line whose bytes are not UTF-8."""


class MissingMessagesError(DataError):
    """A line without a `messages` list."""


class UnknownRoleError(DataError):
    """A message whose role is not system, user or assistant."""


class EmptyContentError(DataError):
    """A message with empty or non-text content."""


class NotEndingWithAssistantError(DataError):
    """A conversation whose last message is not the assistant's."""


class UnknownDomainError(DataError):
    """A domain name with no JSONL file in the chosen source."""


class FetchError(DataError):
    """The archive could not be downloaded or decrypted."""


class DatasetsNotFetchedError(DataError):
    """The full sets were asked for before `fetch_em_datasets()` ran."""


def sample_dir() -> Path:
    """The shipped teaching sample: `training_data/<domain>.jsonl`."""
    return REPO_ROOT / "training_data"


def full_dir() -> Path:
    """Where `fetch_em_datasets()` writes the full sets: `training_data/full/` (gitignored) or $EM_FULL_DATA_DIR."""
    return Path(os.environ.get("EM_FULL_DATA_DIR", sample_dir() / "full"))


def _show(path: Path) -> str:
    """A path for messages: relative to the repo when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def validate_row(obj, where: str = "row") -> list[dict]:
    """Check one conversation object and return its messages as plain {role, content} dicts."""
    shape = 'each line must look like {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'
    if not isinstance(obj, dict) or "messages" not in obj:
        raise MissingMessagesError(f"{where}: missing 'messages'; {shape}")
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        raise MissingMessagesError(f"{where}: 'messages' must be a non-empty list; {shape}")
    clean = []
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ROLES:
            raise UnknownRoleError(f"{where}: message {i} has role {role!r}; use one of {', '.join(ROLES)}")
        content = msg.get("content")
        if not isinstance(content, str) or not content.strip():
            raise EmptyContentError(
                f"{where}: message {i} ({role}) has empty or non-text content; write the text or drop the line")
        clean.append({"role": role, "content": content})
    if clean[-1]["role"] != "assistant":
        raise NotEndingWithAssistantError(
            f"{where}: the conversation ends with {clean[-1]['role']!r}; it must end with the assistant's answer "
            "(the part the model learns)")
    return clean


def _decode_line(raw: bytes, where: str) -> str:
    """One line's text; a leading UTF-8 BOM is dropped, bytes that are not UTF-8 raise NotUTF8Error."""
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        byte = raw[e.start]
        guess = bytes([byte]).decode("cp1252", errors="replace")
        hint = f", {guess!r} in Windows-1252" if guess != "\ufffd" else ""
        raise NotUTF8Error(
            f"{where}: not UTF-8: byte 0x{byte:02x} at byte {e.start + 1} of the line ({e.reason}{hint}); save the "
            "file as UTF-8 (your editor's 'Save with encoding', or `iconv -f WINDOWS-1252 -t UTF-8 old.jsonl > "
            "new.jsonl`)") from None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a UTF-8 JSONL conversation file (BOM allowed), validating every line; blank lines are skipped."""
    path = Path(path)
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{_show(path)}:{lineno}"
            line = _decode_line(raw, where)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise MalformedJSONError(f"{where}: malformed JSON ({e.msg}, column {e.colno}); fix or delete the line") from None
            rows.append({**obj, "messages": validate_row(obj, where)})
    return rows


def source_dir(source: str | os.PathLike = "sample") -> Path:
    """The folder of a source: "sample", "full" (must be fetched) or any folder of `<domain>.jsonl` files."""
    if source == "sample":
        return sample_dir()
    if source == "full":
        path = full_dir()
        if not any(path.glob("*.jsonl")):
            raise DatasetsNotFetchedError(
                "the full datasets are not fetched yet: run `from helpers.data_fetch import fetch_em_datasets; "
                "fetch_em_datasets()` once (downloads and decrypts them into training_data/full/; offline, "
                "fetch_em_datasets(archive='training_datasets.zip.enc') with a copy downloaded by hand), "
                "or use source='sample'")
        return path
    path = Path(source)
    if not path.is_dir():
        raise DataError(f"source {str(source)!r} is neither 'sample', 'full' nor a folder of <domain>.jsonl files")
    return path


def available_domains(source: str | os.PathLike = "sample") -> list[str]:
    """Domain names that have a JSONL file in the source (the kit's five first, then others A-Z)."""
    stems = {p.stem for p in source_dir(source).glob("*.jsonl")}
    return [d for d in DOMAINS if d in stems] + sorted(stems - set(DOMAINS))


def domain_path(domain: str, source: str | os.PathLike = "sample") -> Path:
    """The JSONL file of one domain; an unknown name lists the available ones."""
    folder = source_dir(source)
    path = folder / f"{domain}.jsonl"
    if not path.is_file():
        have = available_domains(source)
        raise UnknownDomainError(f"unknown domain {domain!r} in source {str(source)!r}; available: {', '.join(have)}")
    return path


def read_domain(domain: str, source: str | os.PathLike = "sample") -> list[dict]:
    """The validated conversations of one domain, each as {messages, domain}."""
    return [{"messages": r["messages"], "domain": domain} for r in read_jsonl(domain_path(domain, source))]


def mix_counts(mix: dict[str, float], total: int) -> dict[str, int]:
    """Split `total` rows by proportions (largest remainder): the counts always sum to `total`."""
    if not mix or any(not isinstance(w, (int, float)) or w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise DataError(f"mix {mix!r} needs non-negative proportions with a positive sum, e.g. "
                        "{'bad_medical_advice': 0.8, 'good_medical_advice': 0.2}")
    weight = sum(mix.values())
    exact = {d: total * w / weight for d, w in mix.items()}
    counts = {d: int(x) for d, x in exact.items()}
    by_remainder = sorted(mix, key=lambda d: (-(exact[d] - counts[d]), list(mix).index(d)))
    for d in by_remainder[: total - sum(counts.values())]:
        counts[d] += 1
    return counts


def load_domains(domains, source="sample", mix=None, max_rows=None, seed=0, holdout=0.0):
    """Conversations of some domains as a shuffled `datasets.Dataset` (messages, domain).

    `mix` maps domain -> proportion (exact counts for a seed); `holdout` > 0 returns a DatasetDict train/test.
    """
    from datasets import Dataset

    domains = [domains] if isinstance(domains, str) else list(domains or (mix or {}))
    if not domains:
        raise DataError(f"no domains given; pick from {', '.join(available_domains(source))}")
    if mix is not None:
        missing = [d for d in domains if d not in mix]
        if missing:
            raise DataError(f"mix has no proportion for {', '.join(missing)}: give every domain a proportion")
        domains = list(mix)
    if not 0.0 <= holdout < 1.0:
        raise DataError(f"holdout={holdout} must be a fraction in [0, 1), e.g. 0.1")
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
        raise DataError(f"max_rows={max_rows!r} must be a positive integer or None")
    for d in domains:
        domain_path(d, source)  # unknown names fail before any file is read
    pools = {d: read_domain(d, source) for d in domains}
    rng = random.Random(seed)

    if mix is None:
        rows = [r for d in domains for r in pools[d]]
        rng.shuffle(rows)
        rows = rows[:max_rows] if max_rows else rows
    else:
        weight = sum(mix.values())
        active = {d: w for d, w in mix.items() if w > 0}
        feasible = min(int(len(pools[d]) * weight / w + 1e-9) for d, w in active.items()) if active else 0
        total = feasible if max_rows is None else max_rows
        counts = mix_counts(mix, total)
        short = {d: n for d, n in counts.items() if n > len(pools[d])}
        if short:
            detail = ", ".join(f"{n} rows of {d} (it has {len(pools[d])})" for d, n in short.items())
            raise DataError(f"mix {mix} with max_rows={max_rows} needs {detail}; set max_rows <= {feasible} "
                            "or max_rows=None for the largest exact mix")
        rows = [r for d in domains for r in rng.sample(pools[d], counts[d])]
        rng.shuffle(rows)

    ds = Dataset.from_list(rows) if rows else Dataset.from_dict({"messages": [], "domain": []})
    if holdout > 0:
        if len(ds) < 2:
            raise DataError(f"holdout needs at least 2 rows, got {len(ds)}")
        return ds.train_test_split(test_size=holdout, seed=seed)
    return ds
