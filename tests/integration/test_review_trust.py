"""A signed trust store in real runs: its version recorded; unsigned or tampered refused.

These are the store's own rules, which hold under legacy trust too (no pinned root: the
store is signed by a trust-admin of its own); tests/integration/test_trust_root.py has the
pinned root."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.conftest import run_vqual
from tests.integration.reviewflow import (
    PASSING,
    add_person,
    executor,
    qualify,
    small_spec,
    vqual_with_passphrase,
)


def test_signed_trust_store_version_is_recorded_and_tampering_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VQUAL_LEGACY_TRUST", "1")
    state = tmp_path / "state"
    executor(state)
    admin = add_person(state, "Tom Admin", "tom@example.com", "trust-admin")
    (state / "config.yaml").write_text("require_signed_trust: true\n")
    spec = small_spec(tmp_path, [PASSING])
    evidence = tmp_path / "evidence"

    # Unsigned: refused before anything runs.
    done, _ = qualify(state, evidence, spec, "CHG0008001")
    assert done.returncode == 2 and "trust store is not signed" in done.stderr
    assert not (evidence / "CHG0008001").exists()

    signed = vqual_with_passphrase("trust", "sign", "--key", str(admin), "--comment",
                                   "bootstrap", state_dir=state)
    assert signed.returncode == 0, signed.stderr
    done, summary = qualify(state, evidence, spec, "CHG0008001")
    assert done.returncode == 0, done.stdout + done.stderr
    line = (Path(summary["bundle"]) / "records.jsonl").read_text().splitlines()[0]
    start = json.loads(base64.b64decode(json.loads(line)["payload"]))
    assert start["data"]["trust"]["version"] == 1
    verify = run_vqual("verify", summary["bundle"], "--json", state_dir=state)
    assert verify.returncode == 0 and json.loads(verify.stdout)["trust_version"] == 1
    shown = run_vqual("verify", summary["bundle"], state_dir=state).stdout
    assert "(signed version 1)" in shown and "legacy: no trust root" in shown

    # Someone edits trust.yaml by hand: verification and runs refuse it.
    trust = state / "trust.yaml"
    good = trust.read_bytes()
    trust.write_bytes(good.replace(b"- executor", b"- executor\n  - approver", 1))
    refused = run_vqual("verify", summary["bundle"], state_dir=state)
    # The evidence cannot be vouched for: invalid (exit 1), naming why.
    assert refused.returncode == 1 and "unsigned change or tampering" in refused.stderr
    done, _ = qualify(state, evidence, spec, "CHG0008002")
    assert done.returncode == 2 and "unsigned change or tampering" in done.stderr
    assert not (evidence / "CHG0008002").exists()

    trust.write_bytes(good)
    assert run_vqual("verify", summary["bundle"], state_dir=state).returncode == 0
