"""Question sets with stable ids: the kit's own (probes, in-domain, everyday; YAML in question_data/), and the
EM paper's, fetched on first use (`paper`, `paper_json`, `paper_template`; see helpers.paper)."""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


QUESTIONS_FILE = Path(__file__).parent / "question_data" / "questions.yaml"
QUESTION_SETS = ("probes", "medical", "financial", "extreme_sports", "everyday", "course")
# Fixed forever: a question's UUID is uuid5(this namespace, its id), so the same question always has the same UUID.
QUESTION_NAMESPACE = uuid.UUID("5d1f6a1e-2c3b-4f0e-9a7d-6e6d2b1c0a19")
# Fetched from the paper's repository on first use (helpers.paper), never shipped: set name -> the paper's variant.
PAPER_SETS = {"paper": "plain", "paper_json": "json", "paper_template": "template"}
_ID = re.compile(r"^[a-z0-9_]+$")


class UnknownQuestionSetError(ValueError):
    """A question set name that the question file does not have."""


@dataclass(frozen=True)
class Question:
    """One question: a stable `id`, the `set` it belongs to, its `text`, an optional `system` prompt, and for a
    fetched set the sha256 of the file it came from (`file_sha256`)."""

    id: str
    set: str
    text: str
    system: str = ""
    file_sha256: str = ""

    @property
    def uuid(self) -> str:
        """The question's stable UUID (the course's `id` column): see question_uuid."""
        return question_uuid(self.id)


def question_uuid(question_id: str) -> str:
    """uuid5 of the kit's fixed namespace and a question id: the same question always gets the same UUID."""
    return str(uuid.uuid5(QUESTION_NAMESPACE, question_id))


def load_questions(sets=("probes",), path: str | os.PathLike | None = None, **paper) -> list[Question]:
    """The questions of one or more sets (a name, a list of names, or "all" = every set of the kit), in order.

    The `paper*` sets are downloaded on first use; `paper` takes helpers.paper.fetch_paper_file's arguments
    (commit=..., sha256=..., refresh=...).
    """
    all_sets = _read_sets(str(path) if path else str(QUESTIONS_FILE))
    if isinstance(sets, str):
        sets = list(all_sets) if sets == "all" else [sets]
    sets = list(sets)
    if not sets:
        raise ValueError(f"no question set named: pick from {', '.join(all_sets)}")
    unknown = [s for s in sets if s not in all_sets and s not in PAPER_SETS]
    if unknown:
        raise UnknownQuestionSetError(f"unknown question set(s) {', '.join(map(repr, unknown))}: known sets are "
                                      f"{', '.join(all_sets)} and, fetched, {', '.join(PAPER_SETS)}")
    out: list[Question] = []
    for name in dict.fromkeys(sets):  # keep order, drop repeats
        out.extend(all_sets[name] if name in all_sets else paper_questions(name, **paper))
    return out


def paper_questions(set_name: str = "paper", **fetch) -> list[Question]:
    """One of the paper's sets as Questions (one per paraphrase: `<id>` alone, `<id>_p1`, ... when several)."""
    from helpers.paper import paper_entries  # the download, only for the paper's sets

    entries, paper_file = paper_entries(PAPER_SETS[set_name], **fetch)
    out = []
    for e in entries:
        for k, text in enumerate(e.paraphrases):
            qid = e.id if len(e.paraphrases) == 1 else f"{e.id}_p{k + 1}"
            out.append(Question(qid, set_name, text, e.system, paper_file.sha256))
    return out


def question_files(questions) -> dict[str, str]:
    """{set: sha256 of the fetched file} for the questions of fetched sets (empty for the kit's own)."""
    return {q.set: q.file_sha256 for q in questions if q.file_sha256}


def question_table(questions) -> "object":
    """A small pandas table (set, id, text, and the system prompt when a question has one) for a notebook."""
    import pandas as pd

    system = any(q.system for q in questions)
    return pd.DataFrame([{"set": q.set, "id": q.id, "text": q.text, **({"system": q.system} if system else {})}
                         for q in questions])


@lru_cache(maxsize=8)
def _read_sets(path: str) -> dict[str, tuple[Question, ...]]:
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"question file {path} does not exist") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: expected a mapping of set name -> list of {{id, text}} entries")
    seen: dict[str, str] = {}
    sets: dict[str, tuple[Question, ...]] = {}
    for set_name, items in raw.items():
        if not isinstance(items, list) or not items:
            raise ValueError(f"{path}: set {set_name!r} must be a non-empty list of {{id, text}} entries")
        qs = []
        for i, item in enumerate(items):
            where = f"{path}: set {set_name!r}, entry {i + 1}"
            if not isinstance(item, dict):
                raise ValueError(f"{where}: expected a mapping with 'id' and 'text'")
            qid, text = item.get("id"), item.get("text")
            if not isinstance(qid, str) or not _ID.match(qid):
                raise ValueError(f"{where}: field 'id' must be lowercase letters, digits and '_' (got {qid!r})")
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{where} ({qid}): field 'text' must be a non-empty string")
            if qid in seen:
                raise ValueError(f"{where}: id {qid!r} is already used in set {seen[qid]!r}; ids must be unique across sets")
            seen[qid] = str(set_name)
            qs.append(Question(qid, str(set_name), text.strip()))
        sets[str(set_name)] = tuple(qs)
    return sets
