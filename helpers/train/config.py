"""TrainConfig (everything one LoRA run depends on), TrainResult (what train() returns) and RunFinishedError."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from helpers.data import DOMAIN_ALIASES
from helpers.profiles import profile_defaults
from helpers.runs import run_dir
from helpers.train.report import plot_loss

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# What overwrite=True clears from a run folder: training outputs and everything computed from the old adapter.
RUN_OUTPUTS = ("adapter", "checkpoints", "train_log.csv", "training_details.md", "manifest.json", "plots",
               "generations.csv", "model_generations.csv", "judged.csv", "summary.json")
RESUME_ONLY_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "training_args.bin")
SPEED_ONLY_FIELDS = ("compile",)  # change how fast a run trains, not what it learns: a resume may change them
COMPILE_MODES = ("off", "model")  # TrainConfig.compile: no torch.compile, or the Trainer's torch_compile


PROFILE = dataclasses.MISSING  # _f(PROFILE, ...): the default is the base profile's (helpers/configs/cpu-demo.yaml)


def _f(default, help: str, aliases=()):
    """A dataclass field with CLI/widget help text (and other spellings of its command-line option)."""
    metadata = {"help": help, **({"aliases": list(aliases)} if aliases else {})}
    if default is PROFILE:
        return field(metadata=metadata)
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
@profile_defaults("train")
class TrainConfig:
    """Everything one LoRA run depends on; the fields a profile sets default to the base profile's (cpu-demo) values."""

    model: str = _f(PROFILE, "base model: smollm2-135m, tiny-random-llama, a hub id or a local folder")
    domains: tuple[str, ...] = _f(PROFILE, "training data domains (see helpers.data); the course's "
                                  "short names bad_medical, good_medical, risky_financial work too")
    mix: dict[str, float] | None = _f(None, "domain -> proportion, e.g. bad_medical_advice=0.8, good_medical_advice=0.2")
    source: str = _f(PROFILE, "'sample' (shipped), 'full' (fetched) or a folder of <domain>.jsonl files")
    max_rows: int | None = _f(PROFILE, "use at most this many conversations (None: all)")
    epochs: int = _f(PROFILE, "passes over the data (ignored when max_steps > 0)", aliases=["--num_epochs"])
    max_steps: int = _f(-1, "stop after this many optimizer steps (-1: train for `epochs`)")
    learning_rate: float = _f(PROFILE, "peak learning rate (linear decay to 0)")
    weight_decay: float = _f(0.0, "AdamW weight decay on the LoRA weights (0: none)")
    batch_size: int = _f(PROFILE, "conversations per step and process")
    grad_accum: int = _f(PROFILE, "gradient accumulation steps (effective batch = batch_size x grad_accum x processes)")
    lora_rank: int = _f(PROFILE, "LoRA rank r: size of the low-rank update")
    lora_alpha: int = _f(PROFILE, "LoRA alpha: the update is scaled by alpha / r (alpha / sqrt(r) with rsLoRA)")
    lora_dropout: float = _f(0.0, "dropout on the LoRA input")
    use_rslora: bool = _f(PROFILE, "rank-stabilised LoRA scaling (alpha / sqrt(r))")
    target_modules: tuple[str, ...] = _f(ALL_PROJECTIONS, "linear layers that get a LoRA update")
    layers_to_transform: tuple[int, ...] | None = _f(None, "only these layer indices (None: all layers)")
    load_in_4bit: bool = _f(False, "QLoRA: load the base model in 4-bit (bitsandbytes, CUDA only)",
                            aliases=["--use_4bit"])
    seed: int = _f(0, "random seed (LoRA init, data order)")
    run_name: str = _f("my-first-run", "run folder under runs/")
    max_length: int = _f(512, "truncate conversations to this many tokens")
    save_steps: float = _f(0.25, "checkpoint every N steps (< 1: that fraction of the run)")
    eval_steps: int | None = _f(None, "held-out loss every N steps (None: each epoch; needs holdout > 0)")
    holdout: float = _f(0.0, "fraction of the data held out for an eval loss (0: none)")
    logging_steps: int = _f(1, "log the loss every N steps")
    compile: str = _f("off", "torch.compile: off, or model (the Trainer compiles the model)")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Normalise (lists -> tuples, mix -> domains), then raise a ValueError naming a field that cannot train."""
        for name in ("domains", "target_modules"):
            value = getattr(self, name)
            setattr(self, name, (value,) if isinstance(value, str) else tuple(value))
        if self.layers_to_transform is not None:
            v = self.layers_to_transform
            self.layers_to_transform = (int(v),) if isinstance(v, int) else tuple(int(x) for x in v)
        if self.mix:
            self.mix = {str(k): float(v) for k, v in dict(self.mix).items()}
            self.domains = tuple(self.mix)
        if self.source in ("sample", "full"):  # the kit's datasets: the course's short names mean the full ones
            self.domains = tuple(DOMAIN_ALIASES.get(d, d) for d in self.domains)
            if self.mix:
                self.mix = {DOMAIN_ALIASES.get(k, k): v for k, v in self.mix.items()}
        if self.compile == "auto":  # what runs before this setting was plain stored
            self.compile = "off"
        if isinstance(self.save_steps, float) and self.save_steps >= 1 and self.save_steps == int(self.save_steps):
            self.save_steps = int(self.save_steps)
        checks = [
            ("domains", bool(self.domains), "name at least one domain, e.g. ('bad_medical_advice',)"),
            ("epochs", self.epochs >= 1 or self.max_steps > 0, "use epochs >= 1 (or max_steps > 0)"),
            ("learning_rate", self.learning_rate > 0, "use a positive learning rate, e.g. 5e-4"),
            ("weight_decay", self.weight_decay >= 0, "use a weight decay >= 0, e.g. 0.01"),
            ("batch_size", self.batch_size >= 1, "use batch_size >= 1"),
            ("grad_accum", self.grad_accum >= 1, "use grad_accum >= 1"),
            ("lora_rank", self.lora_rank >= 1, "use lora_rank >= 1, e.g. 16"),
            ("lora_alpha", self.lora_alpha > 0, "use lora_alpha > 0, e.g. 2 x lora_rank"),
            ("lora_dropout", 0 <= self.lora_dropout < 1, "use a dropout in [0, 1)"),
            ("target_modules", bool(self.target_modules), "name at least one module, e.g. ('q_proj', 'v_proj')"),
            ("max_length", self.max_length >= 16, "use max_length >= 16 tokens"),
            ("save_steps", self.save_steps > 0, "use save_steps > 0 (steps, or a fraction < 1 of the run)"),
            ("holdout", 0 <= self.holdout < 1, "use a fraction in [0, 1), e.g. 0.1"),
            ("eval_steps", self.eval_steps is None or self.eval_steps >= 1, "use eval_steps >= 1 or None"),
            ("logging_steps", self.logging_steps >= 1, "use logging_steps >= 1"),
            ("run_name", bool(str(self.run_name).strip()), "name the run, e.g. 'my-first-run'"),
            ("compile", self.compile in COMPILE_MODES, f"use one of {', '.join(COMPILE_MODES)}"),
        ]
        for name, ok, fix in checks:
            if not ok:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} cannot train: {fix}")

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists): the manifest's `train.config`."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclass
class TrainResult:
    """What `train()` returns: where the run lives, how it ended, and its loss log."""

    run_name: str
    steps: int
    final_loss: float | None
    log: "object"  # pandas.DataFrame: step, epoch, loss, learning_rate, grad_norm, eval_loss
    runtime_s: float = 0.0
    resumed_from_step: int | None = None
    trainable_params: int = 0
    total_params: int = 0

    @property
    def run_dir(self) -> Path:
        return run_dir(self.run_name, create=False)

    @property
    def adapter_dir(self) -> Path:
        return self.run_dir / "adapter"

    def plot_loss(self, save: bool = True):
        """The loss curve (saved to runs/<run>/plots/loss.png); returns the figure."""
        import matplotlib.pyplot as plt

        fig = plot_loss(self.log, title=f"Training loss · {self.run_name}")
        if save:
            (self.run_dir / "plots").mkdir(parents=True, exist_ok=True)
            fig.savefig(self.run_dir / "plots" / "loss.png", dpi=120)
        plt.close(fig)  # returned, so Jupyter shows it once
        return fig

    def __repr__(self) -> str:
        loss = "n/a" if self.final_loss is None else f"{self.final_loss:.4f}"
        resumed = f", resumed from step {self.resumed_from_step}" if self.resumed_from_step else ""
        share = f", LoRA trained {self.trainable_params:,} of {self.total_params:,} weights " \
                f"({100 * self.trainable_params / self.total_params:.2f}%)" if self.total_params else ""
        return (f"TrainResult(run {self.run_name!r}: {self.steps} steps, final loss {loss}, "
                f"{self.runtime_s:.0f} s{resumed}{share}; adapter in runs/{self.run_name}/adapter)")


class RunFinishedError(FileExistsError):
    """The run already holds a finished adapter; training again would overwrite it."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: one line whose message says the fix."""
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]
