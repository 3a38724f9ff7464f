"""Session fixtures: the repo, a throwaway state directory with an executor key, and the lab.

The lab (KVM hosts, guests, vCenter/ESXi simulator) is brought up once per session when
``VQUAL_LAB=1`` (the README's test command sets it) and taken down at the end, also when
tests fail. Without it, tests marked ``lab`` are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def vqual_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for running the ``vqual`` command in tests."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VQUAL_STATE_DIR"] = str(state_dir)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / ".venv" / "collections")
    env.update(extra)
    return env


def run_vqual(*args: str, state_dir: Path, cwd: Path | None = None,
              timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "vqual"), *args],
        cwd=cwd or REPO, env=vqual_env(state_dir, **env), capture_output=True, text=True,
        timeout=timeout, check=False,
    )


@pytest.fixture(scope="session")
def executor_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory whose trust store holds one throwaway executor service key."""
    state = tmp_path_factory.mktemp("state")
    done = run_vqual("keys", "create", "--name", "Test executor", "--role", "executor",
                     "--service", "--throwaway", state_dir=state)
    assert done.returncode == 0, done.stderr
    return state


@pytest.fixture(scope="session")
def lab() -> Iterator[object]:
    if os.environ.get("VQUAL_LAB") != "1":
        pytest.skip("the lab is not enabled (VQUAL_LAB=1; `scripts/run test` sets it)")
    from qualification.lab import manager

    statuses = manager.up(None)
    try:
        yield statuses
    finally:
        manager.down()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests marked lab use the lab fixture even if they forgot to ask for it.
    for item in items:
        if item.get_closest_marker("lab") and "lab" not in getattr(item, "fixturenames", []):
            item.fixturenames.append("lab")  # type: ignore[attr-defined]
