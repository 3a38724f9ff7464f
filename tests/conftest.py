"""Session fixtures: the repo, a throwaway state directory with an executor key, and the lab.

The lab (KVM hosts, guests, vCenter/ESXi simulator) is brought up once per session when
``VQUAL_LAB=1`` (the README's test command sets it) and taken down at the end, also when
tests fail. Without it, tests marked ``lab`` are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Sets VQUAL_TRUST_ROOT for every test and every vqual command they start (a real pin).
import tests.trustroot_testlib  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
#: The Ansible collection vqual.qualification in this checkout (galaxy.yml, plugins, playbooks, specs).
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def vqual_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for running the ``vqual`` command in tests: the state directory's trust
    store signed by the session's test trust root (:func:`pin_state`), pinned outside it;
    a test about legacy trust sets ``VQUAL_LEGACY_TRUST=1`` and its store is left alone."""
    if "1" not in (extra.get("VQUAL_LEGACY_TRUST"), os.environ.get("VQUAL_LEGACY_TRUST")):
        pin_state(state_dir)
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VQUAL_STATE_DIR"] = str(state_dir)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO)
    env.update(extra)
    return env


def run_vqual(*args: str, state_dir: Path, cwd: Path | None = None,
              timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "vqual"), *args],
        cwd=cwd or REPO, env=vqual_env(state_dir, **env), capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def pin_state(state_dir: Path) -> None:
    """Sign ``state_dir``'s trust store with the test trust root (tests/trustroot_testlib.py)."""
    from tests.trustroot_testlib import pin_state as _pin

    _pin(state_dir)


@pytest.fixture(scope="session")
def executor_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory whose trust store holds one throwaway executor service key."""
    state = tmp_path_factory.mktemp("state")
    done = run_vqual("keys", "create", "--name", "Test executor", "--role", "executor",
                     "--service", "--throwaway", state_dir=state)
    assert done.returncode == 0, done.stderr
    pin_state(state)  # signed now, before any record: library callers find it signed too
    return state


@pytest.fixture(scope="session")
def lab() -> Iterator[object]:
    if os.environ.get("VQUAL_LAB") != "1":
        pytest.skip("the lab is not enabled (VQUAL_LAB=1; `scripts/run test` sets it)")
    from vqual_lab import manager

    t0 = time.monotonic()
    statuses = manager.up(None)
    LAB_TIMINGS["up"] = time.monotonic() - t0
    LAB_TIMINGS["statuses"] = [f"{s.name} {s.state}: {s.detail}" for s in statuses]
    try:
        yield statuses
    finally:
        # VQUAL_LAB_KEEP=1 leaves a lab running for the next session (development only;
        # the README's test command always takes it down).
        if os.environ.get("VQUAL_LAB_KEEP") != "1":
            t0 = time.monotonic()
            manager.down()
            LAB_TIMINGS["down"] = time.monotonic() - t0


#: How long the session's lab took to come up and go down, shown in the terminal summary.
LAB_TIMINGS: dict[str, object] = {}


def pytest_terminal_summary(terminalreporter: object) -> None:
    write = terminalreporter.write_line  # type: ignore[attr-defined]
    if "rows" in COMPLIANCE:
        rows = COMPLIANCE["rows"][0]
        if COMPLIANCE["problems"]:
            write(f"compliance table: {len(COMPLIANCE['problems'])} of {rows} rows not shown by this run:")
            for problem in COMPLIANCE["problems"]:
                write(f"compliance:   {problem}")
        else:
            write(f"compliance table: all {rows} rows name a test that passed in this run")
    if "up" not in LAB_TIMINGS:
        return
    write(f"lab: up {LAB_TIMINGS['up']:.1f} s, down {LAB_TIMINGS.get('down', float('nan')):.1f} s")
    for line in LAB_TIMINGS.get("statuses", []):  # type: ignore[union-attr]
        write(f"lab:   {line}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests marked lab use the lab fixture even if they forgot to ask for it, and first:
    # fixtures are set up in this order, so a module fixture that reads the lab's inventory
    # finds the lab up even when its module is the session's first (as in test-slow).
    for item in items:
        names = getattr(item, "fixturenames", None)
        if item.get_closest_marker("lab") and names is not None:
            if "lab" in names:
                names.remove("lab")
            names.insert(0, "lab")


#: Set by the session-end compliance check for the terminal summary.
COMPLIANCE: dict[str, list[str]] = {}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With VQUAL_COMPLIANCE_CHECK=1, check docs/compliance.md against this run's own JUnit.

    Runs after pytest's junitxml plugin has written the file (trylast), so every row of the
    compliance table is checked against the results of the same CI run.
    """
    xmlpath = getattr(session.config.option, "xmlpath", None)
    if os.environ.get("VQUAL_COMPLIANCE_CHECK") != "1" or not xmlpath:
        return
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "vqual_compliance_table", REPO / "tests" / "unit" / "test_compliance_table.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    problems = module.compliance_problems(xmlpath)
    COMPLIANCE["problems"] = problems
    COMPLIANCE["rows"] = [str(len(module.ROWS))]
    if problems and session.exitstatus == 0:
        session.exitstatus = 1
