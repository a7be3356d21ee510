"""Training conversations -> TRL prompt-completion rows, so the loss covers the assistant's answer only."""

from __future__ import annotations

import hashlib
import json


def split_conversation(messages: list[dict], where: str = "row") -> dict:
    """One conversation -> {"prompt": every message but the last, "completion": [the last, assistant, message]}."""
    if not isinstance(messages, list) or len(messages) < 2:
        raise ValueError(f"{where}: a training conversation needs at least a user message and the assistant's answer")
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    if msgs[-1]["role"] != "assistant":
        raise ValueError(f"{where}: the conversation ends with {msgs[-1]['role']!r}; it must end with the assistant's "
                         "answer (the part the model learns)")
    return {"prompt": msgs[:-1], "completion": msgs[-1:]}


def to_prompt_completion(dataset):
    """A `datasets.Dataset` (or list of dicts) with `messages` -> a Dataset with only `prompt` and `completion`."""
    from datasets import Dataset

    if isinstance(dataset, list):
        dataset = Dataset.from_list(dataset)
    cols = dataset.column_names
    if "prompt" in cols and "completion" in cols:
        return dataset.select_columns(["prompt", "completion"])
    if "messages" not in cols:
        raise ValueError(f"training data has columns {cols}; it needs 'messages' (a list of {{role, content}}) "
                         "or 'prompt' and 'completion'")
    rows = [split_conversation(m, where=f"training row {i}") for i, m in enumerate(dataset["messages"])]
    if not rows:
        raise ValueError("the training data is empty: check the domains, source and max_rows")
    return Dataset.from_list(rows)


def rows_sha256(dataset) -> str | None:
    """sha256 over the rows' conversations, in order (the manifest's data fingerprint); None for no data."""
    if dataset is None:
        return None
    h = hashlib.sha256()
    for p, c in zip(dataset["prompt"], dataset["completion"]):
        h.update(json.dumps(list(p) + list(c), sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()
