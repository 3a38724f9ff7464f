"""What must hold before a VM is decommissioned (qualification.baseline.decommission), on
real signed bundles and a real backup store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from qualification.baseline.decommission import (
    backups_of,
    bundles_of,
    decommission_block,
    dependents,
)
from qualification.errors import BadInputError, EvidenceInvalidError
from tests.unit.evidence.evidence_testlib import build_bundle, make_keys


def store_with(tmp_path: Path, name: str, content: bytes, recorded: str | None) -> Path:
    folder = tmp_path / "store" / name
    folder.mkdir(parents=True)
    (folder / "b1.qcow2").write_bytes(content)
    if recorded is not None:
        (folder / "b1.qcow2.sha256").write_text(f"{recorded}  b1.qcow2\n")
    return tmp_path / "store"


def test_a_declared_dependent_is_named() -> None:
    hostvars = {"vm1": {}, "web": {"vqual_depends_on": ["vm1"]}, "db": {"vqual_depends_on": "vm1"},
                "other": {"vqual_depends_on": ["vm2"]}}
    assert dependents("vm1", hostvars) == ["db", "web"]
    with pytest.raises(BadInputError) as info:
        decommission_block(["vm1"], hostvars, Path("/nonexistent"), None)  # type: ignore[arg-type]
    assert "db, web depend(s) on it" in info.value.one_line()


def test_backups_count_only_with_their_recorded_digest(tmp_path: Path) -> None:
    content = b"backup image"
    good = hashlib.sha256(content).hexdigest()
    store = store_with(tmp_path / "a", "vm1", content, good)
    assert backups_of("vm1", {"vqual_backup_store": str(store)}) == [
        {"file": str(store / "vm1" / "b1.qcow2"), "sha256": good}]
    bad = store_with(tmp_path / "b", "vm1", content, "0" * 64)
    with pytest.raises(BadInputError) as info:
        backups_of("vm1", {"vqual_backup_store": str(bad)})
    assert "0 backup(s) observed retained" in info.value.one_line()
    assert "b1.qcow2: sha256" in info.value.one_line()
    unrecorded = store_with(tmp_path / "c", "vm1", content, None)
    with pytest.raises(BadInputError, match="no recorded digest"):
        backups_of("vm1", {"vqual_backup_store": str(unrecorded)})
    with pytest.raises(BadInputError, match="the policy requires 2"):
        backups_of("vm1", {"vqual_backup_store": str(store), "vqual_backup_policy": {"min_backups": 2}})
    with pytest.raises(BadInputError, match="no backup store"):
        backups_of("vm1", {})


def test_every_bundle_of_the_target_must_verify(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "state")
    evidence = tmp_path / "evidence"
    writer, _ = build_bundle(evidence, keys)
    found = bundles_of("kvm01.lab", evidence, keys.trust)
    assert [b["bundle"] for b in found] == [str(writer.path.resolve())]
    with pytest.raises(BadInputError, match="decommission of vm9 refused: no qualification evidence"):
        bundles_of("vm9", evidence, keys.trust)
    spec = writer.path / "spec.yaml"
    spec.write_bytes(spec.read_bytes() + b"# edited\n")
    with pytest.raises(EvidenceInvalidError) as info:
        bundles_of("kvm01.lab", evidence, keys.trust)
    assert "does not verify" in info.value.one_line() and "spec.yaml" in info.value.one_line()
