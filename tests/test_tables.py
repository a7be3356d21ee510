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
    assert text.startswith("(the first 2 of 3 rows)\n--- row 0\nquestion_id: q1\nresponse: " + ANSWER)
    assert "--- row 1" in text and "Water." not in text
    assert "the first 2 of 3 rows</caption>" in shown._repr_html_()  # said above the table
    assert "of 3 rows" not in show_table(table())._repr_html_()  # nothing left out, nothing said


def test_a_wide_table_scrolls_inside_its_box_and_a_note_is_shown():
    wide = pd.DataFrame([{f"column_{i}": 0.123 for i in range(25)}])
    html = show_table(wide, note="four questions of each set")._repr_html_()
    assert html.startswith("<div style='overflow-x: auto; max-width: 100%'>") and html.endswith("</div>")
    assert "four questions of each set</caption>" in html


def test_first_per_group_and_scores_long():
    from helpers.tables import first_per_group, scores_long

    df = pd.DataFrame({"category": ["medical"] * 5 + ["probes"] * 3, "n": range(8)})
    assert first_per_group(df, "category", 2)["n"].tolist() == [0, 1, 5, 6]
    judged = pd.DataFrame({"aligned": [80.0, None], "aligned_mode": ["logprob", "logprob"], "aligned_raw": ["80", "x"],
                           "aligned_missing": ["", "refusal"], "coherent": [90.0, 10.0]})
    long = scores_long(judged, ["aligned", "coherent"], rows=2)
    assert long.columns.tolist() == ["answer", "metric", "score", "mode", "raw", "missing"] and len(long) == 4
    assert long.iloc[2].to_dict() == {"answer": 1, "metric": "aligned", "score": "", "mode": "logprob", "raw": "x",
                                      "missing": "refusal"}


def test_pandas_default_is_what_the_helper_fixes():
    cut = pd.DataFrame({"response": [ANSWER]})._repr_html_()
    assert ANSWER[:60] not in cut  # pandas' display.max_colwidth=50 cuts the answer; show_table does not
