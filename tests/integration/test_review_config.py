"""Real `vqual qualify` runs: run.start records the site settings in force; a waiver approved
by the run's own initiator does not waive that run's failure."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from tests.conftest import run_vqual
from tests.integration.reviewflow import (
    FAILING,
    PASSING,
    add_person,
    bundle_records,
    executor,
    qualify,
    small_spec,
    vqual_with_passphrase,
)


def test_run_start_records_the_config_in_force(tmp_path: Path) -> None:
    state = tmp_path / "state"
    executor(state)
    text = "change_id_pattern: '^CHG[0-9]{7}$'\nrequire_protocol_approval: false\n"
    (state / "config.yaml").write_text(text)
    spec = small_spec(tmp_path, [PASSING])
    done, summary = qualify(state, tmp_path / "evidence", spec, "CHG0006101")
    assert done.returncode == 0, done.stdout + done.stderr
    config = bundle_records(Path(summary["bundle"]))[0]["data"]["config"]
    assert config == {
        "file": "config.yaml",
        "digest": hashlib.sha256(text.encode()).hexdigest(),
        "settings": {
            "change_id_pattern": "^CHG[0-9]{7}$",
            "require_protocol_approval": False,
            "require_signed_trust": False,
        },
    }
    # A malformed file stops the run before anything executes, naming file and line.
    (state / "config.yaml").write_text(text + "require_protocol_aproval: true\n")
    done, _ = qualify(state, tmp_path / "evidence", spec, "CHG0006102")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{state / 'config.yaml'}:3: unknown setting 'require_protocol_aproval'" in done.stderr
    assert not (tmp_path / "evidence" / "CHG0006102").exists()


def test_a_waiver_by_the_runs_initiator_does_not_waive_its_failure(tmp_path: Path) -> None:
    state = tmp_path / "state"
    executor(state)
    # reviewflow.qualify runs as initiator "Ian Initiator"; Ian is also an approver.
    ian = add_person(state, "Ian Initiator", "ian@example.com", "approver")
    folder = state / "deviations" / "CHG0006103"
    folder.mkdir(parents=True)
    entry = {
        "id": "DEV-010",
        "test_id": FAILING["id"],
        "target": "localhost",
        "justification": "accepted until the rebuild",
        "expiry": (datetime.now(UTC) + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "owner": "ops@example.com",
    }
    doc = {"version": 1, "change_id": "CHG0006103", "deviations": [entry]}
    (folder / "deviations.yaml").write_text(yaml.safe_dump(doc))
    signed = vqual_with_passphrase(
        "deviation", "approve", "CHG0006103", "DEV-010", "--key", str(ian), state_dir=state
    )
    assert signed.returncode == 0, signed.stderr
    spec = small_spec(tmp_path, [PASSING, FAILING])
    done, summary = qualify(state, tmp_path / "evidence", spec, "CHG0006103")
    assert done.returncode == 1, done.stdout + done.stderr
    assert summary["counts"]["fail"] == 1 and summary["counts"]["waived"] == 0
    assert summary["verification"] == "valid"
    kinds = [r["kind"] for r in bundle_records(Path(summary["bundle"]))]
    assert "deviation.waiver" not in kinds
    assert run_vqual("verify", summary["bundle"], state_dir=state).returncode == 0
