"""Shared steps of the review tests: people's keys and a real run, through the CLI."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, VENV_BIN, run_vqual, vqual_env

LOCAL_INV = REPO / "inventories" / "local"
PASSPHRASE = b"a long enough passphrase"


def vqual_with_passphrase(
    *args: str, state_dir: Path, passphrase: bytes = PASSPHRASE
) -> subprocess.CompletedProcess[str]:
    """Run ``vqual ARGS --passphrase-fd N`` with the passphrase written to a pipe."""
    read, write = os.pipe()
    os.write(write, passphrase + b"\n")
    os.close(write)
    try:
        return subprocess.run(
            [str(VENV_BIN / "vqual"), *args, "--passphrase-fd", str(read)],
            cwd=REPO,
            env=vqual_env(state_dir),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            pass_fds=(read,),
        )
    finally:
        os.close(read)


def add_person(state: Path, name: str, identity: str, *roles: str) -> Path:
    """A passphrase-protected key for ``name`` with ``roles``, trusted in ``state``."""
    key = state / "people" / f"{identity}.pem"
    role_args = [a for r in roles for a in ("--role", r)]
    done = vqual_with_passphrase(
        "keys",
        "create",
        "--name",
        name,
        "--identity",
        identity,
        *role_args,
        "--out",
        str(key),
        state_dir=state,
    )
    assert done.returncode == 0, done.stderr
    return key


def small_spec(folder: Path, tests: list[dict[str, Any]], name: str = "review") -> Path:
    spec = {
        "apiVersion": "vqual/v1",
        "kind": "Protocol",
        "metadata": {"name": name, "title": "Protocol for review tests", "version": "1.0"},
        "requirements": ["URS-HV-02"],
        "tests": tests,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def host_test(test_id: str, check: str, params: dict[str, Any], expect: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": test_id,
        "title": f"{check} {params}",
        "protocol": "IQ",
        "requirements": ["URS-HV-02"],
        "applies_to": ["linux_host"],
        "risk": ["high", "medium", "low"],
        "check": check,
        "params": params,
        "expect": expect,
        "acceptance": "as expected",
    }


PASSING = host_test(
    "IQ-R-001", "file_exists", {"path": "/etc/passwd"}, {"op": "equals", "value": True}
)
FAILING = host_test(
    "IQ-R-002", "os_release", {"field": "ID"}, {"op": "equals", "value": "not-an-os"}
)


def qualify(
    state: Path, evidence: Path, spec: Path, change: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = run_vqual(
        "qualify",
        "--evidence-dir",
        str(evidence),
        "-i",
        str(LOCAL_INV),
        "-s",
        str(spec),
        "-c",
        change,
        "--limit",
        "localhost",
        "--json",
        "--initiator",
        "Ian Initiator",
        *args,
        state_dir=state,
    )
    summary = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return done, summary


def executor(state: Path) -> None:
    done = run_vqual(
        "keys",
        "create",
        "--name",
        "CI executor",
        "--role",
        "executor",
        "--service",
        "--throwaway",
        state_dir=state,
    )
    assert done.returncode == 0, done.stderr


def bundle_records(bundle: Path) -> list[dict[str, Any]]:
    """The records of a bundle, decoded (no verification: the tests verify separately)."""
    return [
        json.loads(base64.b64decode(json.loads(line)["payload"]))
        for line in (bundle / "records.jsonl").read_text().splitlines()
    ]
