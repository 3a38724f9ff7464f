"""The migration summary run (``vqual migrate summary``, docs/conversion.md "Migrating a
platform"; VQ-85): on a change with two VMs' baselines, conversions and decommissionings (real
signed bundles through the real writer), the summary cites each run's seal, verifies alone
and with its change; it is refused while a conversion bundle does not verify, or a VM has no
conversion; a source kept counts as not executed; a cited run replaced afterwards makes the
change invalid, naming the summary. The lab test (tests/lab/test_migration.py) makes the same
change with real conversions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from qualification.cli import main
from qualification.errors import BadInputError, EvidenceIncompleteError, EvidenceInvalidError
from qualification.evidence.bundle import BundleWriter, latest_seal
from qualification.evidence.change import verify_change
from qualification.evidence.verify import verify_bundle
from qualification.execution.migration import MigrationRequest, parse_vm, run_migration_summary
from qualification.signing import TrustStore
from qualification.signing.keys import Ed25519Signer
from tests.trustroot_testlib import pin_state
from tests.unit.evidence.evidence_testlib import (
    CHANGE,
    SINCE,
    Keys,
    add_renderings,
    make_keys,
    run_start_data,
)

VMS = (("clone1", "clone1-kvm2"), ("clone2", "clone2-kvm2"))


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Keys, Path]:
    keys = make_keys(tmp_path)
    private = Ed25519PrivateKey.generate()
    key_file = tmp_path / "keys" / "executor.pem"
    key_file.parent.mkdir()
    key_file.write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    key_file.chmod(0o600)
    keys.trust.add_key(public_key_pem=Ed25519Signer(private).public_pem(), name="Migration",
                       identity="svc-migrate@example.com", roles=["executor"], valid_from=SINCE)
    keys.trust.save()
    pin_state(tmp_path)
    keys.trust = TrustStore.load(tmp_path / "trust.yaml")
    return keys, key_file


def _run(evidence: Path, keys: Keys, run_id: str, mode: str, target: str,
         block: dict[str, Any] | None = None, verdict: str = "pass") -> tuple[Path, str]:
    """A sealed run of ``mode`` on ``target`` (no test: the summary reads run.start and
    run.end), citing the change's latest seal as a run does."""
    w = BundleWriter.create(evidence, CHANGE, run_id, keys.executor, "jane.doe")
    start = {**run_start_data(latest_seal(evidence, CHANGE)), "planned": [], "mode": mode,
             "targets": [{"name": target, "kinds": ["clone"], "risk": "high"}]}
    if block is not None:
        start[mode] = block
    w.append("run.start", start)
    add_renderings(w)
    counts = {"pass": 0, "fail": 0, "error": 0, "not-executed": 0, "waived": 0}
    return w.path, w.seal(counts, 0, 0, verdict)


def _migration(evidence: Path, keys: Keys, *, decommission: bool = True) -> dict[str, Path]:
    runs: dict[str, Path] = {}
    for n, (source, target) in enumerate(VMS, start=1):
        path, seal = _run(evidence, keys, f"20260301T10000{n}Z-base{n}0", "qualify", source)
        runs[f"baseline {source}"] = path
        block = {"baseline_bundle": str(path), "baseline_seal": seal,
                 "baseline_change_id": CHANGE, "baseline_run_id": path.name,
                 "source": {"subject": source, "digest": "ab" * 32}, "rules": {}}
        runs[f"conversion {source}"] = _run(
            evidence, keys, f"20260301T11000{n}Z-conv{n}0", "conversion", target, block)[0]
    if decommission:
        runs["decommission"] = _run(
            evidence, keys, "20260301T120000Z-decom0", "decommission", VMS[0][0],
            {"evidence_dir": str(evidence), "targets": {s: {"bundles": [], "backups": []}
                                                        for s, _ in VMS}})[0]
    return runs


def _summary(change: Path, key_file: Path, vms: Any = VMS) -> Any:
    return run_migration_summary(MigrationRequest(
        change_dir=change, vms=list(vms), key_file=key_file, passphrase_reader=lambda: b"",
        state_dir=change.parent.parent, initiator="ci"))


def test_the_summary_cites_every_vms_runs_by_seal_and_verifies(
    tmp_path: Path, keys: tuple[Keys, Path]
) -> None:
    evidence = tmp_path / "evidence"
    runs = _migration(evidence, keys[0])
    summary = _summary(evidence / CHANGE, keys[1])
    assert (summary.verdict, summary.exit_code) == ("pass", 0)
    assert [(v["source"], v["target"]) for v in summary.vms] == list(VMS)
    for vm in summary.vms:
        conv = verify_bundle(runs[f"conversion {vm['source']}"], keys[0].trust, workers=1)
        base = verify_bundle(runs[f"baseline {vm['source']}"], keys[0].trust, workers=1)
        assert vm["conversion"] == {"run": conv.path.name, "seal": conv.seal_digest,
                                    "verdict": "pass"}
        assert vm["baseline"] == {"run": base.path.name, "seal": base.seal_digest}
        assert vm["decommission"]["run"] == runs["decommission"].name
    alone = verify_bundle(summary.bundle, keys[0].trust, workers=1)
    assert (alone.status, alone.planned) == ("valid", 0), alone.problems
    whole = verify_change(evidence / CHANGE, keys[0].trust, workers=1)
    assert whole.status == "valid", whole.problems
    text = summary.to_text()
    assert "clone2 -> clone2-kvm2: conversion" in text and "decommissioned by" in text


def test_a_conversion_bundle_that_does_not_verify_refuses_the_summary(
    tmp_path: Path, keys: tuple[Keys, Path]
) -> None:
    evidence = tmp_path / "evidence"
    runs = _migration(evidence, keys[0])
    report = runs["conversion clone2"] / "report.html"
    report.write_bytes(report.read_bytes() + b"<!-- edited -->")
    with pytest.raises(EvidenceInvalidError, match="does not verify, no summary written"):
        _summary(evidence / CHANGE, keys[1])
    assert len(list((evidence / CHANGE).iterdir())) == len(runs)  # nothing written


def test_a_vm_without_conversion_is_refused_and_a_kept_source_is_not_executed(
    tmp_path: Path, keys: tuple[Keys, Path]
) -> None:
    evidence = tmp_path / "evidence"
    _migration(evidence, keys[0], decommission=False)
    with pytest.raises(EvidenceIncompleteError, match="no conversion of clone3 onto x"):
        _summary(evidence / CHANGE, keys[1], [*VMS, ("clone3", "x")])
    with pytest.raises(EvidenceIncompleteError, match="no conversion of clone1 onto elsewhere"):
        _summary(evidence / CHANGE, keys[1], [("clone1", "elsewhere")])
    summary = _summary(evidence / CHANGE, keys[1])
    assert (summary.verdict, summary.exit_code) == ("not-executed", 3)
    assert all(vm["decommission"] is None for vm in summary.vms)
    assert "source not decommissioned" in summary.to_text()


def test_a_cited_run_replaced_after_the_summary_makes_the_change_invalid(
    tmp_path: Path, keys: tuple[Keys, Path]
) -> None:
    evidence = tmp_path / "evidence"
    runs = _migration(evidence, keys[0])
    summary = _summary(evidence / CHANGE, keys[1])
    shutil.rmtree(runs["conversion clone1"])
    res = verify_change(evidence / CHANGE, keys[0].trust, workers=1)
    assert res.status == "invalid"
    assert any(p.startswith(f"run {summary.run_id}: the migration cites conversion of clone1")
               for p in res.problems), res.problems


@pytest.mark.parametrize("bad", ["clone1", "=x", "a=", "a=b=c"])
def test_vm_arguments_must_be_source_equals_target(bad: str) -> None:
    with pytest.raises(BadInputError, match="SOURCE=TARGET"):
        parse_vm(bad)


def test_the_command_writes_the_summary_and_refuses_in_one_line(
    tmp_path: Path, keys: tuple[Keys, Path]
) -> None:
    evidence = tmp_path / "evidence"
    _migration(evidence, keys[0])
    runner = CliRunner()
    args = ["migrate", "summary", str(evidence / CHANGE), "--key", str(keys[1]),
            "--state-dir", str(tmp_path), "--initiator", "ci"]
    done = runner.invoke(main, [*args, "--vm", "clone1=clone1-kvm2", "--vm",
                                "clone2=clone2-kvm2", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["schema"] == "vqual.migration/v1"
    bad = runner.invoke(main, [*args, "--vm", "clone9=nowhere"])
    assert bad.exit_code == 3 and "Traceback" not in bad.output
    assert bad.stderr.count("\n") == 1 and "no conversion of clone9 onto nowhere" in bad.stderr
