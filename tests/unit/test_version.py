"""One version number: the package, pyproject.toml and galaxy.yml agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

import qualification

REPO = Path(__file__).resolve().parents[2]


def test_versions_agree() -> None:
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert galaxy["version"] == pyproject["project"]["version"] == qualification.__version__


def test_collection_tarball_excludes_the_package_and_tests() -> None:
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert {"qualification", "tests", "bench"} <= set(galaxy["build_ignore"])
