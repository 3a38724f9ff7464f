"""Exit codes by verdict: one table for every command that seals a bundle; a missing optional
dependency names its extra."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from qualification.errors import (
    EXIT_BAD_INPUT,
    EXIT_BY_VERDICT,
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_PLATFORM,
    EXTRAS,
    OPTIONAL_MODULES,
    exit_code_for_verdict,
    missing_extra,
)
from qualification.evidence.records import VERDICTS


def test_every_verdict_has_its_exit_code_and_only_pass_is_success() -> None:
    assert set(EXIT_BY_VERDICT) == set(VERDICTS)
    assert {v: exit_code_for_verdict(v) for v in VERDICTS} == {
        "pass": EXIT_OK,
        "waived": EXIT_OK,  # a fail covered by an approved deviation counts as passed
        "fail": EXIT_FAILED,
        "error": EXIT_PLATFORM,
        "not-executed": EXIT_INCOMPLETE,  # planned tests without a result: never 0
    }
    assert EXIT_BAD_INPUT not in EXIT_BY_VERDICT.values()  # 2: nothing was executed
    assert exit_code_for_verdict("incomplete") == EXIT_FAILED  # unknown: never success


def test_a_missing_optional_dependency_names_the_extra_that_installs_it() -> None:
    for module, extra in OPTIONAL_MODULES.items():
        exc = ModuleNotFoundError(f"No module named {module!r}", name=f"{module}.sub")
        missing = missing_extra(exc)
        assert missing is not None and missing.extra == extra
        assert missing.exit_code == EXIT_BAD_INPUT
        assert missing.one_line().endswith(f"which is not installed: pip install 'vqual[{extra}]'")
        assert EXTRAS[extra][0] in missing.one_line()
    # Found behind the error that wrapped it; any other error is not a missing extra.
    try:
        try:
            raise ModuleNotFoundError("No module named 'pyVmomi'", name="pyVmomi")
        except ImportError as inner:
            raise RuntimeError("connect failed") from inner
    except RuntimeError as outer:
        found = missing_extra(outer)
    assert found is not None and found.extra == "vsphere"
    assert missing_extra(ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None
    assert missing_extra(ValueError("libvirt")) is None


def test_the_extras_are_those_pyproject_declares_and_not_core_dependencies() -> None:
    declared = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    project = declared["project"]
    core = {Requirement(r).name.lower() for r in project["dependencies"]}
    for extra, (package, _purpose) in EXTRAS.items():
        names = {Requirement(r).name.lower() for r in project["optional-dependencies"][extra]}
        # The server extra is a stack (docs/server.md); its message names the web framework.
        assert (package in names) if extra == "server" else (names == {package}), extra
        assert not names & core, extra
    assert set(OPTIONAL_MODULES.values()) == set(EXTRAS)
