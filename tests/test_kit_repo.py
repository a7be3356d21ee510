"""The kit's repository URL lives in pyproject.toml; README, badges and Colab install cells carry the same value."""

import shutil
from pathlib import Path

import pytest

from helpers.maintainer.kit_repo import kit_repo, repo_problems, set_repo
from helpers.maintainer.notebook_tools import pair_problems

REPO = Path(__file__).resolve().parents[1]


def test_every_copy_of_the_url_matches_pyproject():
    assert kit_repo().startswith("https://github.com/")
    assert repo_problems() == []


def test_set_repo_points_readme_badges_and_install_cells_at_a_new_url(tmp_path):
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    shutil.copytree(REPO / "course", tmp_path / "course")
    (tmp_path / "README.md").write_text((tmp_path / "README.md").read_text().replace(
        "github/ai-safety-course/em-course-kit/blob/main/notebooks/03", "github/someone/else/blob/main/notebooks/03"))
    assert repo_problems(tmp_path) == ["README.md: 'someone/else' is not 'ai-safety-course/em-course-kit' "
                                       "(pyproject.toml); run `python -m helpers.maintainer.kit_repo set <url>`"]

    changed = set_repo("https://github.com/my-course/em-kit.git", tmp_path)
    assert kit_repo(tmp_path) == "https://github.com/my-course/em-kit" and repo_problems(tmp_path) == []
    assert {p.name for p in changed} >= {"pyproject.toml", "README.md", "00_setup.py", "00_setup.ipynb"}
    setup = (tmp_path / "notebooks" / "00_setup.ipynb").read_text()
    assert 'KIT_REPO = \\"https://github.com/my-course/em-kit\\"' in setup
    assert "colab.research.google.com/github/my-course/em-kit/blob/main/notebooks/00_setup.ipynb" in setup
    assert "ai-safety-course" not in (tmp_path / "README.md").read_text()
    assert "git+https://github.com/my-course/em-kit@v0.1.0" in (tmp_path / "course" / "autograde.yml").read_text()
    assert pair_problems(tmp_path / "notebooks" / "04_judging.py") == []
    with pytest.raises(ValueError, match="not a GitHub repository URL"):
        set_repo("https://gitlab.com/x", tmp_path)
