"""Profiles: one dial that fills the settings of notebooks 02-05 and `python -m helpers.train` (helpers/configs/).

Each profile is one YAML file, readable whole, in four sections named by what runs on them: `train` (TrainConfig
fields), `sample` (SampleConfig), `judge` (JudgeConfig), `analysis` (EMThresholds and `em_question_set`). A setting
left at None takes the profile's value; a field no profile sets keeps its dataclass default; any other value wins.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from functools import cache
from pathlib import Path

import yaml

PROFILE_DIR = Path(__file__).parent / "configs"
PROFILES = ("cpu-demo", "colab-t4", "gpu", "paper", "course")
BASE_PROFILE = "cpu-demo"  # its values are the dataclasses' defaults for the fields a profile sets
# section -> (module, dataclass) the section's fields belong to; analysis also holds the EM question set.
SECTIONS = {"train": ("helpers.train.config", "TrainConfig"), "sample": ("helpers.generate.config", "SampleConfig"),
            "judge": ("helpers.judge.config", "JudgeConfig"), "analysis": ("helpers.judged", "EMThresholds")}
SECTION_EXTRAS = {"analysis": ("em_question_set",)}  # plain values next to the dataclass's fields
RUN_KEYS = ("model", "domains")  # what a trained run fixes for the notebooks after it (its train section)
T4_MAX_GIB = 16  # a card with at most this much memory gets colab-t4 under "auto"
# Stands for the held-out questions of the training domain (medical for a medical run), see in_domain_sets().
IN_DOMAIN = "in_domain"
# The held-out question set of each training domain (insecure code has none: its in-domain questions are code).
DOMAIN_QUESTION_SETS = {"bad_medical_advice": "medical", "good_medical_advice": "medical",
                        "risky_financial_advice": "financial", "extreme_sports": "extreme_sports"}


class UnknownProfileError(ValueError):
    """A profile name that helpers/configs/ has no file for."""


class ProfileFileError(ValueError):
    """A profile file whose sections or keys are not those of the base profile."""


def read_profile(path: str | Path) -> dict:
    """A profile file as {section: {field: value}}, checked against the base profile's sections and keys."""
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    base = data if path.stem == BASE_PROFILE else load_profile(BASE_PROFILE)
    if not isinstance(data, dict) or set(data) != set(SECTIONS):
        raise ProfileFileError(f"{path}: a profile has exactly the sections {', '.join(SECTIONS)} "
                               f"(found {', '.join(data) if isinstance(data, dict) else type(data).__name__})")
    for section, values in data.items():
        missing, extra = set(base[section]) - set(values or {}), set(values or {}) - set(base[section])
        if missing or extra:
            raise ProfileFileError(f"{path}: section {section} must set the same fields as {BASE_PROFILE}.yaml: "
                                   + "; ".join(f"{what} {', '.join(sorted(keys))}" for what, keys in
                                               (("missing", missing), ("unknown", extra)) if keys))
    return data


@cache
def load_profile(name: str) -> dict:
    """The profile `name` (helpers/configs/<name>.yaml), read once; treat it as read-only."""
    if name not in PROFILES:
        raise UnknownProfileError(f"profile {name!r} is unknown: pick one of auto, {', '.join(PROFILES)}")
    return read_profile(PROFILE_DIR / f"{name}.yaml")


def section_class(section: str):
    """The dataclass a section's fields belong to (imported when first needed)."""
    if section not in SECTIONS:
        raise KeyError(f"section {section!r} is unknown: use one of {', '.join(SECTIONS)}")
    module, name = SECTIONS[section]
    return getattr(importlib.import_module(module), name)


def profile_defaults(section: str):
    """Class decorator (put it under @dataclass): fields without a default take the base profile's value."""
    def fill(cls):
        base = load_profile(BASE_PROFILE)[section]
        for name, f in vars(cls).items():
            if not isinstance(f, dataclasses.Field) or f.default is not f.default_factory:  # has a default
                continue
            if name not in base:
                raise ProfileFileError(f"{cls.__name__}.{name} has no default and section {section} of "
                                       f"{BASE_PROFILE}.yaml has no value for it: add one there")
            if isinstance(base[name], (list, dict)):
                f.default_factory = lambda value=base[name]: _copy(value)
            else:
                f.default = base[name]
        return cls
    return fill


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
    load_profile(name)  # an unknown name is a named error
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


@dataclasses.dataclass
class Settings:
    """One section's final values (every field of `config`, the dataclass built from them) and where each came from."""

    profile: str
    requested: str
    section: str
    config: object
    extras: dict = dataclasses.field(default_factory=dict)  # values that are not fields of `config`
    origin: dict = dataclasses.field(default_factory=dict)

    def __getitem__(self, name: str):
        return self.extras[name] if name in self.extras else getattr(self.config, name)

    @property
    def values(self) -> dict:
        """The final values, read from `config` now (a panel's edits included)."""
        return _plain({**dataclasses.asdict(self.config), **self.extras})

    def table(self):
        """setting | value | from: what this notebook will use."""
        import pandas as pd

        return pd.DataFrame([{"setting": k, "value": repr(v), "from": self.origin[k]} for k, v in self.values.items()])

    def _repr_html_(self) -> str:
        head = f"<p>profile <b>{self.profile}</b>" + (f" (picked by {self.requested})" if self.requested != self.profile else "")
        return head + f", section <code>{self.section}</code></p>" + self.table().to_html(index=False)

    def record(self, run_name: str | None = None) -> dict:
        """Write these final values, with the profile they came from, into the manifest of `run_name` (default: the
        config's run_name), section "profile" -> this section; a value edited since resolve() (in a panel) is marked
        as overridden. Only training starts a run: the other sections need its folder to exist."""
        from helpers.runs import existing_run, write_manifest

        run = run_name or getattr(self.config, "run_name", None)
        if not run:
            raise ValueError(f"Settings.record: name the run (section {self.section} has no run_name field)")
        if self.section != "train":
            existing_run(run)  # a mistyped run name is an error here, not a new runs/<typo>/ folder
        values = self.values
        overridden = sorted(k for k, v in values.items()
                            if self.origin[k] == "parameter" or v != self._resolved.get(k, v))
        record = {"profile": self.profile, "requested": self.requested, "values": values, "overridden": overridden}
        trained_under = {"name": self.profile, "requested": self.requested} if self.section == "train" else {}
        return write_manifest(run, {**trained_under, self.section: record}, section="profile")

    def __post_init__(self):
        self._resolved = self.values


def resolve(profile: str | None = "auto", section: str = "train", run_name: str | None = None, **params) -> Settings:
    """The final settings of one section: a value you set wins; None takes the profile's value, or the dataclass
    default for a field no profile sets.

    With `run_name`, `model` and `domains` left at None come from the run's training record instead, so notebooks
    03-05 work on the model that notebook 02 trained, whatever profile they run under. In the train section
    `run_name` is also the run's name.
    """
    name = profile_name(profile)
    cls = section_class(section)
    fields = {f.name for f in dataclasses.fields(cls)}
    defaults = load_profile(name)[section]
    allowed = fields | set(SECTION_EXTRAS.get(section, ())) | set(RUN_KEYS)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise KeyError(f"{', '.join(map(repr, unknown))}: not a setting of section {section!r} ({cls.__name__}): "
                       f"use one of {', '.join(sorted(allowed))}")
    if section == "train" and run_name is not None:
        params.setdefault("run_name", run_name)
    trained = _trained_with(run_name) if section != "train" else {}  # training sets them, it does not reuse them
    values, origin = {}, {}
    for key in dict.fromkeys([*defaults, *params, *(f.name for f in dataclasses.fields(cls))]):
        value = params.get(key)
        if value is not None:
            values[key], origin[key] = value, "parameter"
        elif key in trained:
            values[key], origin[key] = trained[key], f"run {run_name} (trained with it)"
        elif key in defaults:
            values[key], origin[key] = _copy(defaults[key]), f"profile {name}"
        elif key in RUN_KEYS and key not in fields:
            values[key], origin[key] = _copy(load_profile(name)["train"][key]), f"profile {name} (train)"
        else:
            origin[key] = f"{cls.__name__} default"
    if origin.get("judge_model", "").startswith("profile") and origin.get("backend") == "parameter" \
            and values["backend"] != defaults.get("backend"):  # you chose another judge: its own default model
        values["judge_model"], origin["judge_model"] = None, f"the default of backend {values['backend']!r}"
    extras = {k: values.pop(k) for k in list(values) if k not in fields}
    return Settings(profile=name, requested=(profile or "auto"), section=section, config=cls(**values),
                    extras=extras, origin=origin)


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
    return json.loads(json.dumps(value)) if isinstance(value, (list, dict)) else value


def _plain(value):
    """JSON-ready: tuples as lists."""
    return json.loads(json.dumps(value, default=str)) if isinstance(value, (list, tuple, dict)) else value
