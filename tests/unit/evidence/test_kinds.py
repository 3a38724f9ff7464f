"""The registry of record kinds against its golden fixtures (tests/fixtures/golden/kinds/).

Every registered kind has a fixture; each fixture's records fit the kind's declared payload
type, keep their canonical bytes, give the report rows and the audit line stored with them,
and (where the writer appends them) verify in a bundle written through the registry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from qualification.evidence.bundle import BundleWriter, append_signature
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.kinds import REGISTRY, RUN_START, SIGNATURE, RecordKind, kind_of
from qualification.evidence.reader import read_bundle
from qualification.evidence.verify import verify_bundle
from qualification.reports.model import load_run
from qualification.review.audit_trail import audit_trust, collect_events
from qualification.selftest.kinds import planning_every_result
from qualification.signing import Ed25519Signer, TrustStore
from tests.unit.evidence.evidence_testlib import add_renderings

KINDS_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "golden" / "kinds"


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((KINDS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _examples() -> list[Any]:
    return [
        pytest.param(name, ex, id=f"{name}-{i}")
        for name in sorted(REGISTRY)
        for i, ex in enumerate(_fixture(name)["examples"])
    ]


def _row_json(row: object) -> dict[str, Any]:
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        fields = dataclasses.asdict(row)
    else:
        assert isinstance(row, tuple)
        fields = row._asdict()  # type: ignore[attr-defined]
    return {"type": type(row).__name__, "fields": json.loads(json.dumps(fields))}


def test_every_registered_kind_has_a_golden_fixture_and_every_fixture_a_kind() -> None:
    fixtures = {p.name.removesuffix(".json") for p in KINDS_DIR.glob("*.json")}
    assert fixtures == set(REGISTRY)
    for name in fixtures:
        assert _fixture(name)["kind"] == name
        assert _fixture(name)["examples"], f"{name}: a fixture needs at least one record"


def test_kind_lookup_refuses_what_is_not_registered() -> None:
    assert kind_of("check.result") is REGISTRY["check.result"]
    assert kind_of("check.results") is None
    assert kind_of(None) is None


@pytest.mark.parametrize(("name", "example"), _examples())
def test_fixture_payload_fits_the_declared_payload_type(name: str, example: dict[str, Any]) -> None:
    kind = REGISTRY[name]
    hints = typing.get_type_hints(kind.payload)
    required = set(kind.payload.__required_keys__)  # type: ignore[attr-defined]
    data = example["record"]["data"]
    assert set(data) <= set(hints), f"{name}: fields not declared: {set(data) - set(hints)}"
    assert required <= set(data), f"{name}: required fields missing: {required - set(data)}"


@pytest.mark.parametrize(("name", "example"), _examples())
def test_fixture_payload_keeps_its_canonical_bytes(name: str, example: dict[str, Any]) -> None:
    data = example["record"]["data"]
    assert hashlib.sha256(canonical_bytes(data)).hexdigest() == example["canonical_sha256"]


@pytest.mark.parametrize(("name", "example"), _examples())
def test_kind_gives_the_stored_report_rows_and_audit_line(
    name: str, example: dict[str, Any]
) -> None:
    kind: RecordKind = REGISTRY[name]
    record = {**example["record"], "kind": name}
    assert [_row_json(r) for r in kind.report_rows(record)] == example["report_rows"]
    line = kind.audit_line(record, _fixture(name)["signer"])
    assert (dataclasses.asdict(line) if line is not None else None) == example["audit_line"]


def test_the_observation_time_of_a_check_result_reaches_its_report_row() -> None:
    # check.result's optional `observation_ms` (the probe's own time) has its golden record;
    # records written before it have none and their rows say None.
    examples = _fixture("check.result")["examples"]
    timed = [ex for ex in examples if "observation_ms" in ex["record"]["data"]]
    assert timed
    for ex in examples:
        (row,) = [r for r in ex["report_rows"] if r["type"] == "Result"]
        assert row["fields"]["observation_ms"] == ex["record"]["data"].get("observation_ms")


def test_the_measured_values_of_a_check_result_reach_its_report_row() -> None:
    # check.result's optional `measured` (an OQ run's figures) has its own golden record.
    measured = [
        ex for ex in _fixture("check.result")["examples"] if "measured" in ex["record"]["data"]
    ]
    assert measured, "check.result's golden fixture must carry a record with measured"
    for ex in measured:
        (row,) = [r for r in ex["report_rows"] if r["type"] == "Result"]
        assert row["fields"]["measured"] == ex["record"]["data"]["measured"]
        assert row["fields"]["verdict"] == "fail" and "heartbeat" in row["fields"]["reason"]


def _round_trip_bundle(tmp_path: Path) -> tuple[Path, TrustStore]:
    """Every appendable fixture record written through the registry-driven writer, sealed
    and signed by a reviewer."""
    executor, reviewer = Ed25519Signer.generate(), Ed25519Signer.generate()
    trust = TrustStore.empty(tmp_path / "trust.yaml")
    since = datetime(2026, 1, 1, tzinfo=UTC)
    trust.add_key(
        public_key_pem=executor.public_pem(),
        name="Golden Executor",
        identity="svc@example.com",
        roles=["executor"],
        valid_from=since,
    )
    trust.add_key(
        public_key_pem=reviewer.public_pem(),
        name="Rita Reviewer",
        identity="rita@example.com",
        roles=["reviewer"],
        valid_from=since,
    )
    trust.save()
    w = BundleWriter.create(tmp_path / "ev", "CHG0000001", "run-1", executor, "jane.doe")
    appended = [
        (name, ex["record"]["data"])
        for name in sorted(REGISTRY)
        if name != RUN_START
        and (fixture := _fixture(name))["in_bundle"]
        and REGISTRY[name].appendable
        for ex in fixture["examples"]
    ]
    # The fixtures are examples, not one run: the run.start plans every result appended, so
    # run.end agrees with the records (verify recounts them).
    start = planning_every_result(
        _fixture(RUN_START)["examples"][0]["record"]["data"],
        [data for name, data in appended if name == "check.result"],
    )
    w.append(RUN_START, start)
    counts: dict[str, int] = {}
    for name, data in appended:
        w.append(name, data)
        if name == "check.result":
            counts[data["verdict"]] = counts.get(data["verdict"], 0) + 1
    add_renderings(w)
    w.seal(counts, len(start["planned"]), sum(counts.values()), "fail")
    sig = _fixture(SIGNATURE)["examples"][0]["record"]["data"]
    append_signature(w.path, reviewer, {k: sig[k] for k in ("meaning", "name", "roles", "comment")})
    return w.path, trust


def test_appendable_fixtures_verify_in_a_bundle_written_through_the_registry(
    tmp_path: Path,
) -> None:
    path, trust = _round_trip_bundle(tmp_path)
    res = verify_bundle(path, trust, workers=1)
    assert res.status == "valid", res.problems
    assert [s["name"] for s in res.signatures] == ["Rita Reviewer"]
    run = load_run(read_bundle(path).records)
    (oq,) = [r for r in run.results if r.test_id == "KVM-OQ-02"]
    assert oq.measured == {
        "migration_s": 4.2,
        "max_gap_s": 3.1,
        "agent_wait_s": 30.0,
        "ran_on": {"before": "kvm01.lab", "after": "kvm02.lab"},
        "cleanup": {"domain": "undefined", "disk": "removed"},
    }
    assert [a.name for a in run.actions] == ["patch.enter_maintenance"]
    assert run.skipped_hosts == (("kvm03.lab", "unreachable: no route to host"),)


def test_a_record_of_an_unregistered_kind_is_refused_by_writer_and_verifier(
    tmp_path: Path,
) -> None:
    path, trust = _round_trip_bundle(tmp_path)
    with pytest.raises(Exception, match="unknown record kind 'check.results'"):
        BundleWriter.create(
            tmp_path / "ev2", "CHG0000001", "run-2", Ed25519Signer.generate(), "jane.doe"
        ).append("check.results", {})
    assert verify_bundle(path, trust, workers=1).status == "valid"


def test_audit_lists_each_kind_by_its_registered_line(tmp_path: Path) -> None:
    _round_trip_bundle(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / "trust.yaml").write_bytes((tmp_path / "trust.yaml").read_bytes())
    # an unsigned store: judged as legacy, as asked
    events = collect_events(state, [tmp_path / "ev"], datetime(2000, 1, 1, tzinfo=UTC),
                            judged=audit_trust(state, legacy=True))
    whats = [e.what for e in events if e.source.startswith("CHG0000001/")]
    # check.result and fingerprint are outcomes, not acts; run.end is written at seal time.
    assert sorted(whats) == sorted(
        ["run.start", "action", "host.skipped", "run.end", "signature.reviewed"]
    )
    start = next(e for e in events if e.what == "run.start")
    assert start.who == "jane.doe" and "executed by Golden Executor" in start.detail
