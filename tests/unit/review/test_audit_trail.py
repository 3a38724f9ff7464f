"""`vqual audit`: who did what and when, from bundles and the state directory."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from click.testing import CliRunner

from qualification.audit import record_failed_verification
from qualification.cli import main
from qualification.evidence.records import format_time
from qualification.review.approval import approve_protocol
from qualification.review.audit_trail import collect_events, parse_since, render_events
from qualification.review.deviations import approve_deviation
from qualification.review.esign import sign_bundle
from qualification.review.signed import load_trust
from qualification.signing import TrustStore
from tests.trustroot_testlib import pin_state
from tests.unit.evidence.evidence_testlib import CHANGE, build_bundle, make_keys
from tests.unit.review.reviewlib import add_person, approval_spec

RUN = "20260301T100000Z-a1b2c3"


def _world(tmp_path: Path) -> tuple[Path, Path]:
    """A state directory and evidence root with one of everything the audit lists."""
    state, evidence = tmp_path / "state", tmp_path / "evidence"
    state.mkdir()
    keys = make_keys(state)
    build_bundle(evidence, keys, RUN)
    reviewer = add_person(state, "Rolf Reviewer", "rolf@example.com", ["reviewer"])
    approver = add_person(state, "Ada Approver", "ada@example.com", ["approver"])
    leaver = add_person(state, "Lea Leaver", "lea@example.com", ["reviewer"])
    store = TrustStore.load(state / "trust.yaml")
    store.revoke(leaver.keyid, datetime.now(UTC))
    store.save()
    pin_state(state)  # the audit judges signers through the pinned root, as verify does
    trust = load_trust(state)
    bundle = evidence / CHANGE / RUN
    sign_bundle(bundle, reviewer.signer(), trust, "reviewed", "looked at all")
    sign_bundle(bundle, approver.signer(), trust, "approved")
    approve_protocol(approval_spec(tmp_path / "specs"), approver.signer(), trust, state, "go")
    folder = state / "deviations" / CHANGE
    folder.mkdir(parents=True)
    expiry = format_time(datetime.now(UTC) + timedelta(days=5))
    (folder / "deviations.yaml").write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "change_id": CHANGE,
                "deviations": [
                    {
                        "id": "DEV-9",
                        "test_id": "KVM-13",
                        "target": "kvm02.lab",
                        "justification": "known",
                        "expiry": expiry,
                        "owner": "ops",
                    }
                ],
            }
        )
    )
    approve_deviation(state, CHANGE, "DEV-9", approver.signer(), trust)
    record_failed_verification(state, bundle, "invalid", ["spec.yaml: content does not match"])
    return state, evidence


def test_every_kind_of_event_is_listed_with_who_and_when(tmp_path: Path) -> None:
    state, evidence = _world(tmp_path)
    events = collect_events(state, [evidence], parse_since("2000-01-01"))
    by_what: dict[str, list[str]] = {}
    for e in events:
        by_what.setdefault(e.what, []).append(e.who)
    assert by_what["run.start"] == ["jane.doe"] and by_what["run.end"] == ["jane.doe"]
    assert by_what["action"] == ["CI Pipeline"] and "host.skipped" in by_what
    assert by_what["signature.reviewed"] == ["Rolf Reviewer"]
    assert by_what["signature.approved"] == ["Ada Approver"]
    assert by_what["protocol.approved"] == ["Ada Approver"]
    assert by_what["deviation.approved"] == ["Ada Approver"]
    assert by_what["trust.key-revoked"] == ["Lea Leaver"]
    assert len(by_what["trust.key-valid-from"]) == 7  # with the test root, a trust-admin
    assert "verify.failed" in by_what
    assert [e.time for e in events] == sorted(e.time for e in events)
    approved = next(e for e in events if e.what == "protocol.approved")
    assert approved.detail.endswith("; verifies")


def test_signed_trust_store_versions_are_listed_with_their_changes(tmp_path: Path) -> None:
    from qualification.review.trust_history import sign_trust_store

    state = tmp_path / "state"
    admin = add_person(state, "Tom Admin", "tom@example.com", ["trust-admin"])
    sign_trust_store(state, admin.signer(), "bootstrap")
    add_person(state, "Ada Approver", "ada@example.com", ["approver"])
    sign_trust_store(state, admin.signer())
    events = [
        e
        for e in collect_events(state, [], parse_since("2000-01-01"))
        if e.what == "trust.version-signed"
    ]
    assert [e.who for e in events] == ["Tom Admin", "Tom Admin"]
    assert "version 2" in events[1].detail and "added Ada Approver" in events[1].detail


def test_since_and_until_select_a_period(tmp_path: Path) -> None:
    state, evidence = _world(tmp_path)
    everything = collect_events(state, [evidence], parse_since("2000-01-01"))
    recent = collect_events(state, [evidence], datetime.now(UTC) - timedelta(hours=1))
    assert 0 < len(recent) < len(everything)
    assert all(e.time >= format_time(datetime.now(UTC) - timedelta(hours=1)) for e in recent)
    # The test bundle's records were written just now, but trust keys date from 2020.
    early = collect_events(state, [evidence], parse_since("2000-01-01"), parse_since("2021-01-01"))
    assert {e.what for e in early} == {"trust.key-valid-from"}


def test_a_tampered_approval_and_a_damaged_bundle_are_listed_as_such(tmp_path: Path) -> None:
    state, evidence = _world(tmp_path)
    approval = next((state / "approvals").glob("*/*.json"))
    text = approval.read_bytes()
    at = text.index(b'"sig":"') + 7
    approval.write_bytes(text[:at] + (b"B" if text[at : at + 1] == b"A" else b"A") + text[at + 1 :])
    broken = evidence / CHANGE / "20260302T000000Z-000000"
    broken.mkdir()
    (broken / "records.jsonl").write_bytes(b"not an envelope\n")
    events = collect_events(state, [evidence], parse_since("2000-01-01"))
    approved = next(e for e in events if e.what == "protocol.approved")
    assert "DOES NOT VERIFY" in approved.detail
    damaged = [e for e in events if e.what == "bundle.unreadable"]
    assert len(damaged) == 1 and damaged[0].run_id == "20260302T000000Z-000000"


def test_csv_and_json_through_the_command(tmp_path: Path) -> None:
    state, evidence = _world(tmp_path)
    runner = CliRunner()
    done = runner.invoke(
        main,
        [
            "audit",
            "--since",
            "2000-01-01",
            "--format",
            "csv",
            "--evidence-dir",
            str(evidence),
            "--state-dir",
            str(state),
        ],
    )
    assert done.exit_code == 0, done.output
    assert done.stderr.startswith("vqual: trust root: ")  # named beside the listing
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert rows and set(rows[0]) == {
        "time",
        "who",
        "what",
        "change_id",
        "run_id",
        "target",
        "keyid",
        "detail",
        "source",
    }
    assert any(r["what"] == "signature.approved" and r["who"] == "Ada Approver" for r in rows)
    done = runner.invoke(
        main,
        [
            "audit",
            "--since",
            "2000-01-01",
            "--format",
            "json",
            "--evidence-dir",
            str(evidence),
            "--state-dir",
            str(state),
        ],
    )
    doc = json.loads(done.stdout)
    assert doc["schema"] == "vqual.audit/v1" and len(doc["events"]) == len(rows)
    bad = runner.invoke(main, ["audit", "--since", "last tuesday", "--state-dir", str(state)])
    assert bad.exit_code == 2 and "is not a date" in bad.output


def test_text_lists_one_line_per_event(tmp_path: Path) -> None:
    state, evidence = _world(tmp_path)
    since = parse_since("2000-01-01")
    events = collect_events(state, [evidence], since)
    text = render_events(events, "text", since, None)
    assert text.splitlines()[0] == f"{len(events)} events since 2000-01-01T00:00:00.000000Z"
    assert len(text.splitlines()) == len(events) + 1


def test_verify_record_appends_a_failed_verification_that_audit_lists(tmp_path: Path) -> None:
    state, evidence = tmp_path / "state", tmp_path / "evidence"
    state.mkdir()
    build_bundle(evidence, make_keys(state, pinned=True), RUN)
    bundle = evidence / CHANGE / RUN
    runner = CliRunner()
    valid = runner.invoke(main, ["verify", str(bundle), "--record", "--state-dir", str(state)])
    assert valid.exit_code == 0 and not (state / "audit.log").exists(), "only failures are logged"
    (bundle / "report.html").write_text("<p>edited</p>")
    done = runner.invoke(main, ["verify", str(bundle), "--record", "--state-dir", str(state)])
    assert done.exit_code == 1
    log = (state / "audit.log").read_text().splitlines()
    assert len(log) == 1 and json.loads(log[0])["status"] == "invalid"
    since = parse_since("2000-01-01")
    failed = [e for e in collect_events(state, [evidence], since) if e.what == "verify.failed"]
    assert len(failed) == 1 and failed[0].run_id == RUN
    assert "report.html" in failed[0].detail
