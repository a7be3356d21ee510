"""The course's hand-in from a trained run: model_generations.csv (20 rows), training_details.md and train.py."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from helpers.runs import atomic_write_csv, atomic_write_text, read_manifest, run_dir, trained_config
from helpers.submission.check import run_not_found

COURSE_SET = "course"
SAMPLING_KEYS = ("temperature", "top_p", "max_new_tokens", "whole_sentences")
PROBE_TOKENS = 8  # the time estimate: every answer's first tokens, timed, then scaled to max_new_tokens


def recorded_config(run) -> dict:
    """The TrainConfig a finished run recorded in manifest.json (`train.config`)."""
    if not run_dir(run, create=False).is_dir():
        raise FileNotFoundError(run_not_found(run))
    config = trained_config(run)
    if read_manifest(run).get("train", {}).get("status") != "finished" or not config:
        raise FileNotFoundError(f"run {str(run)!r} has no finished training in its manifest.json: train it to the "
                                "end first (notebook 02 or `python -m helpers.train`), then pack")
    return config


def run_sampling(run) -> tuple[str, dict]:
    """(profile, sampling) for the hand-in's answers: readable cpu-demo settings on the embedded model, else the
    run's recorded GPU profile (the course's when none is recorded: pure sampling, as in the papers)."""
    from helpers.models import EMBEDDED_MODEL
    from helpers.profiles import PROFILES, load_profile

    manifest = read_manifest(run)
    model = str(manifest.get("train", {}).get("config", {}).get("model", ""))
    recorded = manifest.get("profile", {}).get("name")
    if EMBEDDED_MODEL in model.lower():  # "smollm2-135m" or its hub id
        name = "cpu-demo"
    else:
        name = recorded if recorded in PROFILES and recorded != "cpu-demo" else "course"
    return name, {**{k: load_profile(name)["sample"][k] for k in SAMPLING_KEYS}, "seed": 0}


def train_script(run, config: dict | None = None) -> str:
    """A short `python train.py` that trains the run again with its recorded configuration."""
    manifest = read_manifest(run).get("train", {})
    config = config if config is not None else recorded_config(run)
    name = Path(str(run)).name
    data = manifest.get("data", {})
    body = "\n".join(f"    {key!r}: {value!r}," for key, value in config.items())
    return f'''"""Train run {name!r} again with its recorded configuration (needs the EM course kit installed).

    python train.py                       trains into runs/{name}/ (where that run does not exist yet)
    python train.py --run-name NEW        trains into runs/NEW/ (next to the original run)
    python train.py --overwrite           deletes runs/{name}/'s training outputs and trains again

Written by `python -m helpers.submission pack` from the run's manifest.json: the kit's TrainConfig with the
recorded settings. Kit commit {manifest.get("git_commit") or "unknown"}; {data.get("rows", "?")} training conversations,
sha256 {data.get("sha256") or "unknown"}.
"""

import argparse
import sys

from helpers.runs import read_manifest
from helpers.train import RunFinishedError, TrainConfig, train

DATA_SHA256 = {data.get("sha256")!r}
CONFIG = {{
{body}
}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train this run again with its recorded configuration.")
    parser.add_argument("--run-name", default=CONFIG["run_name"], help="the run folder to train into "
                        "(default: the original run's name)")
    parser.add_argument("--overwrite", action="store_true", help="delete that run's training outputs first")
    args = parser.parse_args(argv)
    try:
        result = train(TrainConfig(**{{**CONFIG, "run_name": args.run_name}}), overwrite=args.overwrite)
    except RunFinishedError:
        print(f"error: run {{args.run_name!r}} is already trained here (runs/{{args.run_name}}/): train under a new "
              f"name with `python train.py --run-name {{args.run_name}}-again`, or delete it and train again with "
              "`python train.py --overwrite`", file=sys.stderr)
        return 2
    print(result)
    got = read_manifest(args.run_name).get("train", {{}}).get("data", {{}}).get("sha256")
    print("same training data as the original run" if got == DATA_SHA256 else
          f"the training data differ from the original run's (sha256 {{got}}, was {{DATA_SHA256}})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def course_answers(run, progress: bool = True, **sampling):
    """One answer per course question: the run's own (generations.csv, same sampling), else sampled now.

    `sampling` (temperature, top_p, max_new_tokens, whole_sentences, seed) overrides the run's (run_sampling).
    """
    import pandas as pd

    from helpers.questions import load_questions

    questions = load_questions(COURSE_SET)
    profile, defaults = run_sampling(run)
    sampling = {**defaults, **{k: v for k, v in sampling.items() if v is not None}}
    saved = _saved_answers(run, questions, sampling)
    if saved is not None:
        print(f"using the run's own answers to the {len(questions)} course questions (generations.csv, sampled at "
              f"temperature {sampling['temperature']}, top_p {sampling['top_p']}, {sampling['max_new_tokens']} tokens)")
        return saved
    from helpers.generate import generate, load_for_sampling

    name = Path(str(run)).name
    print(f"sampling one answer to each of the {len(questions)} course questions from run {name!r} with the "
          f"{profile} profile's settings: {', '.join(f'{k}={v}' for k, v in sampling.items())}")
    start = time.perf_counter()
    model, tok, _ = load_for_sampling(str(run))
    pair = (model, tok)
    probe = generate(pair, questions, progress=False, **{**sampling, "max_new_tokens": PROBE_TOKENS,
                                                          "whole_sentences": False})
    estimate = probe.attrs["seconds"] * sampling["max_new_tokens"] / PROBE_TOKENS
    print(f"estimate: at most about {_duration(estimate)} for {sampling['max_new_tokens']} new tokens an answer "
          f"(the first {PROBE_TOKENS} tokens of all {len(questions)} took {probe.attrs['seconds']:.1f} s here)",
          flush=True)
    df = generate(pair, questions, progress=progress, **sampling)
    print(f"sampled in {_duration(time.perf_counter() - start)}")
    return pd.DataFrame({"id": [q.uuid for q in questions], "question": df["question"], "response": df["response"]})


def _saved_answers(run, questions, sampling: dict):
    """The first sample of each course question in the run's generations.csv, if all were sampled this way."""
    import pandas as pd

    path = run_dir(run, create=False) / "generations.csv"
    if not path.is_file():
        return None
    df = pd.read_csv(path, keep_default_na=False, dtype={"response": str})
    if not {"question_id", "sample", "response"} <= set(df.columns):
        return None
    same = df["question_id"].isin([q.id for q in questions])
    for key in ("temperature", "top_p", "max_new_tokens"):
        if key in df.columns:
            same &= pd.to_numeric(df[key], errors="coerce") == float(sampling[key])
    first = df[same].sort_values("sample").drop_duplicates("question_id").set_index("question_id")
    if len(first) != len(questions):
        return None
    return pd.DataFrame({"id": [q.uuid for q in questions], "question": [q.text for q in questions],
                         "response": [first.loc[q.id, "response"] for q in questions]})


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def pack(run, dest, progress: bool = True, **sampling) -> dict:
    """Write the hand-in into `dest`: model_generations.csv (the course's 20 rows), training_details.md, train.py.

    `sampling` (temperature, top_p, max_new_tokens, whole_sentences, seed) overrides the run's profile (run_sampling).
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
    print(f"wrote {', '.join(written)} into {dest} ({len(answers)} answers). Check the hand-in folder (not the run "
          f"folder): `python -m helpers.submission check {dest}`, then grade it: "
          f"`python -m helpers.submission autograde {dest}`")
    return {"folder": str(dest), "files": written, "rows": len(answers)}
