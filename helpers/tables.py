"""Tables of answers as a student should read them: every cell whole, line breaks kept, long text wrapped."""

from __future__ import annotations

import html

import pandas as pd

# Wrap at spaces, keep line breaks, break a word only when it alone is wider than the box (JupyterLab's output
# area sets `word-break: break-all` on <pre>, which cuts words anywhere).
WRAP = "white-space: pre-wrap; word-break: normal; overflow-wrap: break-word"
CELL_STYLE = f"{WRAP}; text-align: left; vertical-align: top"
TEXT_WIDTH = "min-width: 16em; max-width: 48em"  # columns of prose: wide enough to read, wrapped beyond


class WholeTable:
    """Displays a DataFrame without cutting any cell: HTML in a notebook, full text in a terminal."""

    def __init__(self, df: pd.DataFrame, rows: int | None = None, note: str = ""):
        self.df = df.head(rows) if rows else df
        self.total = len(df)
        shown = f"the first {len(self.df)} of {self.total} rows" if len(self.df) < self.total else ""
        self.caption = "; ".join(t for t in (shown, note) if t)

    def _text_columns(self) -> list:
        return [c for c in self.df.columns if self.df[c].map(lambda v: isinstance(v, str) and len(v) > 40).any()]

    def _repr_html_(self) -> str:
        style = self.df.style.format(escape="html", precision=1, na_rep="")
        style = style.set_properties(**_props(CELL_STYLE))
        text = self._text_columns()
        if text:
            style = style.set_properties(subset=text, **_props(TEXT_WIDTH))
        style = style.set_table_styles([{"selector": "th", "props": "text-align: left; vertical-align: top"},
                                        {"selector": "caption", "props": "caption-side: top; text-align: left"}])
        if self.caption:
            style = style.set_caption(html.escape(self.caption))
        # a table wider than the page scrolls inside its own box instead of being cut off at the right
        return f"<div style='overflow-x: auto; max-width: 100%'>{style.to_html()}</div>"

    def __repr__(self) -> str:
        """Row by row, one `column: value` line each (a long answer keeps its own lines)."""
        blocks = [f"({self.caption})"] if self.caption else []
        for index, row in self.df.iterrows():
            blocks.append(f"--- row {index}\n" + "\n".join(f"{c}: {row[c]}" for c in self.df.columns))
        return "\n".join(blocks)


def text_block(text: str, css: str = "") -> str:
    """HTML for a block of plain text (a widget's answer box): escaped, wrapped between words, line breaks kept."""
    # line-height: an ipywidgets HTML box otherwise spaces lines by the widget row height (28px)
    return f"<div style='{WRAP}; line-height: 1.45; {css}'>{html.escape(text)}</div>"


def _props(css: str) -> dict:
    return dict(p.split(": ") for p in css.split("; "))


def show_table(df: pd.DataFrame, rows: int | None = None, note: str = "") -> WholeTable:
    """The table (first `rows` rows if given, said above it) for display: whole answers, wrapped, line breaks kept;
    a table wider than the page scrolls sideways in its box. `note`: a line shown above the table."""
    return WholeTable(df, rows, note)


def first_per_group(df: pd.DataFrame, column: str, n: int) -> pd.DataFrame:
    """The first `n` rows of each value of `column`, in order of first appearance (a sample of every question set)."""
    return df.groupby(column, sort=False, group_keys=False).head(n)


def scores_long(judged: pd.DataFrame, metrics, rows: int = 3) -> pd.DataFrame:
    """How each score of the first `rows` answers was obtained, one line per answer and metric: score, mode, what
    the judge replied (raw) and why a score is missing ("" when it is not)."""
    out = []
    for i, row in judged.head(rows).iterrows():
        for m in metrics:
            out.append({"answer": i, "metric": m, "score": row.get(m), "mode": row.get(f"{m}_mode", ""),
                        "raw": row.get(f"{m}_raw", ""), "missing": row.get(f"{m}_missing", "")})
    return pd.DataFrame(out).fillna("")
