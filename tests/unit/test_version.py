"""One version number: the package, pyproject.toml and galaxy.yml agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

import qualification

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"


def test_versions_agree() -> None:
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert galaxy["version"] == pyproject["project"]["version"] == qualification.__version__
