"""OQ self checks of the record-kind registry (VQ-25): each registered kind against its golden
fixture (``kinds/<kind>.json`` of the ``--golden`` directory, as
``tests/fixtures/golden/kinds/`` in the source tree), and every appendable fixture record
written into a scratch bundle that must verify valid.

The fixtures travel with the golden bundles (the same ``--golden`` directory), as ST-OQ-01
reads them; neither is in the wheel.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.kinds import CHECK_RESULT, REGISTRY, RUN_START
from qualification.execution.recorder import overall_verdict
from qualification.selftest.base import Outcome, SelfCheck, never_run
from qualification.selftest.evidence import Scratch

#: Where the per-kind fixtures are, under the golden directory.
KINDS_DIR = "kinds"


def _fixture(kinds_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((kinds_dir / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _row_json(row: object) -> dict[str, Any]:
    """A report row as the fixtures store it: ``{"type": class name, "fields": {...}}``."""
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        fields = dataclasses.asdict(row)
    else:
        fields = row._asdict()  # type: ignore[attr-defined]  # NamedTuple rows
    return {"type": type(row).__name__, "fields": json.loads(json.dumps(fields))}


def _differences(name: str, signer: str, index: int, example: Mapping[str, Any]) -> list[str]:
    """What the registry says of one fixture record today that differs from the fixture."""
    kind = REGISTRY[name]
    record = {**example["record"], "kind": name}
    found = []
    digest = hashlib.sha256(canonical_bytes(record["data"])).hexdigest()
    if digest != example["canonical_sha256"]:
        found.append(f"record {index}: canonical digest {digest[:16]}, stored "
                     f"{str(example['canonical_sha256'])[:16]}")
    try:
        rows = [_row_json(r) for r in kind.report_rows(record)]
        if rows != example["report_rows"]:
            found.append(f"record {index}: report rows differ from the stored ones")
    except Exception as exc:  # noqa: BLE001 - a row that does not render is the finding
        found.append(f"record {index}: report rows do not render ({type(exc).__name__}: {exc})")
    try:
        line = kind.audit_line(record, signer)
        if (dataclasses.asdict(line) if line is not None else None) != example["audit_line"]:
            found.append(f"record {index}: audit line differs from the stored one")
    except Exception as exc:  # noqa: BLE001 - a line that does not render is the finding
        found.append(f"record {index}: audit line does not render ({type(exc).__name__}: {exc})")
    return found


def kind_check(kinds_dir: Path, name: str) -> Callable[[], Outcome]:
    """``name``'s fixture records keep their canonical digest, report rows and audit line."""

    def run() -> Outcome:
        path = kinds_dir / f"{name}.json"
        if name not in REGISTRY:
            return Outcome(False, None, f"{path.name}: {name} is not a registered kind")
        if not path.is_file():
            return Outcome(False, None, f"no golden fixture {path} for registered kind {name}")
        fixture = _fixture(kinds_dir, name)
        examples = fixture.get("examples") or []
        if fixture.get("kind") != name or not examples:
            return Outcome(False, None, f"{path} is not the fixture of {name} with records")
        per_record = [
            _differences(name, str(fixture.get("signer")), i, ex) for i, ex in enumerate(examples)
        ]
        found = [d for differences in per_record for d in differences]
        observed = {"records": len(examples), "as_stored": per_record.count([])}
        return Outcome(not found, observed, "; ".join(found) or None)

    return run


def planning_every_result(
    run_start: Mapping[str, Any], results: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """``run_start`` planning every result in ``results`` too: the fixtures' records are
    examples, not one run, and a sealed bundle's ``run.end`` must agree with what it plans."""
    if not isinstance(run_start.get("planned"), list):
        return dict(run_start)  # malformed: left for verify to refuse
    planned = [dict(p) for p in run_start["planned"]]
    known = {(p.get("test_id"), p.get("target")) for p in planned}
    for data in results:
        key = (data.get("test_id"), data.get("target"))
        if key not in known:
            known.add(key)
            planned.append({"protocol": data.get("protocol"), "target": data.get("target"),
                            "test_id": data.get("test_id")})
    return {**run_start, "planned": planned}


def round_trip(kinds_dir: Path, scratch: Callable[[], Scratch]) -> Outcome:
    """Every appendable fixture record written through the registry-driven writer into a
    scratch bundle, sealed, verified."""
    s = scratch()
    w = s.writer()
    appended = [
        (name, ex["record"]["data"])
        for name in sorted(REGISTRY)
        if name != RUN_START
        and (fixture := _fixture(kinds_dir, name))["in_bundle"]
        and REGISTRY[name].appendable
        for ex in fixture["examples"]
    ]
    start = planning_every_result(
        _fixture(kinds_dir, RUN_START)["examples"][0]["record"]["data"],
        [data for name, data in appended if name == CHECK_RESULT],
    )
    w.append(RUN_START, start)
    counts: dict[str, int] = {}
    written = {RUN_START: 1}
    for name, data in appended:
        w.append(name, data)
        written[name] = written.get(name, 0) + 1
        if name == CHECK_RESULT:
            counts[data["verdict"]] = counts.get(data["verdict"], 0) + 1
    results = sum(counts.values())
    s.seal(w, counts, len(start["planned"]), results, overall_verdict(counts))
    res = s.verify(w.path)
    return Outcome(res.status == "valid", {"status": res.status, "records": written},
                   "; ".join(res.problems[:3]) or None)


def kind_checks(golden: Path | None, scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """OQ: one check per registered kind, and the round trip; not-executed without fixtures."""
    kinds_dir = golden / KINDS_DIR if golden else None
    expected = {"op": "equals", "value": "as stored in kinds/<kind>.json"}
    if kinds_dir is None or not kinds_dir.is_dir():
        why = (f"no record-kind fixtures in {kinds_dir}" if kinds_dir else
               "no golden fixtures here") + " (run from the source tree or give --golden DIR)"
        return [
            SelfCheck("ST-OQ-10", "every record kind keeps its golden records", "OQ", "VQ-25",
                      "qualification.evidence.kinds.REGISTRY", expected, never_run,
                      not_executed=why),
            SelfCheck("ST-OQ-11", "every appendable kind's golden records verify in a bundle",
                      "OQ", "VQ-25", "BundleWriter.append, verify_bundle",
                      {"op": "equals", "value": "valid"}, never_run, not_executed=why),
        ]
    names = sorted(set(REGISTRY) | {p.name.removesuffix(".json") for p in kinds_dir.glob("*.json")})
    return [
        *(
            SelfCheck(
                f"ST-OQ-10-{name}",
                f"record kind {name} keeps its digest, report rows and audit line",
                "OQ",
                "VQ-25",
                f"canonical digest, report_rows, audit_line of kinds/{name}.json",
                expected,
                kind_check(kinds_dir, name),
            )
            for name in names
        ),
        SelfCheck(
            "ST-OQ-11",
            "every appendable kind's golden records verify in a bundle",
            "OQ",
            "VQ-25",
            "BundleWriter.append every in_bundle fixture record, seal, verify_bundle",
            {"op": "equals", "value": "valid"},
            lambda: round_trip(kinds_dir, scratch),
        ),
    ]
