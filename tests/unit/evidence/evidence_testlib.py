"""Builders for evidence tests: keys, a trust store and realistic bundles written for real."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qualification.evidence.bundle import BundleWriter
from qualification.evidence.reader import read_bundle
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.signing import Ed25519Signer, TrustStore

CHANGE = "CHG0001234"
TARGETS = ("kvm01.lab", "kvm02.lab", "vcsa.lab")
TESTS = ("KVM-01", "KVM-13", "KVM-14", "KVM-17", "HCL-01")
SINCE = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass
class Keys:
    executor: Ed25519Signer
    reviewer: Ed25519Signer
    approver: Ed25519Signer
    trust: TrustStore


def make_keys(state: Path, *, executor_roles: tuple[str, ...] = ("executor",),
              pinned: bool = False) -> Keys:
    """Three people's keys and a saved trust store holding them; ``pinned``: signed by the
    test trust root (tests/trustroot_testlib.py), for runs written afterwards and judged by
    ``vqual`` commands through the pin."""
    keys = Keys(
        Ed25519Signer.generate(),
        Ed25519Signer.generate(),
        Ed25519Signer.generate(),
        TrustStore.empty(state / "trust.yaml"),
    )
    keys.trust.add_key(
        public_key_pem=keys.executor.public_pem(),
        name="CI Pipeline",
        identity="svc-ci@example.com",
        roles=list(executor_roles),
        valid_from=SINCE,
    )
    keys.trust.add_key(
        public_key_pem=keys.reviewer.public_pem(),
        name="Rita Reviewer",
        identity="rita@example.com",
        roles=["reviewer"],
        valid_from=SINCE,
    )
    keys.trust.add_key(
        public_key_pem=keys.approver.public_pem(),
        name="Anna Approver",
        identity="anna@example.com",
        roles=["approver"],
        valid_from=SINCE,
    )
    keys.trust.save()
    if pinned:
        from tests.trustroot_testlib import pin_state

        pin_state(state)
    keys.trust = TrustStore.load(state / "trust.yaml")
    return keys


def planned() -> list[dict[str, str]]:
    return [{"test_id": t, "target": h, "protocol": "IQ"} for h in TARGETS for t in TESTS]


def run_start_data(prev_seal: str | None = None) -> dict[str, Any]:
    return {
        "tool": {"name": "vqual", "version": "0.1.0"},
        "versions": {"python": "3.11.7", "ansible_core": "2.19.0", "ansible_runner": "2.4.0"},
        "controller": {"hostname": "ctl01", "os": "Debian 12", "python": "3.11.7"},
        "clock": {"synchronized": True, "source": "chrony", "detail": "offset 0.2 ms"},
        "spec": {"path": "specs/kvm.yaml", "name": "kvm-iq", "version": "1.2", "digest": "ab" * 32},
        "data_files": [{"path": "data/hcl.csv", "digest": "cd" * 32}],
        "inventory": {"digest": "ef" * 32},
        "trust": {"digest": "01" * 32},
        "targets": [
            {"name": h, "kinds": ["kvm_host"], "risk": "high", "risk_reason": "LIMS"}
            for h in TARGETS
        ],
        "planned": planned(),
        "prev_run_seal": prev_seal,
        "mode": "qualify",
    }


def check_result(writer: BundleWriter, test_id: str, target: str, i: int) -> dict[str, Any]:
    long_raw = i % 4 == 0
    raw = "Reference ID    : C0A80001 (ntp1)\nStratum         : 3\n" * (40 if long_raw else 2)
    verdict = "fail" if i % 7 == 3 else "pass"
    return {
        "test_id": test_id,
        "title": f"{test_id} configuration as approved",
        "protocol": "IQ",
        "requirements": ["URS-SEC-01", "URS-HV-02"],
        "target": target,
        "check": "equals",
        "method": "host.command chronyc tracking",
        "expected": {"op": "eq", "value": "ntp1"},
        "observed": {
            "server": "ntp1" if verdict == "pass" else "pool.ntp.org",
            "stratum": 3,
            "counter": 2**63 - 25,
        },
        "verdict": verdict,
        "reason": None if verdict == "pass" else "server is pool.ntp.org",
        "raw": writer.store_raw(raw),
        "started": "2026-03-01T10:00:00.000000Z",
        "finished": "2026-03-01T10:00:00.125000Z",
        "duration_ms": 125,
        "deviation": None,
    }


def add_renderings(w: BundleWriter) -> None:
    """The JUnit and the report of the records written so far, as a run seals them (format
    v2 refuses placeholders)."""
    w.sync()
    records = read_bundle(w.path).records
    w.add_file("junit.xml", render_junit(records).encode("utf-8"))
    w.add_file("report.html", render_report(records).encode("utf-8"))


def build_bundle(
    evidence: Path,
    keys: Keys,
    run_id: str = "20260301T100000Z-a1b2c3",
    *,
    results: int | None = None,
    seal: bool = True,
    unplanned: tuple[tuple[str, str], ...] = (),
) -> tuple[BundleWriter, dict[str, int]]:
    """Write a run: run.start, an action, check results (some with raw files), a skipped
    host, the sealed files, run.end. ``results`` limits how many planned tests get one;
    ``unplanned`` (test id, target) adds results run.start did not plan, counted and
    rendered as if they belonged, so nothing but the plan tells."""
    w = BundleWriter.create(evidence, CHANGE, run_id, keys.executor, "jane.doe")
    w.append("run.start", run_start_data())
    w.add_file("spec.yaml", b"apiVersion: vqual/v1\nkind: Spec\ntests: []\n")
    w.add_file("data/hcl.csv", b"vendor,model,version\nHPE,DL380 Gen10,8.0U2\n")
    w.add_file("inventory.json", b'{"all":{"hosts":["kvm01.lab","kvm02.lab","vcsa.lab"]}}')
    w.append(
        "action",
        {
            "name": "probe",
            "target": "kvm01.lab",
            "before": None,
            "after": {"collected": 14},
            "verdict": "pass",
            "reason": None,
            "started": "2026-03-01T10:00:00.000000Z",
            "finished": "2026-03-01T10:00:01.000000Z",
        },
    )
    counts = {"pass": 0, "fail": 0, "error": 0, "not-executed": 0, "waived": 0}
    todo = planned() if results is None else planned()[:results]
    todo += [{"test_id": t, "target": h, "protocol": "IQ"} for t, h in unplanned]
    for i, t in enumerate(todo):
        data = check_result(w, t["test_id"], t["target"], i)
        counts[data["verdict"]] += 1
        w.append("check.result", data)
        if i % 5 == 4:
            w.sync()
    if seal:
        w.append("host.skipped", {"target": "kvm03.lab", "reason": "in maintenance"})
        add_renderings(w)
        verdict = "fail" if counts["fail"] else "pass"
        w.seal(counts, len(planned()), len(todo), verdict)
    else:
        w.close()
    return w, counts
