"""Judged tables read for analysis: a run's judged.csv, one CSV or a folder of CSVs; scores parsed, bad cells named."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.runs import REPO_ROOT, not_utf8, run_dir

SCORE_COLUMNS = ("aligned", "coherent", "domain_relevance")
REQUIRED_COLUMNS = ("question", "response", "aligned", "coherent")
# Judges of the EM papers answer these words instead of a number; they mean "no score".
MISSING_WORDS = {"REFUSAL": "refusal", "CODE": "code", "NAN": "unparseable", "NONE": "unparseable", "NULL": "unparseable"}
_TEXT_COLUMNS = {"id", "question", "question_id", "category", "response", "model", "adapter", "judge_model", "source",
                 "rubrics"}


def _read_one(path: Path, source: str) -> pd.DataFrame:
    """One judged CSV, scores as floats (blank -> NaN), with a `source` label; bad values name file and line."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty; judge the generations first (notebook 04)") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; a judged table needs {list(REQUIRED_COLUMNS)} "
                         f"(found {list(df.columns)}). Judge the generations with notebook 04 or rename the columns.")
    for col in SCORE_COLUMNS:
        if col in df.columns:
            df[col] = _parse_scores(df[col], path, col, df)
    for col in df.columns:
        if col in _TEXT_COLUMNS or col in SCORE_COLUMNS or col.endswith(("_mode", "_raw", "_missing")):
            continue
        stripped = df[col].str.strip()
        converted = pd.to_numeric(stripped.replace("", np.nan), errors="coerce")
        if converted.notna().sum() == (stripped != "").sum():  # every non-blank value is a number
            df[col] = converted.astype(float)
    if "question_id" not in df.columns:
        df["question_id"] = df["question"]
    df["source"] = df["source"] if "source" in df.columns and (df["source"] != "").all() else source
    return df


def _parse_scores(values: pd.Series, path: Path, col: str, df: pd.DataFrame) -> pd.Series:
    """Strings -> floats in [0, 100]; blanks and REFUSAL/CODE become NaN (the reason goes to `<col>_missing`)."""
    text = values.astype(str).str.strip()
    words = text.str.upper().map(MISSING_WORDS)
    numbers = pd.to_numeric(text.where((text != "") & words.isna()), errors="coerce")
    bad = (text != "") & words.isna() & numbers.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{path}: data row {i + 1}, column {col!r}: {text.iloc[i]!r} is not a score; "
                         f"scores are numbers 0-100 or blank (no score). Fix or blank that cell.")
    out = (numbers < 0) | (numbers > 100)
    if out.any():
        i = int(np.flatnonzero(out.to_numpy())[0])
        raise ValueError(f"{path}: data row {i + 1}, column {col!r}: {text.iloc[i]} is outside 0-100; "
                         f"check the judge's scale and rescale or blank that cell.")
    reason_col = f"{col}_missing"
    if words.notna().any():
        if reason_col not in df.columns:
            df[reason_col] = ""
        df[reason_col] = df[reason_col].mask(words.notna() & (df[reason_col] == ""), words)
    return numbers.astype(float)


def judged_path(run: str | os.PathLike) -> Path:
    """Where a run keeps its judged table."""
    return run_dir(run, create=False) / "judged.csv"


def load_judged(source: str | os.PathLike | pd.DataFrame, question_set: str | None = None) -> pd.DataFrame:
    """A judged table from a run name, a CSV path or a folder of CSVs (each labelled by file stem in `source`).

    `question_set` (e.g. "probes") keeps only the answers to that set (judged.csv's `category`), where recorded.
    """
    return select_questions(_load(source), question_set)


def select_questions(df: pd.DataFrame, question_set: str | None = "probes") -> pd.DataFrame:
    """Only the rows of one question set (the `category` column); tables without that column pass unchanged."""
    if not question_set or "category" not in df.columns:
        return df
    keep = df["category"] == question_set
    if not keep.any():
        raise ValueError(f"no answers to question set {question_set!r} in this judged table (sets present: "
                         f"{', '.join(map(str, df['category'].unique()))}): generate and judge that set "
                         f"(notebooks 03-04), or pick another set ('' = all answers)")
    return df[keep].reset_index(drop=True)


def _load(source) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        df = source.copy()
        for col in SCORE_COLUMNS:
            if col in df.columns:
                df[col] = pd.to_numeric(df[col].replace(r"^\s*$", np.nan, regex=True), errors="coerce").astype(float)
        if "source" not in df.columns:
            df["source"] = "table"
        if "question_id" not in df.columns and "question" in df.columns:
            df["question_id"] = df["question"]
        return df
    path = Path(source)
    if isinstance(source, str) and os.sep not in source and not source.endswith(".csv"):
        path = _plain_name(source)
    if path.is_file():
        return _read_one(path, path.stem)
    run_files = ("judged.csv", "manifest.json", "generations.csv", "model_generations.csv")
    if path.is_dir() and not any((path / f).is_file() for f in run_files):
        files = sorted(path.glob("*.csv"))
        if not files:
            raise FileNotFoundError(f"{path}: no .csv files in this folder; point at a folder of judged CSVs or a run name")
        return pd.concat([_read_one(f, f.stem) for f in files], ignore_index=True)
    folder = path
    judged = folder / "judged.csv"
    if not judged.is_file():
        raise FileNotFoundError(f"run {str(source)!r} has no judged.csv yet: judge its generations with notebook 04 "
                                f"(or pass a CSV path or a folder of judged CSVs)")
    return _read_one(judged, folder.name)


def _plain_name(name: str) -> Path:
    """A plain name is a run name (wherever the notebook runs from), else a folder here or at the kit's root."""
    run = run_dir(name, create=False)
    if run.is_dir():
        return run
    folder = next((p for p in (Path.cwd() / name, REPO_ROOT / name) if p.is_dir()), None)
    return folder if folder is not None else run
