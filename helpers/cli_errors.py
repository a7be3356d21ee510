"""Error lines for a terminal: the kit's messages name Python spellings (`overwrite=True`); a command names flags.

`as_flags(message, parser)` rewrites every `name=value` whose name is an option of `parser` into the flag to type,
and `judge_cause(reason)` turns a judge call's stored error into its cause (connection refused, key refused).
"""

from __future__ import annotations

import re

_CLI_NOTE = re.compile(r"\s*\((?:CLI|command line): [^)]*\)")
_CALL = re.compile(r"`?\b[A-Z]\w*\((\w+)=('[^']*'|\w+)\)`?")  # JudgeConfig(backend='distilled')
_SET_FALSE = re.compile(r"\b(?:[Ss]et|pass) `?(\w+)=False\b`?")
_ANOTHER = re.compile(r"\banother `?(\w+)`?")  # "pick another run_name"
_ASSIGN = re.compile(r"`?\b(\w+)=('[^']*'|\"[^\"]*\"|True|False|-?[\w.]+)`?")


def flag_names(parser) -> dict[str, str]:
    """{dest: the long option to type} for an argparse parser (its first `--` spelling)."""
    names = {}
    for action in parser._actions:  # argparse keeps its options here; there is no public list
        longs = [s for s in action.option_strings if s.startswith("--")]
        if longs and action.dest not in names:
            names[action.dest] = longs[0]
    return names


def as_flags(message: str, parser, aliases: dict[str, str] | None = None) -> str:
    """`message` with each `name=value` of an option of `parser` written as the flag (`--name value`).

    `aliases` adds spellings worth naming too (e.g. {"--load_in_4bit": "--use_4bit"}); other names are left alone.
    """
    flags, aliases = flag_names(parser), aliases or {}

    def flag(name: str) -> str | None:
        f = flags.get(name)
        return f"{f}/{aliases[f]}" if f and f in aliases else f

    def call(m):
        f = flag(m.group(1))
        return f"`{f} {m.group(2).strip(chr(39))}`" if f else m.group(0)

    def unset(m):
        f = flag(m.group(1))
        return f"{'L' if m.group(0)[0].isupper() else 'l'}eave out {f}" if f else m.group(0)

    def another(m):
        f = flag(m.group(1))
        return f"another {f}" if f else m.group(0)

    def assign(m):
        name, value = m.group(1), m.group(2)
        f = flag(name)
        if not f:
            return m.group(0)
        if value == "True":
            return f
        if value == "False":
            return f"no {f}"
        return f"{f} {value.strip(chr(39)).strip(chr(34))}"

    text = _CLI_NOTE.sub("", message)
    text = _CALL.sub(call, text)
    text = _SET_FALSE.sub(unset, text)
    text = _ANOTHER.sub(another, text)
    return _ASSIGN.sub(assign, text)


def judge_cause(reason: str, base_url: str | None = None) -> str:
    """A judge call's stored error ('error: Type: message') as its cause and the fix, in one line."""
    where = base_url or "the OpenAI API"
    if "APIConnectionError" in reason or "APITimeoutError" in reason or "Connection refused" in reason:
        return (f"connection refused: nothing answered at {where}; start the server or fix --base-url "
                "(or $OPENAI_BASE_URL), then run the same command again")
    if "AuthenticationError" in reason or "401" in reason:
        return (f"key refused (401) by {where}: OPENAI_API_KEY is wrong, revoked or for another server; "
                "set the right key and run again")
    if "PermissionDeniedError" in reason or "403" in reason:
        return f"access refused (403) by {where}: this key may not use the judge model; pick another with --judge-model"
    if "RateLimitError" in reason or "429" in reason:
        return f"rate limit or quota (429) at {where}: wait, or check the key's spend limit, then run again"
    if "dollar cap" in reason:
        return "the dollar cap was reached: raise --max-dollars to judge the rest"
    return reason.removeprefix("error: ")
