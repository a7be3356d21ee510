"""The kit's repository URL, kept in one place: `[project.urls] Repository` in pyproject.toml.

README's Colab badges, each notebook's badge and its Colab install cell (`KIT_REPO = "..."`), and the classroom
workflow's default install (course/autograde.yml) carry copies:
`python -m helpers.maintainer.kit_repo set https://github.com/<org>/<repo>` rewrites them all and rebuilds the notebooks;
`python -m helpers.maintainer.kit_repo check` lists any copy that differs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from helpers.runs import REPO_ROOT

_PYPROJECT = re.compile(r'^(Repository\s*=\s*")([^"]*)(")', re.M)
_INSTALL = re.compile(r'^(KIT_REPO\s*=\s*")([^"]*)(")', re.M)
_BADGE = re.compile(r"(https://colab\.research\.google\.com/github/)([^/\s)]+/[^/\s)]+)(/blob/)")
_WORKFLOW = re.compile(r"(git\+)(https://github\.com/[^@'\"\s]+)(@)")
_GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$")


_NAMES = {_BADGE: "Colab badge", _INSTALL: "KIT_REPO =", _WORKFLOW: "git+https://github.com/... install"}


def kit_repo(root: Path = REPO_ROOT) -> str:
    """The repository URL the kit is installed from in Colab."""
    found = _PYPROJECT.search((root / "pyproject.toml").read_text(encoding="utf-8"))
    if not found:
        raise ValueError(f"{root / 'pyproject.toml'}: no `Repository = \"...\"` under [project.urls]")
    return found[2]


def _copies(root: Path) -> dict[Path, list[re.Pattern]]:
    """Files holding a copy of the URL, and the patterns that find it there."""
    files = {root / "README.md": [_BADGE]}
    files.update({p: [_BADGE, _INSTALL] for p in sorted((root / "notebooks").glob("*.py"))})
    files[root / "course" / "autograde.yml"] = [_WORKFLOW]
    return files


def _slug(url: str) -> str:
    m = _GITHUB.match(url)
    if not m:
        raise ValueError(f"{url!r} is not a GitHub repository URL like https://github.com/<org>/<repo> "
                         "(Colab badges open notebooks from GitHub)")
    return m[1]


def repo_problems(root: Path = REPO_ROOT) -> list[str]:
    """Every copy of the URL that differs from pyproject.toml's."""
    url = kit_repo(root)
    want = {_BADGE: _slug(url), _INSTALL: url, _WORKFLOW: url}
    problems = []
    for path, patterns in _copies(root).items():
        text = path.read_text(encoding="utf-8")
        for pattern in patterns:
            values = [m[2] for m in pattern.finditer(text)]
            if not values:
                problems.append(f"{path.relative_to(root)}: no {_NAMES[pattern]}")
            for value in set(values) - {want[pattern]}:
                problems.append(f"{path.relative_to(root)}: {value!r} is not {want[pattern]!r} (pyproject.toml); "
                                "run `python -m helpers.maintainer.kit_repo set <url>`")
    return problems


def set_repo(url: str, root: Path = REPO_ROOT) -> list[Path]:
    """Point pyproject.toml, README and every notebook (.py and rebuilt .ipynb) at `url`; returns the changed files."""
    from helpers.maintainer.notebook_tools import build

    url = url.rstrip("/").removesuffix(".git")
    new = {_PYPROJECT: url, _BADGE: _slug(url), _INSTALL: url, _WORKFLOW: url}
    changed = []
    for path, patterns in {root / "pyproject.toml": [_PYPROJECT], **_copies(root)}.items():
        text = path.read_text(encoding="utf-8")
        edited = text
        for pattern in patterns:
            edited = pattern.sub(lambda m, v=new[pattern]: m[1] + v + m[3], edited)
        if edited != text:
            path.write_text(edited, encoding="utf-8")
            changed.append(path)
            if path.suffix == ".py":
                changed.append(build(path))
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.maintainer.kit_repo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("show", help="print the URL")
    sub.add_parser("check", help="list copies that differ from pyproject.toml")
    setter = sub.add_parser("set", help="point every copy at a new URL")
    setter.add_argument("url")
    args = parser.parse_args(argv)
    if args.command == "show":
        print(kit_repo())
        return 0
    if args.command == "set":
        for path in set_repo(args.url):
            print(f"updated {path.relative_to(REPO_ROOT)}")
        return 0
    problems = repo_problems()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
