"""Real bundles for the review renderers: a qualification run written through the bundle
writer with hostile target data, and rolling patches run by the orchestrator on libvirt's test
driver (tests/unit/rollout/test_orchestrator_verdict.py: real libvirt, journal, lease, keys
and bundle; the package manager is its memory stand-in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from qualification.evidence.bundle import BundleWriter
from qualification.evidence.records import format_time
from qualification.execution.recorder import open_signer, records_as_dicts
from qualification.review.deviations import approve_deviation
from qualification.rollout.evidence import PatchEvidence
from qualification.rollout.orchestrator import Orchestrator
from qualification.rollout.requalify import PlatformRequalifier
from qualification.verdict import zero_counts
from tests.unit.evidence.evidence_testlib import CHANGE, Keys, add_renderings
from tests.unit.rollout.test_orchestrator_verdict import NODE, MemoryExecutor, Run

HOSTILE_HOST = '<script>alert("host")</script>.lab'
HOSTILE_FILE = '# /etc/motd\n<script>alert("file")</script>\n<img src=x onerror=alert(1)>'
REQUIREMENT_TEXT = "The hypervisor hosts keep time from the site's NTP servers"


def _result(w: BundleWriter, test_id: str, target: str, verdict: str, observed: Any,
            reason: str | None, deviation: str | None = None) -> dict[str, Any]:
    return {
        "test_id": test_id, "title": f"{test_id} as approved", "protocol": "IQ",
        "requirements": ["URS-NTP-01"], "target": target, "check": "equals",
        "method": "host.file /etc/motd", "expected": {"op": "eq", "value": "Authorised use"},
        "observed": observed, "verdict": verdict, "reason": reason,
        "raw": w.store_raw(str(observed)), "started": "2026-03-01T10:00:00.000000Z",
        "finished": "2026-03-01T10:00:00.100000Z", "duration_ms": 100, "deviation": deviation,
    }


def _waiver(state: Path, keys: Keys, change: str) -> dict[str, Any]:
    """DEV-0007 on NTP-01 of kvm01.lab, approved by the approver (the recorder copies it)."""
    folder = state / "deviations" / change
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"id": "DEV-0007", "test_id": "NTP-01", "target": "kvm01.lab",
             "justification": "NTP servers move under CHG0012399",
             "expiry": format_time(datetime.now(UTC) + timedelta(days=30)),
             "owner": "ops@example.com"}
    (folder / "deviations.yaml").write_text(yaml.safe_dump(
        {"version": 1, "change_id": change, "deviations": [entry]}, sort_keys=False))
    return approve_deviation(state, change, "DEV-0007", keys.approver, keys.trust).record()


def hostile_run(evidence: Path, keys: Keys, run_id: str = "20260301T100000Z-hostile",
                change: str = CHANGE, *, state: Path) -> Path:
    """A sealed run whose target name and observed file content carry markup: one pass, a
    failure, an error, a waived failure (its approved waiver in the run) and a planned test
    that has no result."""
    targets = ["kvm01.lab", HOSTILE_HOST]
    planned = [{"test_id": t, "target": h, "protocol": "IQ"} for h in targets
               for t in ("MOTD-01", "NTP-01")] + [
        {"test_id": "HCL-01", "target": "kvm01.lab", "protocol": "IQ"}]
    w = BundleWriter.create(evidence, change, run_id, keys.executor, "jane.doe")
    w.append("run.start", {
        "tool": {"name": "vqual", "version": "0.1.0"},
        "clock": {"synchronized": True, "source": "chrony"},
        "spec": {"path": "specs/kvm.yaml", "name": "kvm-iq", "version": "1.2", "digest": "ab" * 32},
        "inventory": {"digest": "ef" * 32}, "trust": {"digest": "01" * 32},
        "targets": [{"name": h, "kinds": ["kvm_host"], "risk": "high", "risk_reason": "LIMS"}
                    for h in targets],
        "planned": planned, "prev_run_seal": None, "mode": "qualify",
        "requirements": ["URS-NTP-01"],
        "traceability": {"file": "urs.yaml", "requirements": [
            {"id": "URS-NTP-01", "text": REQUIREMENT_TEXT, "kind": "functional"}]},
    })
    w.append("deviation.waiver", _waiver(state, keys, change))
    rows = [
        _result(w, "MOTD-01", "kvm01.lab", "pass", "Authorised use", None),
        _result(w, "NTP-01", "kvm01.lab", "waived", "pool.ntp.org",
                "server is pool.ntp.org", deviation="DEV-0007"),
        _result(w, "MOTD-01", HOSTILE_HOST, "fail", HOSTILE_FILE,
                'content differs: <script>alert("reason")</script>'),
        _result(w, "NTP-01", HOSTILE_HOST, "error", None, "host unreachable: ssh timed out"),
    ]
    counts = zero_counts()
    for data in rows:
        w.append("check.result", data)
        counts[data["verdict"]] += 1
    add_renderings(w)
    w.seal(counts, len(planned), len(rows), "fail")
    return w.path


def patch_run(tmp: Path, *, running_vm: bool = False, pin: bool = False) -> Path:
    """A rolling patch of two hosts on libvirt's test driver. With ``running_vm`` the first
    host carries a running VM, which the test driver cannot migrate: the run halts at its
    evacuation, as the platform said. ``pin``: the state ``tmp/state`` is pinned to the test
    root (its trust store signed again once the executor's key is in it)."""
    import tests.unit.rollout.test_orchestrator_verdict as verdict_tests

    node = NODE.replace("<test:runstate>5", "<test:runstate>1") if running_vm else NODE
    saved, verdict_tests.NODE = verdict_tests.NODE, node
    try:
        run = Run(tmp)
    finally:
        verdict_tests.NODE = saved
    if pin:
        from tests.trustroot_testlib import pin_state

        pin_state(run.state)
    empty = tmp / "node2.xml"
    empty.write_text(NODE.split("  <domain")[0] + "</node>\n")
    run.hostvars["h2"] = {"vqual_libvirt_uri": f"test://{empty}", "vqual_cluster": "c1"}
    evidence = PatchEvidence(tmp / "evidence", open_signer(run.state / "keys" / "executor.pem"),
                             "pipeline", state_dir=run.state)
    executor = MemoryExecutor({"h1": {"agent": "1.0"}, "h2": {"agent": "1.0"}})
    outcome = Orchestrator(run.platform, executor, PlatformRequalifier(), run.change("low"),
                           run.state, evidence).run()
    assert outcome.bundle is not None
    return Path(outcome.bundle)


def records(bundle: Path) -> list[dict[str, Any]]:
    return records_as_dicts(bundle)
