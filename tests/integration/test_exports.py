"""``vqual export`` of a real bundle: each format has the bundle's counts, read back by others.

The bundle is qualified on the embedded default (inventories/local: this machine and libvirt's
test driver) in check mode, so it holds every verdict an export must carry: a pass, a fail,
a failure waived by an approver's signed deviation, and OQ steps not executed (check mode).
MITRE's own ``saf`` reads the OHDF export back (slow: npm installs it once into a cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from qualification.reports.exports import render
from qualification.reports.exports.source import arrange
from qualification.signing import Ed25519Signer
from tests.conftest import run_vqual
from tests.integration.reviewflow import (
    FAILING,
    LOCAL_INV,
    PASSING,
    PASSPHRASE,
    add_person,
    executor,
    host_test,
    small_spec,
    vqual_with_passphrase,
)
from tests.unit.reports.exports_testlib import (
    SEAL,
    SEALED,
    SPEC,
    every_verdict_run,
    intoto_counts,
    ohdf_counts,
    saf_counts,
    sarif_counts,
    schema_errors,
    verify_with_securesystemslib,
)

CHANGE = "CHG0014006"
STILL_FAILING = host_test(
    "IQ-R-003", "os_release", {"field": "ID"}, {"op": "equals", "value": "another-os"}
)
OQ_DEFINE = {
    "id": "OQ-R-001", "title": "A domain can be defined", "protocol": "OQ",
    "requirements": ["URS-HV-02"], "applies_to": ["libvirt_hypervisor"],
    "risk": ["high", "medium", "low"], "check": "libvirt_oq", "params": {"step": "define"},
    "expect": {"op": "equals", "value": "pass"}, "acceptance": "defineXML succeeds",
}
#: MITRE SAF CLI, pinned; installed by npm (the machine's own registry configuration).
SAF_PACKAGE = "@mitre/saf@1.5.3"


def _waive(state: Path, approver: Path) -> None:
    folder = state / "deviations" / CHANGE
    folder.mkdir(parents=True, exist_ok=True)
    expiry = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = {"id": "DEV-014", "test_id": FAILING["id"], "target": "localhost",
             "justification": "this build host is not the OS the protocol names",
             "expiry": expiry, "owner": "ops@example.com"}
    (folder / "deviations.yaml").write_text(
        yaml.safe_dump({"version": 1, "change_id": CHANGE, "deviations": [entry]}))
    done = vqual_with_passphrase("deviation", "approve", CHANGE, "DEV-014", "--key",
                                 str(approver), state_dir=state)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def qualified(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real, verified bundle with pass, fail, waived and not-executed results."""
    tmp = tmp_path_factory.mktemp("exports")
    state = tmp / "state"
    executor(state)
    approver = add_person(state, "Ada Approver", "ada@example.com", "approver")
    person = add_person(state, "Eve Executor", "eve@example.com", "executor")
    _waive(state, approver)
    spec = small_spec(tmp, [PASSING, FAILING, STILL_FAILING, OQ_DEFINE], name="exports")
    done = run_vqual("qualify", "--evidence-dir", str(tmp / "evidence"), "-i", str(LOCAL_INV),
                     "-s", str(spec), "-c", CHANGE, "--check", "--json", state_dir=state)
    summary = json.loads(done.stdout)
    bundle = Path(summary["bundle"])
    verified = run_vqual("verify", str(bundle), "--json", state_dir=state)
    assert verified.returncode == 0, verified.stdout
    counts = json.loads(verified.stdout)["counts"]
    assert all(counts[v] >= 1 for v in ("pass", "fail", "waived", "not-executed")), counts
    return {"tmp": tmp, "state": state, "bundle": bundle, "counts": counts, "key": person}


def _export(qualified: dict[str, Any], fmt: str) -> Path:
    out = qualified["tmp"] / f"export.{fmt}.json"
    done = run_vqual("export", str(qualified["bundle"]), "--format", fmt, "--output", str(out),
                     state_dir=qualified["state"])
    assert done.returncode == 0, done.stderr
    return out


def test_sarif_export_of_a_real_bundle(qualified: dict[str, Any]) -> None:
    log = json.loads(_export(qualified, "sarif").read_text())
    assert schema_errors(log, "sarif-schema-2.1.0.json") == []
    assert sarif_counts(log) == qualified["counts"]
    (run,) = log["runs"]
    waived = [r for r in run["results"] if r.get("suppressions")]
    assert [s["properties"]["deviation"] for r in waived for s in r["suppressions"]] == ["DEV-014"]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules["OQ-R-001"]["fullDescription"]["text"] == "defineXML succeeds"
    assert rules["IQ-R-001"]["properties"]["requirements"] == ["URS-HV-02"]


def test_ohdf_export_of_a_real_bundle(qualified: dict[str, Any]) -> None:
    doc = json.loads(_export(qualified, "ohdf").read_text())
    assert schema_errors(doc, "ohdf-exec-json.json") == []
    assert ohdf_counts(doc) == qualified["counts"]


def test_in_toto_export_is_signed_with_the_executors_passphrase_key(
    qualified: dict[str, Any],
) -> None:
    out = qualified["tmp"] / "export.intoto.json"
    done = vqual_with_passphrase("export", str(qualified["bundle"]), "--format", "in-toto",
                                 "--key", str(qualified["key"]), "--output", str(out),
                                 state_dir=qualified["state"])
    assert done.returncode == 0, done.stderr
    envelope = json.loads(out.read_text())
    signer = Ed25519Signer.from_file(qualified["key"], PASSPHRASE)
    statement = verify_with_securesystemslib(envelope, signer.public_key, signer.keyid)
    assert intoto_counts(statement) == qualified["counts"]
    bundle: Path = qualified["bundle"]
    manifest = json.loads((bundle / "manifest.json").read_text())["files"]
    on_disk = {name: hashlib.sha256((bundle / name).read_bytes()).hexdigest()
               for name in [*manifest, "manifest.json"]}
    assert {s["name"]: s["digest"]["sha256"] for s in statement["subject"]} == on_disk
    assert statement["predicate"]["result"] == "FAILED"


def _saf(cache: Path) -> Path:
    """MITRE's ``saf``, installed once into ``cache`` with the machine's npm configuration."""
    saf = cache / "node_modules" / ".bin" / "saf"
    if saf.exists():
        return saf
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: `apt-get install npm` (the OHDF read-back needs it)")
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund",
                           "--no-save", SAF_PACKAGE], capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0 and saf.exists(), done.stderr[-2000:]
    return saf


@pytest.fixture(scope="module")
def saf() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return _saf(base / "vqual-tests" / SAF_PACKAGE.replace("/", "+"))


def _saf_summary(saf: Path, path: Path) -> dict[str, Any]:
    # saf writes saf-cli.log into its working directory: give it the export's own.
    done = subprocess.run([str(saf), "view", "summary", "-i", str(path), "--format", "json",
                           "--no-print-pretty"], capture_output=True, text=True, timeout=300,
                          check=False, cwd=path.parent)
    assert done.returncode == 0, done.stderr
    (summary,) = json.loads(done.stdout)
    return summary  # type: ignore[no-any-return]


@pytest.mark.slow
def test_mitres_saf_reads_the_ohdf_export_with_the_same_counts(
    qualified: dict[str, Any], saf: Path
) -> None:
    summary = _saf_summary(saf, _export(qualified, "ohdf"))
    assert summary["profileName"] == "exports"
    assert saf_counts(summary) == qualified["counts"]


@pytest.mark.slow
def test_mitres_saf_reads_every_verdict(tmp_path: Path, saf: Path) -> None:
    # Decoded records with every verdict (error included, which a check-mode run lacks).
    records = every_verdict_run()
    source = arrange(records.records, spec_doc=SPEC, sealed=SEALED, seal=SEAL)
    path = tmp_path / "every.ohdf.json"
    path.write_bytes(render("ohdf", source))
    counts = source.counts()
    assert all(counts.values()), counts
    assert saf_counts(_saf_summary(saf, path)) == counts
