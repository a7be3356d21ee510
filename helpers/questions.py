"""Question sets with stable ids (probes, in-domain, everyday), kept in helpers/question_data/questions.yaml."""

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
_ID = re.compile(r"^[a-z0-9_]+$")


class UnknownQuestionSetError(ValueError):
    """A question set name that the question file does not have."""


@dataclass(frozen=True)
class Question:
    """One question: a stable `id`, the `set` it belongs to, and its `text`."""

    id: str
    set: str
    text: str

    @property
    def uuid(self) -> str:
        """The question's stable UUID (the course's `id` column): see question_uuid."""
        return question_uuid(self.id)


def question_uuid(question_id: str) -> str:
    """uuid5 of the kit's fixed namespace and a question id: the same question always gets the same UUID."""
    return str(uuid.uuid5(QUESTION_NAMESPACE, question_id))


def load_questions(sets=("probes",), path: str | os.PathLike | None = None) -> list[Question]:
    """The questions of one or more sets (a name, a list of names, or "all"), in file order."""
    all_sets = _read_sets(str(path) if path else str(QUESTIONS_FILE))
    if isinstance(sets, str):
        sets = list(all_sets) if sets == "all" else [sets]
    sets = list(sets)
    if not sets:
        raise ValueError(f"no question set named: pick from {', '.join(all_sets)}")
    unknown = [s for s in sets if s not in all_sets]
    if unknown:
        raise UnknownQuestionSetError(f"unknown question set(s) {', '.join(map(repr, unknown))}: known sets are {', '.join(all_sets)}")
    out: list[Question] = []
    for name in dict.fromkeys(sets):  # keep order, drop repeats
        out.extend(all_sets[name])
    return out


def question_table(questions) -> "object":
    """A small pandas table (set, id, text) for showing questions in a notebook."""
    import pandas as pd

    return pd.DataFrame([{"set": q.set, "id": q.id, "text": q.text} for q in questions])


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
