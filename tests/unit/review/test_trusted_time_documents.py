"""Trusted time for what outlives a run: trust-store versions, protocol approvals and waivers
get an RFC 3161 token (``<name>.tsr`` beside the envelope) from the store's TSA, so none can
be backdated. The TSA is the lab's, started here in a temporary directory on port 0."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from vqual_lab.tsa import TsaProcess, running_tsa

from qualification.errors import BadInputError, TrustError
from qualification.evidence.records import format_time
from qualification.evidence.trusted_time import stamp_file, token_path
from qualification.review.approval import approve_protocol, require_approval
from qualification.review.deviations import approve_deviation, deviation_state
from qualification.review.signed import load_trust
from qualification.review.trust_history import sign_trust_store, trusted_store
from qualification.signing import TrustStore
from qualification.signing.trusted_tsa import TsaEntry
from tests.unit.review.reviewlib import add_person, approval_spec

CHANGE = "CHG0007001"


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaProcess]:
    with running_tsa(tmp_path_factory.mktemp("tsa"), address="127.0.0.88", port=0) as proc:
        yield proc


def name_tsa(state: Path, proc: TsaProcess, since: datetime | None = None) -> None:
    store = TrustStore.load(state / "trust.yaml")
    store.tsa = TsaEntry("site TSA", proc.url, proc.ca_file.read_text(),
                         since or datetime.now(UTC) - timedelta(days=1))
    store.save()


def test_an_approval_gets_a_token_openssl_accepts_and_is_void_without_it(
    tsa: TsaProcess, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    approver = add_person(state, "Ada Approver", "ada@example.com", ["approver"])
    name_tsa(state, tsa)
    spec = approval_spec(tmp_path / "specs")
    trust = load_trust(state)
    made = approve_protocol(spec, approver.signer(), trust, state)
    stored = state / made.file
    tsr = token_path(stored)
    assert tsr.name == stored.name + ".tsr" and tsr.is_file()
    done = subprocess.run(
        ["openssl", "ts", "-verify", "-token_in", "-in", str(tsr), "-data", str(stored),
         "-CAfile", str(tsa.ca_file)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    assert require_approval(state, spec, trust).digest == made.digest

    # Without its token (dropped) or with another document's, the approval does not count.
    token = tsr.read_bytes()
    tsr.unlink()
    with pytest.raises(BadInputError, match=rf"no time-stamp token {tsr.name} from TSA site TSA"):
        require_approval(state, spec, trust)
    other = tmp_path / "other.json"
    other.write_bytes(b"another document\n")
    tsr.write_bytes(token)
    other_token = token_path(other)
    assert stamp_file(trust, other) == other_token
    tsr.write_bytes(other_token.read_bytes())
    with pytest.raises(BadInputError, match=rf"{tsr.name}: token covers digest"):
        require_approval(state, spec, trust)


def test_a_waiver_without_its_token_does_not_count(tsa: TsaProcess, tmp_path: Path) -> None:
    approver = add_person(tmp_path, "Ada Approver", "ada@example.com", ["approver"])
    name_tsa(tmp_path, tsa)
    folder = tmp_path / "deviations" / CHANGE
    folder.mkdir(parents=True)
    entry = {"id": "DEV-001", "test_id": "IQ-T-002", "target": "localhost",
             "justification": "accepted until the rebuild", "owner": "ops@example.com",
             "expiry": format_time(datetime.now(UTC) + timedelta(days=30))}
    (folder / "deviations.yaml").write_text(yaml.safe_dump(
        {"version": 1, "change_id": CHANGE, "deviations": [entry]}, sort_keys=False))
    trust = load_trust(tmp_path)
    waiver = approve_deviation(tmp_path, CHANGE, "DEV-001", approver.signer(), trust)
    tsr = token_path(tmp_path / waiver.file)
    assert tsr.is_file()
    assert "DEV-001" in deviation_state(tmp_path, CHANGE, trust).waivers
    tsr.unlink()
    state = deviation_state(tmp_path, CHANGE, trust)
    assert state.waivers == {}
    assert any("no time-stamp token" in r for r in state.refused)


def test_a_trust_store_version_gets_a_token_and_is_refused_without_it(
    tsa: TsaProcess, tmp_path: Path
) -> None:
    admin = add_person(tmp_path, "Tom Admin", "tom@example.com", ["trust-admin"])
    name_tsa(tmp_path, tsa)
    first = sign_trust_store(tmp_path, admin.signer(), "bootstrap")
    sig = tmp_path / "trust-history" / f"v{first.version:04d}.sig.json"
    assert trusted_store(tmp_path, require_signed=True)[1] == 1
    tsr = token_path(sig)
    assert tsr.is_file()
    tsr.unlink()
    with pytest.raises(TrustError, match="no time-stamp token"):
        trusted_store(tmp_path, require_signed=True)


def test_documents_signed_before_the_store_named_a_tsa_need_no_token(
    tsa: TsaProcess, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    approver = add_person(state, "Ada Approver", "ada@example.com", ["approver"])
    spec = approval_spec(tmp_path / "specs")
    made = approve_protocol(spec, approver.signer(), load_trust(state), state)
    assert not token_path(state / made.file).exists()
    name_tsa(state, tsa, since=datetime.now(UTC) + timedelta(minutes=5))
    assert require_approval(state, spec, load_trust(state)).digest == made.digest


def test_an_approval_the_tsa_gives_no_token_for_is_not_stored(
    tsa: TsaProcess, tmp_path: Path
) -> None:
    import socket

    from qualification.errors import EXIT_PLATFORM
    from qualification.signing.timestamping import TimestampError

    state = tmp_path / "state"
    approver = add_person(state, "Ada Approver", "ada@example.com", ["approver"])
    with socket.socket() as s:
        s.bind(("127.0.0.92", 0))
        port = s.getsockname()[1]
    store = TrustStore.load(state / "trust.yaml")
    store.tsa = TsaEntry("site TSA", f"http://127.0.0.92:{port}/", tsa.ca_file.read_text(),
                         datetime.now(UTC) - timedelta(days=1))
    store.save()
    spec = approval_spec(tmp_path / "specs")
    with pytest.raises(TimestampError, match="not stored: TSA site TSA gave no token") as err:
        approve_protocol(spec, approver.signer(), load_trust(state), state)
    assert err.value.exit_code == EXIT_PLATFORM
    assert not list((state / "approvals").rglob("*.json"))
