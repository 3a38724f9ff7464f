"""An in-toto Statement v1 with the test-result predicate, signed as a DSSE envelope.

The mapping (docs/exports.md): the subjects are the bundle's sealed files (``manifest.json``
and every file it lists) with their SHA-256 digests; the predicate
(https://in-toto.io/attestation/test-result/v0.1) has ``result`` PASSED when every result
passed, WARNED when the others are waived, FAILED otherwise; ``passedTests``, ``warnedTests``
(waived) and ``failedTests`` (fail, error and not-executed: a test that did not run did not
pass, and a policy that reads only the standard fields must not take it for passed) name
results as ``<test id>@<target>``. ``configuration`` names the spec and the inventory
snapshot with their digests. The extension field ``vqual`` gives each result's own verdict,
the counts and the seal; by the framework's parsing rules it changes no other field's
meaning.
"""

from __future__ import annotations

import json
from typing import Any

from qualification.reports.exports.source import ExportSource, result_name
from qualification.signing import Envelope, Signer, sign_envelope

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
#: The DSSE payload type of an in-toto Statement (in-toto attestation spec, envelope layer).
PAYLOAD_TYPE = "application/vnd.in-toto+json"

#: vqual verdict -> predicate list.
LIST_OF: dict[str, str] = {
    "pass": "passedTests",
    "waived": "warnedTests",
    "fail": "failedTests",
    "error": "failedTests",
    "not-executed": "failedTests",
}

#: Bundle files that configured the run: the spec copy and the inventory snapshot.
CONFIGURATION = ("spec.yaml", "inventory.json")


def to_statement(source: ExportSource) -> dict[str, Any]:
    """The in-toto Statement of a verified run (a JSON-ready mapping)."""
    lists: dict[str, list[str]] = {"passedTests": [], "warnedTests": [], "failedTests": []}
    verdicts: list[dict[str, Any]] = []
    for result in source.results:
        name = result_name(result)
        lists[LIST_OF.get(result.verdict, "failedTests")].append(name)  # unknown: failed
        entry: dict[str, Any] = {"name": name, "verdict": result.verdict}
        if result.reason:
            entry["reason"] = result.reason
        if result.deviation:
            entry["deviation"] = result.deviation
        verdicts.append(entry)
    if lists["failedTests"]:
        outcome = "FAILED"
    elif lists["warnedTests"]:
        outcome = "WARNED"
    else:
        outcome = "PASSED"
    configuration = [
        {"name": f.path, "digest": {"sha256": f.sha256}}
        for f in source.sealed
        if f.path in CONFIGURATION
    ]
    run = source.run
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f.path, "digest": {"sha256": f.sha256}} for f in source.sealed],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "result": outcome,
            "configuration": configuration,
            **lists,
            "vqual": {
                "change_id": run.change_id,
                "run_id": run.run_id,
                "seal": source.seal,
                "verdict": run.verdict(),
                "counts": source.counts(),
                "results": verdicts,
            },
        },
    }


def sign_statement(statement: dict[str, Any], signer: Signer) -> Envelope:
    """The statement signed by ``signer`` into a DSSE envelope (payload: compact JSON)."""
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sign_envelope(payload.encode("utf-8"), signer, PAYLOAD_TYPE)


def to_envelope(source: ExportSource, signer: Signer) -> dict[str, Any]:
    """The signed in-toto attestation of a verified run: the DSSE envelope as JSON."""
    return sign_statement(to_statement(source), signer).to_dict()
