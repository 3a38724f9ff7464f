"""Decoded bundle records, built the way docs/formats.md describes them.

The records are made here rather than read from a bundle so the renderers are tested on
their own; the hash chain is computed over each record's canonical JSON, as a reader would
hand the decoded records over.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

EXECUTOR = hashlib.sha256(b"executor public key").hexdigest()
REVIEWER = hashlib.sha256(b"reviewer public key").hexdigest()
APPROVER = hashlib.sha256(b"approver public key").hexdigest()
SPEC_DIGEST = hashlib.sha256(b"spec.yaml").hexdigest()
INVENTORY_DIGEST = hashlib.sha256(b"inventory.json").hexdigest()
TRUST_DIGEST = hashlib.sha256(b"trust.yaml").hexdigest()
HCL_DIGEST = hashlib.sha256(b"hcl.yaml").hexdigest()
XSS = "<script>alert(1)</script>"


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RunRecords:
    """Appends records of one run with increasing seq, chained prev and UTC time."""

    def __init__(
        self,
        change_id: str = "CHG0001234",
        run_id: str = "20261126T030000Z-a1b2c3",
        initiator: str = "jane.doe@example.com",
    ) -> None:
        self.change_id = change_id
        self.run_id = run_id
        self.initiator = initiator
        self.records: list[dict[str, Any]] = []
        self.clock = datetime(2026, 11, 26, 3, 0, 0, 123456, tzinfo=UTC)

    def tick(self, seconds: float = 1.5) -> str:
        self.clock += timedelta(seconds=seconds)
        return _utc(self.clock)

    def add(self, kind: str, data: dict[str, Any], actor: str = EXECUTOR) -> dict[str, Any]:
        prev = (
            hashlib.sha256(
                json.dumps(self.records[-1], sort_keys=True, separators=(",", ":")).encode()
            ).hexdigest()
            if self.records
            else "0" * 64
        )
        record = {
            "v": 1,
            "seq": len(self.records),
            "prev": prev,
            "time": self.tick(),
            "change_id": self.change_id,
            "run_id": self.run_id,
            "actor": actor,
            "initiator": self.initiator,
            "kind": kind,
            "data": data,
        }
        self.records.append(record)
        return record

    def start(
        self,
        targets: list[dict[str, Any]],
        planned: list[dict[str, Any]],
        requirements: list[str] | None = None,
    ) -> dict[str, Any]:
        return self.add(
            "run.start",
            {
                "mode": "qualify",
                "tool": {"name": "vqual", "version": "0.1.0"},
                "versions": {"python": "3.11.2", "ansible_core": "2.19.0"},
                "controller": {"hostname": "ctl01", "os": "Debian 12", "python": "3.11.2"},
                "clock": {"synchronized": True, "source": "chrony", "detail": "offset 0.2 ms"},
                "spec": {
                    "path": "spec.yaml",
                    "name": "kvm-cluster",
                    "version": "1.4",
                    "digest": SPEC_DIGEST,
                },
                "requirements": requirements if requirements is not None else [],
                "data_files": [{"name": "hcl.yaml", "path": "data/hcl.yaml", "digest": HCL_DIGEST}],
                "inventory": {"digest": INVENTORY_DIGEST},
                "trust": {"digest": TRUST_DIGEST},
                "targets": targets,
                "planned": planned,
                "prev_run_seal": None,
            },
        )

    def result(
        self,
        test_id: str,
        target: str,
        verdict: str,
        observed: Any,
        *,
        title: str = "",
        protocol: str = "IQ",
        requirements: tuple[str, ...] = (),
        method: str = "host.file /etc/ssh/sshd_config",
        expected: dict[str, Any] | None = None,
        reason: str | None = None,
        deviation: str | None = None,
        duration_ms: float = 42.0,
        raw: str | dict[str, str] | None = None,
        observation_ms: float | None = None,
    ) -> dict[str, Any]:
        started = self.tick(0.1)
        finished = self.tick(duration_ms / 1000)
        data: dict[str, Any] = {
            "test_id": test_id,
            "title": title,
            "protocol": protocol,
            "requirements": list(requirements),
            "target": target,
            "check": "file_setting",
            "method": method,
            "expected": expected if expected is not None else {"op": "eq", "value": "no"},
            "observed": observed,
            "verdict": verdict,
            "reason": reason,
            "raw": raw,
            "started": started,
            "finished": finished,
            "duration_ms": duration_ms,
        }
        if deviation is not None:
            data["deviation"] = deviation
        if observation_ms is not None:
            data["observation_ms"] = observation_ms
        return self.add("check.result", data)

    def end(self) -> dict[str, Any]:
        counts = {v: 0 for v in ("pass", "fail", "error", "not-executed", "waived")}
        for record in self.records:
            if record["kind"] == "check.result":
                counts[record["data"]["verdict"]] += 1
        worst = next((v for v in ("fail", "error", "not-executed") if counts[v]), "pass")
        return self.add(
            "run.end",
            {
                "manifest_digest": hashlib.sha256(b"manifest.json").hexdigest(),
                "counts": counts,
                "planned": len(self.records[0]["data"]["planned"]),
                "executed": sum(counts.values()),
                "verdict": worst,
            },
        )

    def sign(self, name: str, meaning: str, keyid: str, seal: str, roles: list[str]) -> None:
        self.add(
            "signature",
            {
                "meaning": meaning,
                "seal": seal,
                "name": name,
                "roles": roles,
                "comment": "",
                "keyid": keyid,
            },
            actor=keyid,
        )


TARGETS = [
    {
        "name": "kvm1",
        "kinds": ["host", "hypervisor"],
        "risk": "high",
        "risk_reason": "carries LIMS (high)",
    },
    {
        "name": "kvm2",
        "kinds": ["host", "hypervisor"],
        "risk": "high",
        "risk_reason": "carries LIMS (high)",
    },
]
PLANNED = [
    {"test_id": "IQ-SSH-01", "target": "kvm1", "protocol": "IQ"},
    {"test_id": "IQ-HCL-02", "target": "kvm1", "protocol": "IQ"},
    {"test_id": "OQ-MIG-01", "target": "kvm1", "protocol": "OQ"},
    {"test_id": "IQ-SSH-01", "target": "kvm2", "protocol": "IQ"},
    {"test_id": "IQ-HCL-02", "target": "kvm2", "protocol": "IQ"},
    {"test_id": "IQ-NTP-03", "target": "kvm2", "protocol": "IQ"},
]
DECLARED = ["URS-CL-01", "URS-HCL-01", "URS-AT-01", "URS-REG-01"]
SEAL = hashlib.sha256(b"run.end line").hexdigest()


def qualification_run(*, finish: bool = True, ntp: bool = True) -> RunRecords:
    """Two KVM hosts: a pass, a fail (with a hostile observed value), an error, a
    not-executed, a waived OQ step with its action, and one planned test that may lack a
    result (``ntp=False``)."""
    run = RunRecords()
    run.start(TARGETS, PLANNED, DECLARED)
    run.result(
        "IQ-SSH-01",
        "kvm1",
        "pass",
        "no",
        title="root login over SSH disabled",
        requirements=("URS-CL-01",),
    )
    run.result(
        "IQ-HCL-02",
        "kvm1",
        "error",
        None,
        title="host model on the HCL",
        requirements=("URS-HCL-01",),
        method="host.dmi",
        expected={"op": "in", "value": ["PowerEdge R750"], "list": "hcl.yaml"},
        reason="host unreachable: ssh timed out after 30 s",
    )
    run.add(
        "action",
        {
            "name": "live migration of vm-lims-01",
            "target": "kvm1",
            "before": {"host": "kvm1", "state": "running"},
            "after": {"host": "kvm2", "state": "running"},
            "verdict": "pass",
            "reason": None,
            "started": run.tick(0.1),
            "finished": run.tick(3.0),
        },
    )
    run.result(
        "OQ-MIG-01",
        "kvm1",
        "waived",
        {"downtime_ms": 950},
        protocol="OQ",
        title="live migration downtime",
        requirements=("URS-CL-01",),
        method="libvirt.migrate vm-lims-01 kvm1->kvm2",
        expected={"op": "le", "value": 500, "path": "downtime_ms"},
        reason="downtime 950 ms > 500 ms",
        deviation="DEV-0042",
        duration_ms=3100.0,
    )
    run.result(
        "IQ-SSH-01",
        "kvm2",
        "fail",
        XSS,
        title="root login over SSH disabled",
        requirements=("URS-CL-01",),
    )
    run.result(
        "IQ-HCL-02",
        "kvm2",
        "not-executed",
        None,
        title="host model on the HCL",
        requirements=("URS-HCL-01", "URS-REG-01"),
        method="host.dmi",
        reason="the test driver has no DMI data",
    )
    if ntp:
        run.result(
            "IQ-NTP-03",
            "kvm2",
            "pass",
            "synchronised",
            title="clock synchronised",
            requirements=("URS-AT-02",),
            method="host.timedatectl",
        )
    if finish:
        run.end()
    return run
