"""Log proofs (what ``vqual pull`` saves beside a run and ``vqual verify --log`` checks): the
server's answers for a bundle, judged online and offline alike; a proof that does not match,
a checkpoint not signed by a log key, a log cut behind a saved proof; a re-push of a bundle
with records after its seal stamped by a real TSA (format v2 ``timestamp``) is logged and
proven. Against SQLite and PostgreSQL, through the real application in-process."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vqual_lab.tsa import TsaProcess, running_tsa

from qualification.evidence.bundle import append_signature
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.logproof import check_proof, load_proof, save_proof
from qualification.evidence.verify import verify_bundle
from qualification.server.app import build_app
from qualification.server.files import pack
from qualification.server.logcheck import check_log, fetch_proof, log_targets
from qualification.server.service import EvidenceServer
from qualification.signing import TrustStore
from qualification.signing.dsse import sign_envelope
from qualification.signing.trusted_tsa import TsaEntry
from tests.trustroot_testlib import pin_state
from tests.unit.evidence.evidence_testlib import SINCE
from tests.unit.evidence.test_trusted_time import stamped_run
from tests.unit.server.server_testlib import InProcessClient, ServerState, new_run, start_server

RUNS = [f"20260401T10000{i}Z-cccc0{i}" for i in range(3)]


@pytest.fixture
def served(st: ServerState, db_url: str | None) -> Iterator[tuple[EvidenceServer, Any]]:
    server, tokens = start_server(st, db_url)
    yield server, InProcessClient(build_app(server), tokens["reader"])
    server.close()


def test_a_saved_proof_is_checked_offline_first_contact_then_consistent(
    st: ServerState, served: Any, tmp_path: Path
) -> None:
    server, client = served
    first = new_run(st, RUNS[0])
    server.push("ci", pack(first))
    saved = tmp_path / "first.log.json"
    save_proof(fetch_proof(client, first, st.state), saved)

    result = check_proof(load_proof(saved), first, st.state, st.keys.trust, offline=True)
    assert result.problems == []
    assert result.included == [("seal", 1)]
    assert result.notes == [("first contact with the log at http://vqual.test: this checkpoint "
                             "is recorded; later checks prove the log consistent with it")]
    for run_id in RUNS[1:]:
        server.push("ci", pack(new_run(st, run_id)))
    later = fetch_proof(client, first, st.state)  # from the checkpoint seen (1) to 3
    assert [(s["first"], s["second"]) for s in later["consistency"]] == [(1, 3)]
    result = check_proof(later, first, st.state, st.keys.trust, offline=True)
    assert (result.problems, result.consistent_from, result.size) == ([], 1, 3)
    # The older saved proof is still good offline; the newer checkpoint seen stands.
    old = check_proof(load_proof(saved), first, st.state, st.keys.trust, offline=True)
    assert old.problems == [] and old.notes[0].startswith(
        "not proven consistent with the checkpoint of size 3 seen at ")


def test_an_inclusion_proof_that_does_not_match_is_not_included(
    st: ServerState, served: Any
) -> None:
    server, client = served
    bundles = [new_run(st, run_id) for run_id in RUNS[:2]]
    for bundle in bundles:
        server.push("ci", pack(bundle))
    proof = fetch_proof(client, bundles[0], st.state)
    forged = copy.deepcopy(proof)
    path = forged["inclusion"][0]["proof"]["path"]
    path[0] = "00" * 32 if path[0] != "00" * 32 else "11" * 32
    result = check_proof(forged, bundles[0], st.state, st.keys.trust, offline=True)
    assert len(result.problems) == 1
    assert result.problems[0].startswith(
        f"seal {proof['inclusion'][0]['leaf_hash'][:16]} not included in the log: ")
    # Another run's proof does not prove this run.
    other = fetch_proof(client, bundles[1], st.state)
    result = check_proof(other, bundles[0], st.state, st.keys.trust, offline=True)
    assert result.problems and "the log proof holds no proof for it" in result.problems[0]


def test_a_checkpoint_not_signed_by_a_log_key_is_refused(st: ServerState, served: Any) -> None:
    server, client = served
    bundle = new_run(st, RUNS[0])
    server.push("ci", pack(bundle))
    proof = fetch_proof(client, bundle, st.state)
    payload = json.loads(base64.b64decode(proof["checkpoint"]["payload"]))
    # The same checkpoint signed by the reviewer, a trusted key without the log role.
    payload.update(keyid=st.keys.reviewer.keyid, name="Rita Reviewer")
    proof["checkpoint"] = json.loads(sign_envelope(
        canonical_bytes(payload), st.keys.reviewer,
        "application/vnd.vqual.log-checkpoint+json").to_bytes())
    result = check_proof(proof, bundle, st.state, st.keys.trust)
    assert len(result.problems) == 1
    assert result.problems[0].startswith("bad checkpoint signature: ")
    assert "log" in result.problems[0]
    assert not (st.state / "log" / "seen.json").exists()  # nothing recorded from it


def test_a_change_is_anchored_by_its_latest_run(st: ServerState, served: Any) -> None:
    from qualification.execution.verifying import verify_command

    server, client = served
    first = new_run(st, RUNS[0])
    second = new_run(st, RUNS[1], prev=verify_bundle(first, st.keys.trust).seal_digest)
    for bundle in (first, second):
        server.push("ci", pack(bundle))
    _text, payload, code = verify_command(first.parent, st.state)
    assert code == 0
    assert log_targets(first.parent, payload) == [second]  # only the latest is cited by none
    result = check_log(client, second, st.state, st.keys.trust)
    assert result.problems == [] and result.included == [("seal", 2)]


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaProcess]:
    with running_tsa(tmp_path_factory.mktemp("tsa"), address="127.0.0.87", port=0) as proc:
        yield proc


def test_a_repush_with_a_timestamp_after_the_seal_is_logged_and_proven(
    st: ServerState, db_url: str | None, tsa: TsaProcess
) -> None:
    trust = TrustStore.load(st.state / "trust.yaml")
    trust.tsa = TsaEntry("site TSA", tsa.url, tsa.ca_file.read_text(), SINCE)
    trust.save()
    pin_state(st.state)  # the TSA is in force before the run is written
    st.keys.trust = TrustStore.load(st.state / "trust.yaml")
    server, tokens = start_server(st, db_url)
    try:
        bundle = stamped_run(st.evidence, st.keys, st.keys.trust.tsa, sign=False)
        stored = server.push("ci", pack(bundle))
        assert (stored.outcome, stored.log_indexes) == ("stored", [1, 2])  # seal, its token
        append_signature(bundle, st.keys.reviewer, {"meaning": "reviewed",
                                                    "name": "Rita Reviewer",
                                                    "roles": ["reviewer"]},
                         tsa=st.keys.trust.tsa)
        repushed = server.push("ci", pack(bundle))
        assert (repushed.outcome, repushed.appended, repushed.log_indexes) == (
            "appended", 2, [3, 4])
        result = check_log(InProcessClient(build_app(server), tokens["reader"]), bundle,
                           st.state, st.keys.trust)
        assert result.problems == []
        assert result.included == [("seal", 1), ("timestamp", 2), ("signature", 3),
                                   ("timestamp", 4)]
        assert [r["outcome"] for r in server.audit_rows() if r["action"] == "push"] == [
            "appended", "stored"]
    finally:
        server.close()
