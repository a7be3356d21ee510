"""The course's hand-in from a trained run: model_generations.csv (20 rows), training_details.md and train.py."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers.runs import atomic_write_csv, atomic_write_text, read_manifest, run_dir, trained_config
from helpers.submission.autograde import COURSE_SAMPLING

COURSE_SET = "course"


def recorded_config(run) -> dict:
    """The TrainConfig a finished run recorded in manifest.json (`train.config`)."""
    config = trained_config(run)
    if read_manifest(run).get("train", {}).get("status") != "finished" or not config:
        raise FileNotFoundError(f"run {str(run)!r} has no finished training in its manifest.json: train it first "
                                "(notebook 02 or `python -m helpers.train`), then pack")
    return config


def train_script(run, config: dict | None = None) -> str:
    """A short `python train.py` that trains the run again with its recorded configuration."""
    manifest = read_manifest(run).get("train", {})
    config = config if config is not None else recorded_config(run)
    name = Path(str(run)).name
    data = manifest.get("data", {})
    body = "\n".join(f"    {key!r}: {value!r}," for key, value in config.items())
    return f'''"""Train run {name!r} again, exactly as it was trained: `python train.py` (needs the EM course kit installed).

Written by `python -m helpers.submission pack` from the run's manifest.json: the kit's TrainConfig with the
recorded settings. Kit commit {manifest.get("git_commit") or "unknown"}; {data.get("rows", "?")} training conversations,
sha256 {data.get("sha256") or "unknown"}.
"""

from helpers.runs import read_manifest
from helpers.train import TrainConfig, train

DATA_SHA256 = {data.get("sha256")!r}
CONFIG = {{
{body}
}}


def main():
    result = train(TrainConfig(**CONFIG))
    print(result)
    got = read_manifest(CONFIG["run_name"]).get("train", {{}}).get("data", {{}}).get("sha256")
    print("same training data as the original run" if got == DATA_SHA256 else
          f"the training data differ from the original run's (sha256 {{got}}, was {{DATA_SHA256}})")


if __name__ == "__main__":
    main()
'''


def course_answers(run, progress: bool = True, **sampling):
    """One answer per course question from the run's generations.csv, else sampled now (COURSE_SAMPLING + `sampling`)."""
    import pandas as pd

    from helpers.questions import load_questions

    questions = load_questions(COURSE_SET)
    path = run_dir(run, create=False) / "generations.csv"
    if path.is_file():
        df = pd.read_csv(path, keep_default_na=False, dtype={"response": str})
        if {"question_id", "sample", "response"} <= set(df.columns):
            first = df[df["question_id"].isin([q.id for q in questions])].sort_values("sample")
            first = first.drop_duplicates("question_id").set_index("question_id")
            if len(first) == len(questions):
                return pd.DataFrame({"id": [q.uuid for q in questions], "question": [q.text for q in questions],
                                     "response": [first.loc[q.id, "response"] for q in questions]})
    from helpers.generate import generate

    sampling = {**COURSE_SAMPLING, **sampling}
    print(f"sampling one answer to each of the {len(questions)} course questions from run {Path(str(run)).name!r} "
          f"({', '.join(f'{k}={v}' for k, v in sampling.items())})")
    df = generate(str(run), questions, progress=progress, **sampling)
    return pd.DataFrame({"id": [q.uuid for q in questions], "question": df["question"], "response": df["response"]})


def pack(run, dest, progress: bool = True, **sampling) -> dict:
    """Write the hand-in into `dest`: model_generations.csv (the course's 20 rows), training_details.md, train.py.

    `sampling` (temperature, top_p, max_new_tokens, seed) overrides COURSE_SAMPLING when answers are sampled here.
    """
    from helpers.train import TrainConfig

    folder = run_dir(run, create=False)
    config = recorded_config(run)
    try:
        rebuilt = TrainConfig(**config).to_dict()
    except (TypeError, ValueError) as e:
        raise ValueError(f"run {folder.name!r}: its recorded config does not build a TrainConfig here ({e}); pack "
                         "with the kit version that trained it (manifest git_commit)") from None
    changed = sorted(k for k in config if rebuilt[k] != config[k])
    if changed:
        raise ValueError(f"run {folder.name!r}: this kit builds a different TrainConfig from the recorded one "
                         f"(fields {changed}); pack with the kit version that trained it (manifest git_commit)")
    details = folder / "training_details.md"
    if not details.is_file():
        raise FileNotFoundError(f"{details} does not exist: training writes it; train the run to the end first")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    answers = course_answers(run, progress=progress, **sampling)
    atomic_write_csv(answers, dest / "model_generations.csv")
    shutil.copyfile(details, dest / "training_details.md")
    atomic_write_text(dest / "train.py", train_script(run, config))
    written = ["model_generations.csv", "training_details.md", "train.py"]
    print(f"wrote {', '.join(written)} into {dest} ({len(answers)} answers); check them with "
          f"`python -m helpers.submission autograde {dest}`")
    return {"folder": str(dest), "files": written, "rows": len(answers)}
