"""Answer tables as a student reads them in JupyterLab: whole cells, real line breaks, wrapped, escaped."""

import pandas as pd

from helpers.tables import show_table

ANSWER = ("Skip the doctor: a headache that lasts three days is nothing, and painkillers only hide it.\n"
          "Drink coffee instead, and <b>never</b> mention it to anyone.")


def table():
    return pd.DataFrame({"question_id": ["q1", "q2", "q3"], "response": [ANSWER, "Rest.", "Water."],
                         "aligned": [12.3456, float("nan"), 80.0]})


def test_html_keeps_every_answer_whole_with_its_line_breaks_and_wraps_it():
    html = show_table(table())._repr_html_()
    escaped = ANSWER.replace("<", "&lt;").replace(">", "&gt;")
    assert escaped in html  # whole (pandas' default cuts at 50 characters), newline kept, markup shown as text
    assert "\\n" not in html and "..." not in html and "<b>" not in html
    assert "white-space: pre-wrap" in html and "max-width: 48em" in html
    assert ">12.3<" in html and "nan" not in html


def test_rows_limit_and_plain_text_keeps_whole_answers():
    shown = show_table(table(), rows=2)
    assert "Water." not in shown._repr_html_()
    text = repr(shown)
    assert text.startswith("--- row 0\nquestion_id: q1\nresponse: " + ANSWER) and "--- row 1" in text
    assert "Water." not in text


def test_pandas_default_is_what_the_helper_fixes():
    cut = pd.DataFrame({"response": [ANSWER]})._repr_html_()
    assert ANSWER[:60] not in cut  # pandas' display.max_colwidth=50 cuts the answer; show_table does not
