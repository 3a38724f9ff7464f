"""Reading the exports back, independently of the code that wrote them.

Each ``*_counts`` function counts verdicts from an exported document by the format's own
fields (docs/exports.md), so a test can compare them with the bundle's counts. The schemas
are the published ones stored under tests/fixtures/schemas (README there names the sources).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from qualification.reports.exports.source import SealedFile
from tests.unit.reports.reports_testlib import RunRecords, qualification_run

SCHEMAS = Path(__file__).resolve().parents[2] / "fixtures" / "schemas"
SCHEMA_DIGESTS = {
    "sarif-schema-2.1.0.json": "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e",
    "ohdf-exec-json.json": "e0062a32f2117d972d4502a280b20c63833c550e2c6319486531c23ad6eaed09",
}
VERDICTS = ("pass", "fail", "error", "not-executed", "waived")
SEAL = "ab" * 32
SEALED = (SealedFile("manifest.json", "01" * 32), SealedFile("spec.yaml", "02" * 32),
          SealedFile("inventory.json", "03" * 32), SealedFile("junit.xml", "04" * 32))
SPEC = {
    "tests": [
        {"id": "IQ-SSH-01", "title": "Root login over SSH is disabled", "protocol": "IQ",
         "requirements": ["URS-CL-01", "URS-SEC-01"], "check": "file_setting",
         "acceptance": "PermitRootLogin is no"},
        {"id": "OQ-MIG-01", "title": "Live migration downtime", "protocol": "OQ",
         "requirements": ["URS-CL-01"], "check": "libvirt_oq",
         "acceptance": "downtime at most 500 ms"},
    ]
}


def every_verdict_run() -> RunRecords:
    """The standard report run (every verdict) with the approver's waiver it relies on."""
    run = qualification_run(finish=False)
    run.add("deviation.waiver", {
        "id": "DEV-0042", "test_id": "OQ-MIG-01", "target": "kvm1",
        "justification": "the lab network adds 450 ms; accepted by QA",
        "expiry": "2027-01-31T00:00:00Z", "owner": "ops@example.com",
        "approved_by": {"name": "Ada Approver", "keyid": "ad" * 32,
                        "time": "2026-11-25T10:00:00.000000Z"},
    })
    run.end()
    return run


@cache
def schema(name: str) -> dict[str, Any]:
    """A stored schema, refused if it is not the published file."""
    data = (SCHEMAS / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == SCHEMA_DIGESTS[name], f"{name} was changed"
    return json.loads(data)  # type: ignore[no-any-return]


def schema_errors(doc: Any, name: str) -> list[str]:
    """Every way ``doc`` breaks the stored schema ``name`` (formats checked too)."""
    sch = schema(name)
    cls = jsonschema.validators.validator_for(sch, default=jsonschema.Draft7Validator)
    cls.check_schema(sch)
    validator = cls(sch, format_checker=cls.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def _zero() -> dict[str, int]:
    return dict.fromkeys(VERDICTS, 0)


def sarif_counts(log: dict[str, Any]) -> dict[str, int]:
    """pass: kind pass; fail: kind fail unsuppressed; waived: kind fail with an accepted
    suppression; not-executed: notApplicable; error: open."""
    counts = _zero()
    (run,) = log["runs"]
    for result in run["results"]:
        kind = result.get("kind", "fail")
        accepted = any(s.get("status", "accepted") == "accepted"
                       for s in result.get("suppressions", []))
        verdict = {"pass": "pass", "notApplicable": "not-executed", "open": "error"}.get(kind)
        if verdict is None:
            assert kind == "fail", kind
            verdict = "waived" if accepted else "fail"
        counts[verdict] += 1
    return counts


def ohdf_counts(doc: dict[str, Any]) -> dict[str, int]:
    """By each control's one result status; a control skipped due to a waiver is waived."""
    counts = _zero()
    (profile,) = doc["profiles"]
    for control in profile["controls"]:
        (result,) = control["results"]
        if (control.get("waiver_data") or {}).get("skipped_due_to_waiver"):
            counts["waived"] += 1
            continue
        verdict = {"passed": "pass", "failed": "fail", "skipped": "not-executed",
                   "error": "error"}[result["status"]]
        counts[verdict] += 1
    return counts


def saf_counts(summary: dict[str, Any]) -> dict[str, int]:
    """``saf view summary --format json``'s totals, in vqual's verdicts (docs/exports.md)."""
    return {
        "pass": summary["passed"]["total"],
        "fail": summary["failed"]["total"],
        "error": summary["error"]["total"],
        "not-executed": summary["skipped"]["total"],
        "waived": summary["no_impact"]["total"],
    }


def intoto_counts(statement: dict[str, Any]) -> dict[str, int]:
    """From the predicate's own lists, failedTests split by the ``vqual`` extension."""
    predicate = statement["predicate"]
    by_name = {r["name"]: r["verdict"] for r in predicate["vqual"]["results"]}
    counts = _zero()
    counts["pass"] = len(predicate["passedTests"])
    counts["waived"] = len(predicate["warnedTests"])
    for name in predicate["failedTests"]:
        assert by_name[name] in ("fail", "error", "not-executed"), name
        counts[by_name[name]] += 1
    return counts


def verify_with_securesystemslib(
    envelope: dict[str, Any], public_key: Ed25519PublicKey, keyid: str
) -> dict[str, Any]:
    """The statement of an envelope that securesystemslib's DSSE verifies with the key."""
    env = SslibEnvelope.from_dict(copy.deepcopy(envelope))  # from_dict changes its argument
    key = SSlibKey.from_crypto(public_key, keyid=keyid, scheme="ed25519")
    accepted = env.verify([key], 1)  # raises VerificationError unless the signature holds
    assert set(accepted) == {keyid}
    return json.loads(env.payload)  # type: ignore[no-any-return]


def verify_with_cryptography(envelope: dict[str, Any], public_key: Ed25519PublicKey) -> None:
    """DSSE v1 by hand: Ed25519 over PAE(payloadType, payload); raises unless it holds."""
    payload = base64.b64decode(envelope["payload"])
    ptype = envelope["payloadType"].encode()
    pae = b"DSSEv1 %d %b %d %b" % (len(ptype), ptype, len(payload), payload)
    (signature,) = envelope["signatures"]
    public_key.verify(base64.b64decode(signature["sig"]), pae)
