"""Protocol approval: the exact spec and data file bytes, signed by an approver."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.errors import BadInputError, TrustError
from qualification.review.approval import approve_protocol, require_approval
from qualification.review.signed import load_trust
from tests.unit.review.reviewlib import add_person, approval_spec


def test_an_approval_covers_exactly_the_spec_and_its_data_files(tmp_path: Path) -> None:
    state = tmp_path / "state"
    approver = add_person(state, "Ada Approver", "ada@example.com", ["approver"])
    spec = approval_spec(tmp_path / "specs")
    trust = load_trust(state)
    with pytest.raises(BadInputError, match="has no valid approval"):
        require_approval(state, spec, trust)
    made = approve_protocol(spec, approver.signer(), trust, state, "fit for CHG0005002")
    found = require_approval(state, spec, trust)
    assert found.digest == made.digest and found.name == "Ada Approver"
    assert found.citation()["spec_digest"] == made.spec_digest

    # One changed byte in a data file voids it.
    data = tmp_path / "specs" / "data" / "expected.yaml"
    data.write_text("kernel: 6.2\n")
    with pytest.raises(BadInputError, match="data files differ"):
        require_approval(state, spec, trust)
    data.write_text("kernel: 6.1\n")
    require_approval(state, spec, trust)

    # One changed byte in the spec voids it.
    spec.write_bytes(spec.read_bytes() + b"\n")
    with pytest.raises(BadInputError, match="has no valid approval"):
        require_approval(state, spec, trust)


def test_only_a_trusted_approver_approves_and_an_edited_approval_is_void(tmp_path: Path) -> None:
    state = tmp_path / "state"
    reviewer = add_person(state, "Rolf Reviewer", "rolf@example.com", ["reviewer"])
    approver = add_person(state, "Ada Approver", "ada@example.com", ["approver"])
    spec = approval_spec(tmp_path / "specs")
    trust = load_trust(state)
    with pytest.raises(TrustError, match="approver role"):
        approve_protocol(spec, reviewer.signer(), trust, state)
    made = approve_protocol(spec, approver.signer(), trust, state)
    stored = state / made.file
    text = stored.read_bytes()
    sig_at = text.index(b'"sig":"') + len(b'"sig":"')
    flipped = b"B" if text[sig_at : sig_at + 1] == b"A" else b"A"
    stored.write_bytes(text[:sig_at] + flipped + text[sig_at + 1 :])
    with pytest.raises(BadInputError, match="does not verify"):
        require_approval(state, spec, trust)
