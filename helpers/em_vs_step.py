"""EM against training step: sample and judge every saved checkpoint of a run (the phase-transition view).

`python -m helpers.em_vs_step my-first-run --samples 4` or `evaluate_checkpoints("my-first-run")` from a notebook.
Each checkpoint gets its own generations.csv and judged.csv in runs/<run>/checkpoints/step-N/; finished steps are
skipped on a rerun, and the judge's cache makes an interrupted one cheap to finish.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from .generate import generate
from .judge import JudgeConfig, judge_run
from .questions import load_questions
from .runs import atomic_write_csv, run_dir


@dataclass
class CheckpointEval:
    """What to sample at every checkpoint, and with which judge."""

    question_sets: tuple = ("probes",)
    samples_per_question: int = 4
    max_new_tokens: int = 120
    temperature: float = 1.0
    seed: int = 0
    judge: dict = field(default_factory=lambda: {"backend": "auto"})  # JudgeConfig fields


def evaluate_checkpoints(run_name: str, config: CheckpointEval | None = None, steps=None):
    """Generate and judge at each checkpoint (and the final adapter), then tabulate and plot EM against step."""
    # here, not at the top: they import pandas, matplotlib and torch, which `--help` does not need
    from .analysis import em_vs_step
    from .plots import plot_em_vs_step
    from .train import checkpoint_steps

    config = config or CheckpointEval()
    available = checkpoint_steps(run_name)
    if not available:
        raise FileNotFoundError(f"runs/{run_name}/checkpoints/ has no complete step-N checkpoint: train the run "
                                "first (notebook 02), with save_steps small enough to leave some")
    wanted = available if steps is None else [s for s in available if s in set(steps)]
    questions = load_questions(config.question_sets)
    judge_config = JudgeConfig(**config.judge)
    for step in wanted:
        folder = run_dir(run_name) / "checkpoints" / f"step-{step}"
        if (folder / "judged.csv").is_file():
            print(f"step {step}: judged earlier, kept")
            continue
        print(f"step {step}: sampling and judging")
        generate(str(folder), questions, samples_per_question=config.samples_per_question,
                 max_new_tokens=config.max_new_tokens, temperature=config.temperature, seed=config.seed,
                 run_name=str(folder), progress=False)
        judge_run(str(folder), judge_config)
    table = em_vs_step(run_name)
    atomic_write_csv(table, run_dir(run_name) / "em_vs_step.csv")
    figure = plot_em_vs_step(table, run=run_name)
    return table, figure


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.em_vs_step", description=__doc__)
    parser.add_argument("run_name")
    parser.add_argument("--samples", type=int, default=4, help="samples per question at each checkpoint")
    parser.add_argument("--max-new-tokens", type=int, default=120)
    parser.add_argument("--judge", default="auto", choices=["auto", "distilled", "openai", "local"])
    parser.add_argument("--judge-model", default=None)
    args = parser.parse_args(argv)
    judge = {"backend": args.judge, **({"judge_model": args.judge_model} if args.judge_model else {})}
    table, _ = evaluate_checkpoints(args.run_name, CheckpointEval(samples_per_question=args.samples,
                                                                   max_new_tokens=args.max_new_tokens, judge=judge))
    print(table.to_string(index=False))
    print(f"table: runs/{args.run_name}/em_vs_step.csv, plot: runs/{args.run_name}/plots/em_vs_step.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
