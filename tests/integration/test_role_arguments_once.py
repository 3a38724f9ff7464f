"""The qualify playbook checks the role's arguments once (roles/qualify/tasks/once.yml), not
once per host, and still refuses a bad one before anything runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import COLLECTION, REPO, VENV_BIN

HOSTS = "h1,h2,h3,"


def _playbook(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(REPO), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_HOME=str(tmp_path / "home"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="default")
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", HOSTS, "-c", "local",
         str(COLLECTION / "playbooks" / "qualify.yml"), *extra],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )


def test_a_missing_argument_is_refused_once_before_anything_runs(tmp_path: Path) -> None:
    done = _playbook(tmp_path, "-e", "vqual_change_id=CHG0000001")
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "missing required arguments: vqual_spec" in out
    # once: one host's check, not three; and Ansible's own per-host check is not inserted
    assert out.count("fatal: [") == 1 and "fatal: [h1]" in out, out
    assert "Validating arguments against arg spec" not in out
    assert "Plan the run" not in out


def test_a_wrong_type_is_refused(tmp_path: Path) -> None:
    done = _playbook(tmp_path, "-e", "vqual_change_id=CHG0000001", "-e", "vqual_spec=x.yaml",
                     "-e", '{"vqual_tests": {"not": "a list"}}')
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "vqual_tests" in out and "Plan the run" not in out, out
