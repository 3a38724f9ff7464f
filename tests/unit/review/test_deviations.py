"""Deviations: the file's rules, and which waivers count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from qualification.errors import BadInputError, EvidenceInvalidError, TrustError
from qualification.evidence.bundle import BundleWriter
from qualification.evidence.records import format_time
from qualification.review.deviations import (
    approve_deviation,
    deviation_state,
    load_deviations,
    waiver_problems,
)
from qualification.review.esign import sign_bundle
from qualification.review.signed import load_trust
from qualification.signing import Ed25519Signer, TrustStore
from tests.unit.evidence.evidence_testlib import add_renderings
from tests.unit.review.reviewlib import add_person

CHANGE = "CHG0005001"


def _entry(**over: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "id": "DEV-001",
        "test_id": "IQ-T-002",
        "target": "localhost",
        "justification": "OS id differs on the build host; accepted until the rebuild",
        "expiry": format_time(datetime.now(UTC) + timedelta(days=30)),
        "owner": "ops@example.com",
    }
    entry.update(over)
    return entry


def _write(state: Path, entries: list[dict[str, object]], **top: object) -> Path:
    folder = state / "deviations" / CHANGE
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"version": 1, "change_id": CHANGE, "deviations": entries, **top}
    path = folder / "deviations.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_no_file_means_no_deviations(tmp_path: Path) -> None:
    assert load_deviations(tmp_path, CHANGE) == []


@pytest.mark.parametrize(
    ("entries", "top", "message"),
    [
        ([_entry(owner=None)], {}, "field 'owner' must be a non-empty string"),
        ([_entry(expiry="2026-12-31")], {}, "needs a time"),
        ([_entry(expiry="2026-12-31T00:00:00")], {}, "must end in Z"),
        ([_entry(expiry="soon")], {}, "not a UTC time"),
        ([_entry(colour="red")], {}, "unknown field"),
        ([_entry(), _entry()], {}, "DEV-001 listed twice"),
        ([_entry(id="../x")], {}, "must match"),
        ([_entry()], {"change_id": "CHG0000009"}, "not CHG0005001"),
        ([_entry()], {"version": 2}, "'version' must be 1"),
        (["just text"], {}, "deviations\\[0\\]: must be a mapping"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_entry(
    tmp_path: Path, entries: list[dict[str, object]], top: dict[str, object], message: str
) -> None:
    _write(tmp_path, entries, **top)
    with pytest.raises(BadInputError, match=message) as info:
        load_deviations(tmp_path, CHANGE)
    assert info.value.exit_code == 2


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, [_entry()])
    path.write_text(path.read_text() + "  - id: [unclosed\n")
    with pytest.raises(BadInputError, match=r"deviations\.yaml:\d+"):
        load_deviations(tmp_path, CHANGE)


def test_only_an_approved_unedited_deviation_has_a_waiver(tmp_path: Path) -> None:
    approver = add_person(tmp_path, "Ada Approver", "ada@example.com", ["approver"])
    reviewer = add_person(tmp_path, "Rolf Reviewer", "rolf@example.com", ["reviewer"])
    _write(tmp_path, [_entry(), _entry(id="DEV-002", test_id="IQ-T-003")])
    trust = load_trust(tmp_path)
    unsigned = deviation_state(tmp_path, CHANGE, trust)
    now = format_time(datetime.now(UTC))
    assert unsigned.waivers == {}
    assert unsigned.covering("IQ-T-002", "localhost", now) is None

    with pytest.raises(TrustError, match="approver role"):
        approve_deviation(tmp_path, CHANGE, "DEV-001", reviewer.signer(), trust)
    with pytest.raises(BadInputError, match="no deviation 'DEV-404'"):
        approve_deviation(tmp_path, CHANGE, "DEV-404", approver.signer(), trust)
    waiver = approve_deviation(tmp_path, CHANGE, "DEV-001", approver.signer(), trust, "ok")
    state = deviation_state(tmp_path, CHANGE, trust)
    covering = state.covering("IQ-T-002", "localhost", now)
    assert covering is not None and covering.deviation.id == "DEV-001"
    assert covering.name == "Ada Approver" and covering.file == waiver.file
    assert state.covering("IQ-T-002", "otherhost", now) is None
    assert state.covering("IQ-T-003", "localhost", now) is None  # DEV-002 is unsigned
    assert state.status(state.deviations[1], now) == "unsigned"

    # Past its expiry the deviation covers nothing.
    later = format_time(datetime.now(UTC) + timedelta(days=31))
    assert state.covering("IQ-T-002", "localhost", later) is None
    assert state.status(state.deviations[0], later) == "expired"

    # Editing the deviation after approval voids the waiver.
    _write(tmp_path, [_entry(justification="something else"), _entry(id="DEV-002")])
    edited = deviation_state(tmp_path, CHANGE, trust)
    assert edited.waivers == {}
    assert any("edited after it was approved" in r for r in edited.refused)


def test_a_tampered_or_untrusted_waiver_does_not_count(tmp_path: Path) -> None:
    approver = add_person(tmp_path, "Ada Approver", "ada@example.com", ["approver"])
    _write(tmp_path, [_entry()])
    waiver = approve_deviation(tmp_path, CHANGE, "DEV-001", approver.signer(), load_trust(tmp_path))
    stored = tmp_path / waiver.file
    good = stored.read_bytes()
    stored.write_bytes(good.replace(b'"payload":"', b'"payload":"ey', 1))
    state = deviation_state(tmp_path, CHANGE, load_trust(tmp_path))
    assert state.waivers == {} and state.refused
    stored.write_bytes(good)
    assert "DEV-001" in deviation_state(tmp_path, CHANGE, load_trust(tmp_path)).waivers
    # The approver's key leaves the trust store: the waiver no longer counts.
    (tmp_path / "trust.yaml").unlink()
    add_person(tmp_path, "Other", "other@example.com", ["approver"])
    assert deviation_state(tmp_path, CHANGE, load_trust(tmp_path)).waivers == {}


def test_an_expired_deviation_cannot_be_approved(tmp_path: Path) -> None:
    approver = add_person(tmp_path, "Ada Approver", "ada@example.com", ["approver"])
    _write(tmp_path, [_entry(expiry="2020-01-01T00:00:00Z")])
    with pytest.raises(BadInputError, match="expired"):
        approve_deviation(tmp_path, CHANGE, "DEV-001", approver.signer(), load_trust(tmp_path))


def _executor(state: Path) -> Ed25519Signer:
    signer = Ed25519Signer.generate()
    store = TrustStore.load(state / "trust.yaml")
    store.add_key(
        public_key_pem=signer.public_pem(),
        name="CI",
        identity="ci",
        roles=["executor"],
        valid_from=datetime(2020, 1, 1, tzinfo=UTC),
    )
    store.save()
    return signer


def _run_with(
    state: Path,
    executor: Ed25519Signer,
    run: str,
    waiver_record: dict[str, object] | None,
    waived: str,
) -> Path:
    """A sealed run whose one failed result is recorded as waived by ``waived``."""
    w = BundleWriter.create(state / "ev", CHANGE, run, executor, "jane")
    w.append(
        "run.start", {"planned": [{"test_id": "IQ-T-002", "target": "localhost", "protocol": "IQ"}]}
    )
    if waiver_record is not None:
        w.append("deviation.waiver", waiver_record)
    w.append(
        "check.result",
        {
            "test_id": "IQ-T-002",
            "target": "localhost",
            "protocol": "IQ",
            "verdict": "waived",
            "deviation": waived,
            "raw": None,
        },
    )
    add_renderings(w)
    w.seal({"waived": 1}, 1, 1, "pass")
    return w.path


def test_waived_results_must_rest_on_a_valid_waiver_in_the_bundle(tmp_path: Path) -> None:
    approver = add_person(tmp_path, "Ada Approver", "ada@example.com", ["approver"])
    reviewer = add_person(tmp_path, "Rolf Reviewer", "rolf@example.com", ["reviewer"])
    executor = _executor(tmp_path)
    _write(tmp_path, [_entry()])
    waiver = approve_deviation(tmp_path, CHANGE, "DEV-001", approver.signer(), load_trust(tmp_path))
    trust = load_trust(tmp_path)
    good = _run_with(tmp_path, executor, "20260101T000000Z-000001", waiver.record(), "DEV-001")
    assert waiver_problems(good, trust) == []
    sign_bundle(good, reviewer.signer(), trust, "reviewed")

    # The executor rewrites the justification: the approver's envelope no longer matches.
    forged = dict(waiver.record(), justification="approved, honest")
    bad = _run_with(tmp_path, executor, "20260101T000000Z-000002", forged, "DEV-001")
    assert any("does not match its signed envelope" in p for p in waiver_problems(bad, trust))
    # A result marked waived with no waiver at all.
    bare = _run_with(tmp_path, executor, "20260101T000000Z-000003", None, "DEV-001")
    assert any("no valid waiver" in p for p in waiver_problems(bare, trust))
    with pytest.raises(EvidenceInvalidError, match="no valid waiver"):
        sign_bundle(bare, reviewer.signer(), trust, "reviewed")


def _hand_signed_waiver(state: Path, person_signer: Ed25519Signer, trust: TrustStore) -> None:
    """A waiver made without ``vqual deviation approve`` (so without its refusals)."""
    from qualification.evidence.verify import WAIVER_KIND, WAIVER_TYPE
    from qualification.review.signed import sign_document, write_new

    dev = load_deviations(state, CHANGE)[0]
    key = trust.get(person_signer.keyid)
    assert key is not None
    now = format_time(datetime.now(UTC))
    payload = {
        "v": 1,
        "kind": WAIVER_KIND,
        "meaning": "approved",
        "change_id": CHANGE,
        "deviation": dev.to_json(),
        "digest": dev.digest,
        "time": now,
        "name": key.name,
        "identity": key.identity,
        "roles": list(key.roles),
        "keyid": key.keyid,
        "comment": None,
    }
    line = sign_document(person_signer, WAIVER_TYPE, payload)
    write_new(state / "deviations" / CHANGE / "waivers" / f"{dev.id}-by-hand.json", line + b"\n")


@pytest.mark.parametrize(
    ("entry", "who"),
    [
        (_entry(raised_by="ada@example.com"), "raised_by names the approver's identity"),
        (_entry(raised_by="Ada Approver"), "raised_by names the approver's printed name"),
        (_entry(owner="ada@example.com"), "the approver owns the deviation"),
    ],
)
def test_whoever_raised_or_owns_a_deviation_may_not_approve_it(
    tmp_path: Path, entry: dict[str, object], who: str
) -> None:
    ada = add_person(tmp_path, "Ada Approver", "ada@example.com", ["approver"])
    bob = add_person(tmp_path, "Bob Approver", "bob@example.com", ["approver"])
    _write(tmp_path, [entry])
    trust = load_trust(tmp_path)
    with pytest.raises(TrustError, match="raised or owns deviation DEV-001") as info:
        approve_deviation(tmp_path, CHANGE, "DEV-001", ada.signer(), trust)
    assert info.value.exit_code == 2, who
    assert "\n" not in info.value.one_line()
    assert not (tmp_path / "deviations" / CHANGE / "waivers").exists()  # nothing written

    # A waiver the raiser signed some other way does not count either.
    _hand_signed_waiver(tmp_path, ada.signer(), trust)
    state = deviation_state(tmp_path, CHANGE, trust)
    assert state.waivers == {}
    assert any("who raised or owns deviation DEV-001" in r for r in state.refused)

    # Somebody else may approve it.
    approve_deviation(tmp_path, CHANGE, "DEV-001", bob.signer(), trust)
    assert deviation_state(tmp_path, CHANGE, trust).waivers["DEV-001"].name == "Bob Approver"


def test_raised_by_is_bound_only_when_given(tmp_path: Path) -> None:
    # Deviations written before raised_by existed keep their digest, so their waivers hold.
    _write(tmp_path, [_entry(), _entry(id="DEV-002", raised_by="rolf@example.com")])
    old, new = load_deviations(tmp_path, CHANGE)
    assert "raised_by" not in old.to_json()
    assert set(old.to_json()) == {"id", "test_id", "target", "justification", "expiry", "owner"}
    assert new.raised_by == "rolf@example.com" and new.to_json()["raised_by"] == new.raised_by
    _write(tmp_path, [_entry(id="DEV-002", raised_by="rolf@example.com")])
    same = load_deviations(tmp_path, CHANGE)[0]
    _write(tmp_path, [_entry(id="DEV-002", raised_by="somebody@example.com")])
    assert load_deviations(tmp_path, CHANGE)[0].digest != same.digest
    _write(tmp_path, [_entry(raised_by="")])
    with pytest.raises(BadInputError, match="'raised_by' must be a non-empty string"):
        load_deviations(tmp_path, CHANGE)


def test_a_waiver_by_the_runs_initiator_or_its_raiser_does_not_back_a_waived_result(
    tmp_path: Path,
) -> None:
    # _run_with's runs are initiated by "jane"; Jane is also an approver.
    jane = add_person(tmp_path, "Jane Doe", "jane", ["approver"])
    ada = add_person(tmp_path, "Ada Approver", "ada@example.com", ["approver"])
    executor = _executor(tmp_path)
    _write(tmp_path, [_entry(raised_by="rolf@example.com")])
    trust = load_trust(tmp_path)
    own = approve_deviation(tmp_path, CHANGE, "DEV-001", jane.signer(), trust)
    bundle = _run_with(tmp_path, executor, "20260101T000000Z-000011", own.record(), "DEV-001")
    problems = waiver_problems(bundle, trust)
    assert any("approved by Jane Doe, who initiated or executed this run" in p for p in problems)
    assert any("no valid waiver" in p for p in problems)  # so the waived result is unbacked

    fine = approve_deviation(tmp_path, CHANGE, "DEV-001", ada.signer(), trust)
    bundle = _run_with(tmp_path, executor, "20260101T000000Z-000012", fine.record(), "DEV-001")
    assert waiver_problems(bundle, trust) == []

    # The executor copies in a waiver signed by the deviation's raiser (made by hand).
    rolf = add_person(tmp_path, "Rolf Raiser", "rolf@example.com", ["approver"])
    trust = load_trust(tmp_path)
    _hand_signed_waiver(tmp_path, rolf.signer(), trust)
    forged = _all_waivers(tmp_path, trust, "rolf@example.com")[0]
    bundle = _run_with(tmp_path, executor, "20260101T000000Z-000013", forged, "DEV-001")
    assert any("who raised or owns the deviation" in p for p in waiver_problems(bundle, trust))


def _all_waivers(state: Path, trust: TrustStore, identity: str) -> list[dict[str, object]]:
    """Waiver records as the recorder would copy them, for the stored waivers by ``identity``,
    whether or not they count."""
    from qualification.evidence.verify import WAIVER_TYPE
    from qualification.review.deviations import Waiver
    from qualification.review.signed import open_document

    found: list[dict[str, object]] = []
    dev = load_deviations(state, CHANGE)[0]
    for path in sorted((state / "deviations" / CHANGE / "waivers").glob("*.json")):
        raw = path.read_bytes()
        doc = open_document(raw, WAIVER_TYPE, trust, "approver", where=path.name)
        if doc.key.identity == identity:
            waiver = Waiver(
                dev, doc.key.name, doc.keyid, str(doc.payload["time"]), None,
                path.relative_to(state).as_posix(), raw.rstrip(b"\n").decode(),
            )
            found.append(waiver.record())
    return found


def test_a_waiver_by_the_runs_initiator_or_executor_covers_nothing_in_that_run(
    tmp_path: Path,
) -> None:
    jane = add_person(tmp_path, "Jane Doe", "jane@example.com", ["approver"])
    _write(tmp_path, [_entry()])
    trust = load_trust(tmp_path)
    approve_deviation(tmp_path, CHANGE, "DEV-001", jane.signer(), trust)
    state = deviation_state(tmp_path, CHANGE, trust)
    now = format_time(datetime.now(UTC))
    assert state.covering("IQ-T-002", "localhost", now) is not None
    assert state.covering("IQ-T-002", "localhost", now, not_by=("ci-key-id", "bob")) is not None
    for who in ("jane@example.com", "Jane Doe", jane.keyid):
        assert state.covering("IQ-T-002", "localhost", now, not_by=(who, "ci-key-id")) is None
