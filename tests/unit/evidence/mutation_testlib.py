"""The honest change the mutation classes act on, copies of it, and what verify says of one.

Built once per session with the real writer (:class:`BundleWriter`), the real renderers for
``junit.xml`` and ``report.html`` and a real approver's waiver: three runs of one change, each
citing the seal of the one before, each with a ``fingerprint``, a ``deviation.waiver``, fifteen
planned results (some failed, one waived), a ``host.skipped`` and reviewers' ``signature``
records after the seal of the first two (the latest run is left unsigned, as a run awaiting
review is). Its trust store is signed by the pinned test root (tests/trustroot_testlib.py).

:meth:`Base.build_trusted` builds the same change with trusted time (format v2 as written with
a TSA): the store names a TSA (tokens after every ``run.end`` and ``signature``, and beside
each trust-store version), version 1 is signed by the test root before the runs, version 2
after them, adding a second executor key (:attr:`Base.later`) that held no trust at the
runs' time. Each :class:`Case` carries its own copy of the state's trust store and history,
and :func:`judge` judges with it as ``vqual verify`` does: through the pinned root
(:func:`choose_trust`), each record by the trust-store version in force at its time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from qualification.checks.fingerprint_model import fingerprint_record, make_fingerprint
from qualification.errors import TrustError
from qualification.evidence.bundle import MANIFEST, BundleWriter, append_signature, latest_seal
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.change import ChangeResult, verify_change
from qualification.evidence.records import format_time
from qualification.evidence.result import INVALID
from qualification.execution.recorder import records_as_dicts
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.review.deviations import approve_deviation
from qualification.review.pinned import choose_trust
from qualification.review.trust_history import HISTORY_DIR
from qualification.signing import TrustStore
from qualification.signing.keys import Ed25519Signer
from qualification.signing.trusted_tsa import TsaEntry
from qualification.state import trust_path
from qualification.verdict import overall, zero_counts
from tests.trustroot_testlib import PIN, pin_state
from tests.unit.evidence.evidence_testlib import (
    CHANGE,
    SINCE,
    Keys,
    check_result,
    make_keys,
    planned,
    run_start_data,
)
from tests.unit.evidence.tamper_testlib import Edit, records, rewrite

RUNS = ("20260301T100000Z-aaaaaa", "20260302T100000Z-bbbbbb", "20260303T100000Z-cccccc")
DEVIATION = "DEV-001"
#: The waived test: planned, its result ``waived`` under DEVIATION.
WAIVED = ("KVM-13", "kvm01.lab")


def _deviation_file(state: Path) -> None:
    entry = {
        "id": DEVIATION,
        "test_id": WAIVED[0],
        "target": WAIVED[1],
        "justification": "firmware update scheduled under CHG0012399",
        "expiry": format_time(datetime.now(UTC) + timedelta(days=30)),
        "owner": "ops@example.com",
    }
    folder = state / "deviations" / CHANGE
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"version": 1, "change_id": CHANGE, "deviations": [entry]}
    (folder / "deviations.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _fingerprint(target: str) -> dict[str, Any]:
    fp = make_fingerprint(
        target,
        "host",
        guest={"os": "Debian 12", "kernel": "6.1.0-18-amd64"},
        identity={"hostname": target, "machine_id": hashlib.sha256(target.encode()).hexdigest()},
        generalised={"packages": {"qemu-kvm": "7.2", "libvirt0": "9.0.0"}},
    )
    return fingerprint_record(fp)


def honest_run(
    evidence: Path, keys: Keys, run_id: str, waiver: dict[str, Any], tsa: TsaEntry | None = None
) -> Path:
    """One sealed run as ``vqual qualify`` writes it, citing the change's latest seal; its
    seal time-stamped by ``tsa`` when given."""
    w = BundleWriter.create(evidence, CHANGE, run_id, keys.executor, "jane.doe")
    w.tsa = tsa
    w.append("run.start", run_start_data(latest_seal(evidence, CHANGE)))
    w.append("fingerprint", _fingerprint("kvm01.lab"))
    w.append("deviation.waiver", waiver)
    counts = zero_counts()
    for i, t in enumerate(planned()):
        data = check_result(w, t["test_id"], t["target"], i)
        if (t["test_id"], t["target"]) == WAIVED:
            data.update(verdict="waived", deviation=DEVIATION, reason="waived: firmware")
        counts[data["verdict"]] += 1
        w.append("check.result", data)
    w.append("host.skipped", {"target": "kvm03.lab", "reason": "in maintenance"})
    w.sync()
    recs = records_as_dicts(w.path)
    w.add_file("junit.xml", render_junit(recs).encode("utf-8"))
    w.add_file("report.html", render_report(recs).encode("utf-8"))
    w.seal(counts, len(planned()), len(planned()), overall(counts).value)
    return w.path


def honest_change(root: Path, keys: Keys, tsa: TsaEntry | None = None) -> Path:
    """Three sealed runs of CHANGE under ``root/evidence``; the first two reviewed; seals and
    signatures time-stamped by ``tsa`` when given."""
    _deviation_file(root)
    waiver = approve_deviation(root, CHANGE, DEVIATION, keys.approver, keys.trust).record()
    evidence = root / "evidence"
    for run_id in RUNS:
        honest_run(evidence, keys, run_id, waiver, tsa)
    for run_id in RUNS[:2]:
        append_signature(
            evidence / CHANGE / run_id,
            keys.reviewer,
            {"meaning": "reviewed", "name": "Rita Reviewer", "roles": ["reviewer"]},
            tsa=tsa,
        )
    append_signature(
        evidence / CHANGE / RUNS[0],
        keys.approver,
        {"meaning": "approved", "name": "Anna Approver", "roles": ["approver"]},
        tsa=tsa,
    )
    return evidence / CHANGE


@dataclass
class Base:
    """The honest change, its state directory (trust store) and a second honest change of
    the same runs (the material a run is replaced with). A trusted base (:meth:`build_trusted`)
    also has its TSA and the executor key its trust store's version 2 added after the runs."""

    state: Path
    keys: Keys
    change: Path
    spare: Path
    tsa: TsaEntry | None = None
    later: Ed25519Signer | None = None

    @classmethod
    def build(cls, root: Path) -> Base:
        state = root / "state"
        state.mkdir(parents=True)
        keys = make_keys(state, pinned=True)
        change = honest_change(state, keys)
        spare_root = root / "spare"
        spare_root.mkdir()
        spare = honest_change(spare_root, keys)
        return cls(state, keys, change, spare)

    @classmethod
    def build_trusted(cls, root: Path, tsa: TsaEntry) -> Base:
        """The change with trusted time and a two-version trust history (module docstring);
        its spare is the change itself (no trusted class replaces a run)."""
        state = root / "state"
        state.mkdir(parents=True)
        keys = make_keys(state)
        keys.trust.tsa = tsa
        keys.trust.save()
        pin_state(state)  # version 1, before every record
        keys.trust = TrustStore.load(trust_path(state))
        change = honest_change(state, keys, tsa)
        later = Ed25519Signer.generate()
        keys.trust.add_key(
            public_key_pem=later.public_pem(),
            name="CI Pipeline 2",
            identity="svc-ci2@example.com",
            roles=["executor"],
            valid_from=SINCE,  # claims to be old; it entered the store after the runs
        )
        keys.trust.save()
        pin_state(state)  # version 2, after every record
        keys.trust = TrustStore.load(trust_path(state))
        return cls(state, keys, change, change, tsa, later)


@dataclass
class Case:
    """A copy of the honest change for one mutation instance."""

    base: Base
    change: Path
    state: Path

    @property
    def keys(self) -> Keys:
        return self.base.keys

    def run(self, i: int) -> Path:
        return self.change / RUNS[i]


@dataclass
class Judged:
    """What verify said of a mutated change: the change's status, every problem (a run's
    own prefixed with ``run <id>: ``) and whether each expected fragment is named."""

    status: str
    problems: list[str] = field(default_factory=list)

    def names(self, fragment: str) -> bool:
        return any(fragment in p for p in self.problems)


def missed(judged: Judged, expect: tuple[str, ...]) -> list[str]:
    """What the verdict fails to say: not invalid, or an expected fragment not named."""
    out = [] if judged.status == INVALID else [f"status {judged.status}"]
    return out + [f"does not name {f!r}" for f in expect if not judged.names(f)]


def copy_case(base: Base, dest: Path) -> Case:
    """A copy of the change and of the state's trust store and signed history."""
    shutil.copytree(base.change, dest / CHANGE)
    state = dest / "state"
    state.mkdir()
    shutil.copy2(trust_path(base.state), trust_path(state))
    shutil.copytree(base.state / HISTORY_DIR, state / HISTORY_DIR)
    return Case(base, dest / CHANGE, state)


def judge(case: Case) -> Judged:
    """What verify says, judged as ``vqual verify`` judges: through the pinned test root and
    the case's trust history; a store the root does not vouch for is refused (invalid)."""
    try:
        trust = choose_trust(case.state, trust_root=PIN).store
    except TrustError as exc:
        return Judged(INVALID, [f"trust store refused: {exc.one_line()}"])
    res: ChangeResult = verify_change(case.change, trust, workers=1)
    problems = list(res.problems)
    for r in res.runs:
        problems += [f"run {r.path.name}: {p}" for p in r.problems]
    return Judged(res.status, problems)


# ---------------------------------------------------------------- insider's tools


def resign(run: Path, case: Case, edit: Edit, **kw: Any) -> None:
    """Rewrite ``run`` with ``edit`` and sign it again with the executor's own key."""
    rewrite(run, case.keys.executor, edit, **kw)


def reseal_files(
    run: Path, signer: Ed25519Signer, files: Mapping[str, bytes | None], edit: Edit
) -> None:
    """Replace (bytes) or remove (None) sealed files, write the manifest they now match,
    and re-sign the run with ``run.end`` naming that manifest: every digest agrees again."""
    manifest = json.loads((run / MANIFEST).read_bytes())["files"]
    for rel, content in files.items():
        if content is None:
            (run / rel).unlink()
            manifest.pop(rel, None)
        else:
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            (run / rel).write_bytes(content)
            manifest[rel] = hashlib.sha256(content).hexdigest()
    data = canonical_bytes({"files": dict(sorted(manifest.items())), "v": 1})
    (run / MANIFEST).write_bytes(data)

    def both(rec: dict[str, Any]) -> dict[str, Any] | None:
        out = edit(rec)
        if out is not None and out["kind"] == "run.end":
            out["data"]["manifest_digest"] = hashlib.sha256(data).hexdigest()
        return out

    rewrite(run, signer, both)


def results_of(run: Path) -> list[dict[str, Any]]:
    """The run's ``check.result`` data, in order."""
    return [r["data"] for r in records(run) if r["kind"] == "check.result"]


def keep(rec: dict[str, Any]) -> dict[str, Any] | None:
    return rec


def junit_edited(junit: bytes, test_id: str, target: str, to: str) -> bytes:
    """The JUnit with one test case's outcome and verdict line set to ``to``."""
    root = ET.fromstring(junit)
    for case in root.iter("testcase"):
        if case.get("name", "").split(" ", 1)[0] == test_id and case.get(
            "classname", ""
        ).startswith(target + "."):
            for child in list(case):
                if child.tag in ("failure", "error", "skipped"):
                    case.remove(child)
                elif child.tag == "system-out" and child.text:
                    child.text = "\n".join(
                        f"verdict: {to}" if ln.startswith("verdict: ") else ln
                        for ln in child.text.split("\n")
                    )
            tag = {"fail": "failure", "error": "error", "not-executed": "skipped"}.get(to)
            if tag:
                ET.SubElement(case, tag, {"message": to})
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="utf-8"?>\n{body}'.encode()
