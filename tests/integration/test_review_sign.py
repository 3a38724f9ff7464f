"""`vqual sign` on a real run: reviewed, then approved, shown by `vqual verify` and `report`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_vqual
from tests.integration.reviewflow import (
    PASSING,
    add_person,
    executor,
    qualify,
    small_spec,
    vqual_with_passphrase,
)


def test_reviewed_then_approved_run_shows_both_signatures(tmp_path: Path) -> None:
    state = tmp_path / "state"
    executor(state)
    reviewer = add_person(state, "Rolf Reviewer", "rolf@example.com", "reviewer")
    approver = add_person(state, "Ada Approver", "ada@example.com", "approver")
    spec = small_spec(tmp_path, [PASSING])
    done, summary = qualify(state, tmp_path / "evidence", spec, "CHG0004001")
    assert done.returncode == 0, done.stdout + done.stderr
    bundle = summary["bundle"]

    # Wrong passphrase: refused, nothing written.
    before = (Path(bundle) / "records.jsonl").read_bytes()
    wrong = vqual_with_passphrase(
        "sign",
        bundle,
        "--meaning",
        "reviewed",
        "--key",
        str(reviewer),
        state_dir=state,
        passphrase=b"not it at all",
    )
    assert wrong.returncode == 2 and "wrong passphrase" in wrong.stderr
    assert (Path(bundle) / "records.jsonl").read_bytes() == before

    reviewed = vqual_with_passphrase(
        "sign",
        bundle,
        "--meaning",
        "reviewed",
        "--comment",
        "results <checked>",
        "--key",
        str(reviewer),
        state_dir=state,
    )
    assert reviewed.returncode == 0, reviewed.stderr
    approved = vqual_with_passphrase(
        "sign", bundle, "--meaning", "approved", "--key", str(approver), state_dir=state
    )
    assert approved.returncode == 0, approved.stderr

    verify = run_vqual("verify", bundle, "--json", state_dir=state)
    assert verify.returncode == 0, verify.stdout
    shown = [(s["meaning"], s["name"]) for s in json.loads(verify.stdout)["signatures"]]
    assert shown == [("reviewed", "Rolf Reviewer"), ("approved", "Ada Approver")]
    text = run_vqual("verify", bundle, state_dir=state).stdout
    assert "signed reviewed by Rolf Reviewer" in text and "signed approved by Ada Approver" in text

    report = run_vqual("report", bundle, "--out", str(tmp_path / "view"), state_dir=state)
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "view" / "report.html").read_text()
    assert "Rolf Reviewer" in html and "Ada Approver" in html
    assert "results &lt;checked&gt;" in html
    # The sealed report stays as it was at run.end.
    assert "Ada Approver" not in (Path(bundle) / "report.html").read_text()


def test_the_initiator_cannot_approve_through_the_cli(tmp_path: Path) -> None:
    state = tmp_path / "state"
    executor(state)
    ian = add_person(state, "Ian Initiator", "ian@example.com", "approver")
    spec = small_spec(tmp_path, [PASSING])
    done, summary = qualify(state, tmp_path / "evidence", spec, "CHG0004002")
    assert done.returncode == 0, done.stdout + done.stderr
    refused = vqual_with_passphrase(
        "sign", summary["bundle"], "--meaning", "approved", "--key", str(ian), state_dir=state
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "initiated this run and may not approve it" in refused.stderr
