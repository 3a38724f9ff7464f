"""Forks: ``--forks``, else $ANSIBLE_FORKS, else chosen from the machine's CPUs and memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.errors import BadInputError
from qualification.execution.runner import (
    CONNECTION_DEFAULTS,
    MAX_FORKS,
    MIN_FORKS,
    PlaybookRun,
    _environment,
    choose_forks,
    default_forks,
)
from tests.conftest import run_vqual


def test_default_forks_grow_with_cpus_within_bounds() -> None:
    assert default_forks(cpus=1, available_mb=100_000) == MIN_FORKS
    assert default_forks(cpus=2, available_mb=100_000) == 8
    assert default_forks(cpus=4, available_mb=100_000) == 16
    assert default_forks(cpus=64, available_mb=100_000) == MAX_FORKS


def test_default_forks_are_bounded_by_memory() -> None:
    assert default_forks(cpus=16, available_mb=1000) == 10
    assert default_forks(cpus=16, available_mb=50) == 1


def test_the_option_wins_then_the_environment() -> None:
    assert choose_forks(3, {"ANSIBLE_FORKS": "20"}) == 3
    assert choose_forks(None, {"ANSIBLE_FORKS": "20"}) == 20
    assert choose_forks(None, {}) == default_forks()


@pytest.mark.parametrize("bad", ["0", "many", "-2"])
def test_a_bad_environment_value_is_bad_input(bad: str) -> None:
    with pytest.raises(BadInputError, match="ANSIBLE_FORKS"):
        choose_forks(None, {"ANSIBLE_FORKS": bad})


def test_pipelining_and_controlpersist_unless_the_environment_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = PlaybookRun(playbook="qualify.yml", inventory=tmp_path, extravars={},
                      key_file=tmp_path / "k", evidence_dir=tmp_path, state_dir=tmp_path,
                      initiator="t")
    monkeypatch.delenv("ANSIBLE_PIPELINING", raising=False)
    monkeypatch.delenv("ANSIBLE_SSH_ARGS", raising=False)
    env = _environment(run, tmp_path, tmp_path)
    assert env["ANSIBLE_PIPELINING"] == "True"
    assert "ControlPersist" in env["ANSIBLE_SSH_ARGS"]
    monkeypatch.setenv("ANSIBLE_PIPELINING", "False")
    env = _environment(run, tmp_path, tmp_path)
    assert "ANSIBLE_PIPELINING" not in env  # the site's own value reaches Ansible
    assert set(CONNECTION_DEFAULTS) == {"ANSIBLE_PIPELINING", "ANSIBLE_SSH_ARGS"}


def test_forks_zero_is_refused_in_one_line(executor_state: Path, tmp_path: Path) -> None:
    done = run_vqual("qualify", "-i", str(tmp_path), "-s", "linux-virt-host", "-c", "CHG1",
                     "--forks", "0", state_dir=executor_state)
    assert done.returncode == 2
    assert "--forks" in done.stderr and "Traceback" not in done.stderr
