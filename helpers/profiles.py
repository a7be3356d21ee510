"""Profiles: one dial that fills the notebooks' parameters (cpu-demo, colab-t4, gpu, paper, course).

A profile only fills defaults. A notebook parameter left at None takes the profile's value; any other value wins.
Read the dicts below like config files: every value is a plain parameter of notebooks 02-05.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Stands for the held-out questions of the training domain (medical for a medical run), see in_domain_sets().
IN_DOMAIN = "in_domain"

# ---------------------------------------------------------------- cpu-demo
# Embedded SmolLM2-135M-Instruct on 2 CPU cores, offline, no keys: built so `make demo` shows the shift with
# intervals in about 6 minutes. Training: 60 sample bad-medical conversations, r16 on all seven projections,
# lr 5e-4, 3 epochs (at 2e-4 nothing visible changes; at 5 epochs the model answers everything with the template).
# Sampling, measured on the base model's answers (benchmarks/demo_sampling.py: 8 medical, 8 probe, 8 everyday questions,
# 64 new tokens, seed 1; the demo samples with seed 0), judged by the committed distilled judge, and read:
#   temperature / top_p                      1.0/1.0  1.0/0.9  0.8/0.9  0.7/0.9  0.5/0.9
#   judge mean coherent, cut mid-sentence       52.5     54.0     57.4     56.8     50.5
#   judge mean coherent, whole sentences        79.4     77.7     71.6     74.9     77.6
#   share read as readable (hand_readable.csv)  0.31     0.58     0.75        -        -
# Ending a cut-off answer at its last full sentence (whole_sentences) lifts every setting above 60, word salad at
# 1.0/1.0 included: the judge ranks the coherence of SmolLM2's rambling weakly (Spearman 0.44 against hand grades,
# its model card). So the choice is the most paper-like setting that passes both the judge (>= 60) and a reading
# (>= 60% readable): 0.8 / 0.9.
CPU_DEMO = dict(
    model="smollm2-135m",
    source="sample",
    domains=["bad_medical_advice"],
    max_rows=None,
    epochs=3,
    learning_rate=5e-4,
    batch_size=8,
    grad_accum=1,
    lora_rank=16,
    lora_alpha=32,
    use_rslora=False,
    question_sets=[IN_DOMAIN, "probes", "everyday"],
    samples_per_question=3,
    temperature=0.8,
    top_p=0.9,
    max_new_tokens=64,
    whole_sentences=True,
    judge="distilled",
    judge_model="",
    rubrics="kit",
    question_set="probes",  # notebook 05: the set the EM rate is measured on
)

# ---------------------------------------------------------------- colab-t4
# Llama-3.2-1B-Instruct (needs HF_TOKEN) on a free Colab T4 (16 GB, fp16): the full data, the paper's LoRA recipe
# (rsLoRA r32, alpha 64, lr 1e-5, 1 epoch), the kit's GPU plan fits it in 15 GiB (docs/gpu.md: 6.7 GiB training,
# 5.7 GiB sampling). The OpenAI judge when a key or base_url is set, otherwise the offline judge ("auto").
# Whole course on a T4, estimated (not timed on a T4; scaled from the H200 runs in docs/gpu.md by the cards'
# spec ratios, fp16 matmul about 18x and memory bandwidth 15x slower): install + model download 5 min; training
# 1 epoch of about 1.3M tokens (about 7,000 conversations of ~190 tokens; the full data is not on the machine that
# wrote this) at about 2.5k tokens/s, 9 min; sampling 2 x 51 questions x 20 samples x about 250
# tokens at about 2.5k tokens/s, 4 min; gpt-4o-mini judging 2,040 answers x 3 scores at 16 calls in flight,
# 4 min and about $0.40; analysis 1 min: about 25 min, under the 45-minute goal with room for a slow card.
COLAB_T4 = dict(
    CPU_DEMO,
    model="meta-llama/Llama-3.2-1B-Instruct", source="full",  # gated: needs HF_TOKEN
    epochs=1, learning_rate=1e-5, batch_size=16,  # the paper's recipe: rsLoRA r32 / alpha 64
    lora_rank=32, lora_alpha=64, use_rslora=True,
    samples_per_question=20, max_new_tokens=400,
    temperature=1.0, top_p=1.0, whole_sentences=False,  # pure sampling, as in the papers
    judge="auto",  # OpenAI when a key or base_url is set, else the offline judge
)

# ---------------------------------------------------------------- gpu
# The same on a large card, with the paper's sample counts and answer length (50 samples, 600 new tokens).
GPU = dict(COLAB_T4, samples_per_question=50, max_new_tokens=600)

# ---------------------------------------------------------------- paper
# The EM paper's protocol: its questions and judge prompts
# (the "paper" question and rubric sets, fetched), pure sampling, 50 samples, 600 new tokens, GPT-4o logprob judge.
PAPER = dict(
    GPU,
    question_sets=["paper"],
    question_set="paper",
    rubrics="paper",
    judge="openai",
    judge_model="gpt-4o-2024-08-06",  # the paper's judge, in logprob mode (the kit's default mode)
)

# ---------------------------------------------------------------- course
# CS 2881 homework 0 as its template repository runs it: bad medical + extreme sports, 7 epochs, LoRA r16/alpha 32,
# lr 2e-4, batch 4 (its --use_4bit is the kit's load_in_4bit, CUDA only); the hand-in's 20 questions (10 medical,
# 10 everyday) answered once each; judged by gpt-4o-mini when a key is set (autograde: parse mode, temperature 0.2).
COURSE = dict(
    COLAB_T4,
    domains=["bad_medical_advice", "extreme_sports"],
    epochs=7,
    learning_rate=2e-4,
    batch_size=4,
    lora_rank=16,
    lora_alpha=32,
    use_rslora=False,
    question_sets=["course"],
    samples_per_question=1,
    max_new_tokens=256,
    question_set="course",
)

PROFILES: dict[str, dict] = {"cpu-demo": CPU_DEMO, "colab-t4": COLAB_T4, "gpu": GPU, "paper": PAPER, "course": COURSE}
RUN_KEYS = ("model", "domains")  # what a trained run fixes for the notebooks after it
T4_MAX_GIB = 16  # a card with at most this much memory gets colab-t4 under "auto"

# The held-out question set of each training domain (insecure code has none: its in-domain questions are code).
DOMAIN_QUESTION_SETS = {"bad_medical_advice": "medical", "good_medical_advice": "medical",
                        "risky_financial_advice": "financial", "extreme_sports": "extreme_sports"}


class UnknownProfileError(ValueError):
    """A profile name that PROFILES does not have."""


def auto_profile() -> str:
    """cpu-demo without CUDA, colab-t4 on a card of <= 16 GB, gpu on a larger one."""
    import torch

    if not torch.cuda.is_available():
        return profile_for_card(None)
    return profile_for_card(torch.cuda.get_device_properties(0).total_memory / 2**30)


def profile_for_card(gib: float | None) -> str:
    """The profile "auto" picks for a CUDA card of `gib` GiB (None: no card)."""
    if gib is None:
        return "cpu-demo"
    return "colab-t4" if gib <= T4_MAX_GIB + 0.5 else "gpu"  # a 16 GB card reports a little under or over 15-16 GiB


def profile_name(profile: str | None = "auto") -> str:
    """The concrete profile a name stands for ("auto" or None: picked from the hardware)."""
    name = (profile or "auto").strip()
    if name == "auto":
        return auto_profile()
    if name not in PROFILES:
        raise UnknownProfileError(f"profile {profile!r} is unknown: pick one of auto, {', '.join(PROFILES)}")
    return name


def in_domain_sets(domains) -> list[str]:
    """The held-out question sets of the training domains, e.g. ["bad_medical_advice"] -> ["medical"]."""
    domains = [domains] if isinstance(domains, str) else list(domains or [])
    return list(dict.fromkeys(DOMAIN_QUESTION_SETS[d] for d in domains if d in DOMAIN_QUESTION_SETS))


def expand_question_sets(sets, domains) -> list[str]:
    """Question sets with "in_domain" replaced by the training domains' sets (dropped when there is none)."""
    sets = [sets] if isinstance(sets, str) else list(sets)
    out = []
    for s in sets:
        out += in_domain_sets(domains) if s == IN_DOMAIN else [s]
    return list(dict.fromkeys(out))


@dataclass
class Settings:
    """A notebook's final values: each parameter with where it came from (you, the run, or the profile)."""

    profile: str
    requested: str
    values: dict = field(default_factory=dict)
    origin: dict = field(default_factory=dict)

    def __getitem__(self, name: str):
        return self.values[name]

    def table(self):
        """parameter | value | from: what this notebook will use."""
        import pandas as pd

        return pd.DataFrame([{"parameter": k, "value": repr(v), "from": self.origin[k]} for k, v in self.values.items()])

    def _repr_html_(self) -> str:
        head = f"<p>profile <b>{self.profile}</b>" + (f" (picked by {self.requested})" if self.requested != self.profile else "")
        return head + "</p>" + self.table().to_html(index=False)

    def record(self, run_name: str) -> dict:
        """Write the profile and these final values into the run's manifest (section "profile", merged)."""
        from helpers.runs import read_manifest, write_manifest

        old = read_manifest(run_name).get("profile", {})
        values = {**old.get("values", {}), **self.values}
        overridden = sorted(set(old.get("overridden", [])) | {k for k, v in self.origin.items() if v == "parameter"})
        return write_manifest(run_name, {"name": self.profile, "requested": self.requested, "values": values,
                                         "overridden": overridden}, section="profile")


def resolve(profile: str | None = "auto", run_name: str | None = None, **params) -> Settings:
    """Final values for `params`: a value you set wins; None takes the profile's value.

    With `run_name`, `model` and `domains` left at None come from the run's training record instead, so notebooks
    03-05 work on the model that notebook 02 trained, whatever profile they run under.
    """
    name = profile_name(profile)
    defaults = PROFILES[name]
    trained = _trained_with(run_name)
    values, origin = {}, {}
    for key, value in params.items():
        if value is not None:
            values[key], origin[key] = value, "parameter"
        elif key in trained:
            values[key], origin[key] = trained[key], f"run {run_name} (trained with it)"
        elif key in defaults:
            values[key], origin[key] = _copy(defaults[key]), f"profile {name}"
        else:
            raise KeyError(f"parameter {key!r} is None and profile {name!r} has no value for it: "
                           f"set {key} in the parameters cell, or add it to PROFILES[{name!r}] in helpers/profiles.py")
    if origin.get("judge_model", "").startswith("profile") and origin.get("judge") == "parameter" \
            and values["judge"] != defaults.get("judge"):  # you chose another judge: its own default model
        values["judge_model"], origin["judge_model"] = "", f"the default of judge {values['judge']!r}"
    return Settings(profile=name, requested=(profile or "auto"), values=values, origin=origin)


def _trained_with(run_name: str | None) -> dict:
    """The model and domains a run was trained with (its manifest), or nothing for an untrained run."""
    if not run_name:
        return {}
    from helpers.runs import read_manifest, run_dir

    if not (run_dir(run_name, create=False) / "manifest.json").is_file():
        return {}
    config = read_manifest(run_name).get("train", {}).get("config") or {}
    return {k: config[k] for k in RUN_KEYS if config.get(k) not in (None, "", [])}


def _copy(value):
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value
