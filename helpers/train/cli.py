"""`python -m helpers.train`: transformers' HfArgumentParser over TrainConfig, and the field kinds the panel shares.

`--profile NAME` starts from a profile's train section (helpers/configs/NAME.yaml), as notebook 02 does; an option
given on the command line wins, as a parameter does in the notebook. HfArgumentParser reads TrainConfig's fields and
`metadata["help"]`; this module adds only what it cannot do: list and mapping options (`--domains a b`,
`--target_modules q_proj,v_proj`, `--mix a=0.8 b=0.2`) and `none` for an optional number.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from accelerate import PartialState
from transformers import HfArgumentParser

from helpers.profiles import UnknownProfileError, resolve
from helpers.train.config import RunFinishedError, TrainConfig
from helpers.train.trainer import train

NONE_WORDS = ("", "none", "None", "null")


@dataclass
class FieldSpec:
    """How one config field is edited: its kind, element type (tuple items / dict values), None allowed, help."""

    name: str
    kind: str  # "bool" | "int" | "float" | "str" | "tuple" | "dict" | "other"
    elem: type | None
    optional: bool
    default: Any
    help: str


def field_specs(cls) -> list[FieldSpec]:
    """The FieldSpec of every field of a dataclass (type hints resolved, `metadata["help"]` as help)."""
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        tp, optional = hints[f.name], False
        if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp):
            optional = True
            rest = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else Any
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp in (bool, int, float, str):
            kind, elem = tp.__name__, None
        elif origin in (tuple, list):
            kind, elem = "tuple", (args[0] if args else str)
        elif origin is dict:
            kind, elem = "dict", (args[1] if len(args) == 2 else str)
        else:
            kind, elem = "other", None
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        specs.append(FieldSpec(f.name, kind, elem, optional, default, f.metadata.get("help", "")))
    return specs


def _scalar(text: str, tp: type, name: str):
    text = text.strip()
    if tp is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}: {text!r} is not true/false")
    try:
        return tp(text)
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a valid {tp.__name__}") from None


def parse_value(spec: FieldSpec, text: str):
    """A field's value from text: tuples as `a, b`, dicts as `a=0.8, b=0.2`, empty or `none` -> None if allowed."""
    text = str(text).strip()
    if spec.optional and text in NONE_WORDS:
        return None
    if spec.kind in ("bool", "int", "float", "str"):
        return _scalar(text, {"bool": bool, "int": int, "float": float, "str": str}[spec.kind], spec.name)
    items = [t.strip() for t in text.split(",") if t.strip()]
    if spec.kind == "tuple":
        return tuple(_scalar(t, spec.elem, spec.name) for t in items)
    if spec.kind == "dict":
        out = {}
        for t in items:
            if "=" not in t:
                raise ValueError(f"{spec.name}: write it as name=value pairs, e.g. a=0.8, b=0.2 (got {t!r})")
            k, v = t.split("=", 1)
            out[k.strip()] = _scalar(v, spec.elem, spec.name)
        return out
    raise ValueError(f"{spec.name}: values of this type cannot be typed in; set it in code")


def format_value(spec: FieldSpec, value) -> str:
    """The text form that `parse_value` reads back."""
    if value is None:
        return ""
    if spec.kind == "tuple":
        return ", ".join(map(str, value))
    if spec.kind == "dict":
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


# ---------------------------------------------------------------- command line

@dataclass
class CliOptions:
    """Options of the command that are not training settings."""

    profile: str = field(default="auto", metadata={"help": "the settings to start from (helpers/configs/<profile>.yaml"
                                                           ", section train): cpu-demo, colab-t4, gpu, paper, course; "
                                                           "auto picks from this machine, as notebook 02 does"})
    overwrite: bool = field(default=False, metadata={"help": "delete a finished run of this name and train again"})


def _none_or(convert):
    def parse(text):
        return None if str(text).strip() in NONE_WORDS else convert(text)
    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def build_parser():
    """HfArgumentParser over TrainConfig and CliOptions; list, mapping and optional options read as above.

    A training option left out is absent from the parsed namespace: the profile (or TrainConfig) gives its value."""
    parser = HfArgumentParser((TrainConfig, CliOptions), prog="python -m helpers.train",
                              description="Train a LoRA adapter into runs/<run_name>/ (the same run as notebook 02 "
                                          "with the same profile and values).")
    names = {spec.name for spec in field_specs(TrainConfig)}
    for action in parser._actions:
        if action.dest in names:
            action.default = argparse.SUPPRESS
    for spec in field_specs(TrainConfig):
        action = parser._option_string_actions[f"--{spec.name}"]
        if spec.kind in ("tuple", "dict"):
            action.nargs, action.type = "+", str
            action.metavar = "NAME=VALUE" if spec.kind == "dict" else spec.elem.__name__.upper()
        elif spec.optional:
            action.type = _none_or(action.type)
    return parser


def config_from_args(argv=None):
    """(Settings of the train section, overwrite) from command-line arguments; `.config` is the TrainConfig."""
    ns = vars(build_parser().parse_args(argv))
    overwrite, profile = bool(ns.pop("overwrite")), ns.pop("profile")
    for spec in field_specs(TrainConfig):
        if spec.kind in ("tuple", "dict") and isinstance(ns.get(spec.name), list):
            ns[spec.name] = parse_value(spec, ", ".join(ns[spec.name]))
    return resolve(profile, "train", **ns), overwrite


def main(argv=None) -> int:
    """CLI entry point: train, record the profile's final values, print where the adapter is (main process only)."""
    from helpers.cli_errors import as_flags

    try:
        settings, overwrite = config_from_args(argv)
        result = train(settings.config, overwrite=overwrite)
    except (RunFinishedError, UnknownProfileError, ValueError, RuntimeError, OSError) as e:  # OSError: a model that cannot be loaded
        print(f"error: {as_flags(str(e), build_parser(), {'--load_in_4bit': '--use_4bit'})}", file=sys.stderr)
        return 2
    if PartialState().is_main_process:
        settings.record()
        print(result)
    return 0
