"""Looking at training data: counts, token lengths, an example browser, bad vs good answers side by side."""

from __future__ import annotations

import textwrap

import pandas as pd

from helpers.data import available_domains, read_domain
from helpers.tables import text_block


def domain_counts(source="sample", domains=None) -> pd.DataFrame:
    """Rows per domain with mean question and answer length in words."""
    table = []
    for d in domains or available_domains(source):
        rows = read_domain(d, source)
        table.append({
            "domain": d,
            "rows": len(rows),
            "question_words": round(sum(len(_first(r, "user").split()) for r in rows) / max(len(rows), 1), 1),
            "answer_words": round(sum(len(_last_answer(r).split()) for r in rows) / max(len(rows), 1), 1),
        })
    return pd.DataFrame(table, columns=["domain", "rows", "question_words", "answer_words"])


def _first(row: dict, role: str) -> str:
    return next((m["content"] for m in row["messages"] if m["role"] == role), "")


def _last_answer(row: dict) -> str:
    return row["messages"][-1]["content"]


def token_lengths(rows, tokenizer) -> pd.DataFrame:
    """Tokens per conversation (chat template applied) and per answer, one row per example."""
    rows = list(rows)
    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    full = tokenizer(texts, add_special_tokens=False)["input_ids"]
    answers = tokenizer([_last_answer(r) for r in rows], add_special_tokens=False)["input_ids"]
    return pd.DataFrame({"domain": [r["domain"] for r in rows],
                         "conversation_tokens": [len(x) for x in full],
                         "answer_tokens": [len(x) for x in answers]})


def plot_token_lengths(lengths: pd.DataFrame, column: str = "conversation_tokens", path=None):
    """Seaborn histogram of token lengths per domain; saved to `path` when given. Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8, 4))
    sns.histplot(lengths, x=column, hue="domain", element="step", bins=30, ax=ax)
    ax.set_xlabel(column.replace("_", " "))
    ax.set_title("Token lengths per domain")
    fig.tight_layout()
    if path is not None:
        from pathlib import Path

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


def paired_examples(bad="bad_medical_advice", good="good_medical_advice", source="sample", n=None) -> pd.DataFrame:
    """Questions that appear in both domains, with each domain's answer side by side."""
    good_by_q = {_first(r, "user"): _last_answer(r) for r in read_domain(good, source)}
    pairs = [{"question": _first(r, "user"), bad: _last_answer(r), good: good_by_q[_first(r, "user")]}
             for r in read_domain(bad, source) if _first(r, "user") in good_by_q]
    return pd.DataFrame(pairs[:n] if n else pairs, columns=["question", bad, good])


def format_example(row: dict, width: int = 100) -> str:
    """One conversation as readable text: `ROLE: content`, wrapped."""
    lines = [f"[{row.get('domain', '?')}]"]
    for m in row["messages"]:
        body = m["content"] if "\n" in m["content"] else textwrap.fill(m["content"], width)
        lines.append(f"{m['role'].upper()}: {body}")
    return "\n".join(lines)


def example_browser(rows_by_domain: dict[str, list[dict]]):
    """An ipywidgets panel: pick a domain and an index to read that example."""
    import ipywidgets as W

    names = list(rows_by_domain)
    domain = W.Dropdown(options=names, value=names[0], description="domain")
    index = W.IntSlider(value=0, min=0, max=max(len(rows_by_domain[names[0]]) - 1, 0), description="index")
    view = W.HTML()

    def show(_=None):
        index.max = max(len(rows_by_domain[domain.value]) - 1, 0)
        rows = rows_by_domain[domain.value]
        text = format_example(rows[index.value]) if rows else "(no rows)"
        view.value = text_block(text, "font-family: monospace")

    domain.observe(show, names="value")
    index.observe(show, names="value")
    show()
    return W.VBox([W.HBox([domain, index]), view])
