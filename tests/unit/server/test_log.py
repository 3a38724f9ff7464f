"""The transparency log: every accepted seal and signature is a leaf; checkpoints are signed
by the log key; a client proves a bundle's inclusion and the log's consistency since the
checkpoint it saw; a rewritten or removed entry shows as an inconsistent log; two servers on
one database pushing at once make one consistent log. Against SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pymerkle import ConsistencyProof, verify_consistency

from qualification.evidence.bundle import append_signature
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.verify import open_signed_document
from qualification.server import db
from qualification.server.app import build_app
from qualification.server.files import pack
from qualification.server.leaves import CHECKPOINT_TYPE
from qualification.server.logcheck import check_log
from qualification.server.merkle import DbTree, expected_nodes, rebuild_nodes, stored_nodes
from qualification.server.service import EvidenceServer, Refused
from tests.unit.server.server_testlib import (
    InProcessClient,
    ServerState,
    new_run,
    start_server,
)

RUNS = [f"20260301T10000{i}Z-aaaaa{i}" for i in range(4)]


@pytest.fixture
def served(st: ServerState, db_url: str | None) -> Iterator[tuple[EvidenceServer, dict[str, str]]]:
    server, tokens = start_server(st, db_url)
    yield server, tokens
    server.close()


def _client(server: EvidenceServer, token: str) -> Any:
    return InProcessClient(build_app(server), token)


def test_a_pushed_bundle_is_proven_in_a_signed_checkpoint(st: ServerState, served: Any) -> None:
    server, tokens = served
    bundle = new_run(st, RUNS[0])
    server.push("ci", pack(bundle))
    append_signature(bundle, st.keys.reviewer, {"meaning": "reviewed", "name": "Rita Reviewer",
                                                "roles": ["reviewer"], "comment": ""})
    server.push("ci", pack(bundle))
    doc = open_signed_document(server.checkpoint(), CHECKPOINT_TYPE, st.keys.trust, "log",
                               where="checkpoint")
    assert (doc.payload["size"], doc.key.name) == (2, "Evidence log")

    result = check_log(_client(server, tokens["reader"]), bundle, st.state)
    assert result.problems == []
    assert result.included == [("seal", 1), ("signature", 2)]
    assert result.consistent_from is None  # nothing seen before
    assert (st.state / "log" / "seen.json").is_file()


def test_a_bundle_never_pushed_is_not_proven(st: ServerState, served: Any) -> None:
    server, tokens = served
    server.push("ci", pack(new_run(st, RUNS[0])))
    result = check_log(_client(server, tokens["reader"]), new_run(st, RUNS[1]), st.state)
    assert len(result.problems) == 1
    assert result.problems[0].startswith("seal ") and "not included in the log" in result.problems[0]


def test_the_log_stays_consistent_as_it_grows(st: ServerState, served: Any) -> None:
    server, tokens = served
    client = _client(server, tokens["reader"])
    first = new_run(st, RUNS[0])
    server.push("ci", pack(first))
    assert check_log(client, first, st.state).problems == []
    for run_id in RUNS[1:]:
        server.push("ci", pack(new_run(st, run_id)))
    result = check_log(client, first, st.state)
    assert result.problems == []
    assert (result.consistent_from, result.size) == (1, 4)


def test_a_rewritten_entry_shows_as_an_inconsistent_log(st: ServerState, served: Any) -> None:
    server, tokens = served
    client = _client(server, tokens["reader"])
    bundles = [new_run(st, run_id) for run_id in RUNS[:3]]
    for bundle in bundles[:2]:
        server.push("ci", pack(bundle))
    assert check_log(client, bundles[0], st.state).problems == []
    with db.write_tx(server.engine) as conn:  # someone with the database rewrites entry 2
        conn.execute(db.log_entries.update().where(db.log_entries.c.idx == 2)
                     .values(leaf=b'{"kind":"seal","run_id":"forged"}'))
        rebuild_nodes(conn)  # and the stored tree state, so the server serves the rewrite
    server.push("ci", pack(bundles[2]))  # the next checkpoint is signed over the rewrite
    result = check_log(client, bundles[2], st.state)
    assert any(p.startswith("log inconsistent since the checkpoint of size 2") for p in
               result.problems), result.problems
    # The seen checkpoint is kept, so the rewrite stays detected.
    assert check_log(client, bundles[2], st.state).problems == result.problems


def test_an_entry_rewritten_without_its_tree_state_fails_the_servers_check(
    st: ServerState, served: Any
) -> None:
    from qualification.server.backup import check_server

    server, _tokens = served
    for run_id in RUNS[:3]:
        server.push("ci", pack(new_run(st, run_id)))
    assert check_server(server.config)[0] == []
    with db.write_tx(server.engine) as conn:
        conn.execute(db.log_entries.update().where(db.log_entries.c.idx == 1)
                     .values(leaf=b'{"kind":"seal","run_id":"forged"}'))
    problems, _ = check_server(server.config)
    assert "the log's stored subtree roots (log_nodes) differ from its entries" in problems[-1]
    assert sum("signed root differs from the root of the entries" in p for p in problems) == 3


def test_the_incremental_tree_agrees_with_the_leaves_at_every_size(
    st: ServerState, served: Any
) -> None:
    server, _tokens = served
    with db.write_tx(server.engine) as conn:
        tree = DbTree(conn)
        for i in range(37):
            tree.append_leaf(f"leaf {i}".encode(), "r", "t")
    with db.read_tx(server.engine) as conn:
        stored, full = DbTree(conn), DbTree(conn, verified=True)
        assert stored_nodes(conn) == expected_nodes(conn)
        assert len(stored_nodes(conn)) == 37 - 3  # n minus the set bits of n (100101)
        for size in range(1, 38):
            assert stored.get_root(size) == full.get_root(size)
        for index in (1, 17, 37):
            assert (stored.prove_inclusion(index, 37).serialize()
                    == full.prove_inclusion(index, 37).serialize())
        assert (stored.prove_consistency(5, 37).serialize()
                == full.prove_consistency(5, 37).serialize())


def test_a_removed_entry_shows_as_an_inconsistent_log(st: ServerState, served: Any) -> None:
    server, tokens = served
    client = _client(server, tokens["reader"])
    bundles = [new_run(st, run_id) for run_id in RUNS[:2]]
    for bundle in bundles:
        server.push("ci", pack(bundle))
    assert check_log(client, bundles[0], st.state).problems == []
    with db.write_tx(server.engine) as conn:
        conn.execute(db.log_entries.delete().where(db.log_entries.c.idx == 2))
        conn.execute(db.checkpoints.delete().where(db.checkpoints.c.size == 2))
    result = check_log(client, bundles[0], st.state)
    assert "log inconsistent: it has 1 entries, fewer than the checkpoint of size 2" in \
        result.problems[0]


def test_two_servers_pushing_at_once_make_one_consistent_log(
    st: ServerState, served: Any, db_url: str | None
) -> None:
    server, _tokens = served
    second = EvidenceServer(server.config)  # a second worker: its own engine
    bundles = [new_run(st, f"20260302T1000{i:02d}Z-bbbb{i:02d}") for i in range(10)]
    errors: list[BaseException] = []

    def push_all(worker: EvidenceServer, mine: list[Path]) -> None:
        try:
            for bundle in mine:
                worker.push("ci", pack(bundle))
        except Exception as exc:  # noqa: BLE001 - any failure of a worker is reported below
            errors.append(exc)

    threads = [threading.Thread(target=push_all, args=(w, bundles[i::2]))
               for i, w in enumerate((server, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    second.close()
    assert errors == []
    with db.read_tx(server.engine) as conn:
        indexes = conn.execute(sa.select(db.log_entries.c.idx)).scalars().all()
        cps = conn.execute(sa.select(db.checkpoints.c.size, db.checkpoints.c.root)
                           .order_by(db.checkpoints.c.size)).all()
        tree = DbTree(conn)
        assert sorted(indexes) == list(range(1, 11))
        assert [c.size for c in cps] == list(range(1, 11))  # one checkpoint per push, in order
        for cp in cps:  # every checkpoint ever signed is a prefix of the final log
            assert tree.get_root(cp.size).hex() == cp.root
            if cp.size < 10:
                proof = ConsistencyProof.deserialize(tree.prove_consistency(cp.size, 10).serialize())
                verify_consistency(bytes.fromhex(cp.root), tree.get_root(10), proof)


def test_a_run_is_voided_by_a_signed_document_never_deleted(st: ServerState, served: Any) -> None:
    from qualification.server.voiding import void_document

    server, _tokens = served
    bundle = new_run(st, RUNS[0])
    info = server.push("ci", pack(bundle)).to_json()
    forged = json.loads(void_document(st.keys.approver, st.keys.trust, info, "x"))
    forged["payload"] = base64.b64encode(base64.b64decode(forged["payload"]).replace(
        b'"reason":"x"', b'"reason":"y"')).decode()
    with pytest.raises(Refused, match="not valid.*does not verify"):
        server.void("ci", RUNS[0], canonical_bytes(forged))
    reviewer_void = _unsigned_role_void(st, info)
    with pytest.raises(Refused, match="does not hold the trust-admin role"):
        server.void("ci", RUNS[0], reviewer_void)
    out = server.void("ci", RUNS[0], void_document(st.keys.approver, st.keys.trust, info,
                                                   "pushed from the wrong pipeline"))
    assert (out["voided_by"], out["log_index"]) == ("Anna Approver", 2)
    held = server.run_info(RUNS[0])
    assert held["voided"]["by"] == "Anna Approver"
    _info, data = server.pull("qa", RUNS[0])  # still held, still pulled
    assert data
    with pytest.raises(Refused, match="voided already"):
        server.void("ci", RUNS[0], void_document(st.keys.approver, st.keys.trust, info, "again"))
    assert [r["outcome"] for r in server.audit_rows() if r["action"] == "void"] == ["ok"]


def _unsigned_role_void(st: ServerState, info: dict[str, Any]) -> bytes:
    """A void signed by the reviewer (who may not void), made as the approver's would be."""
    from qualification.review.documents import sign_document, signer_fields
    from qualification.server.leaves import VOID_TYPE
    from qualification.timeutil import utc_now_text

    key = st.keys.trust.get(st.keys.reviewer.keyid)
    assert key is not None
    payload = signer_fields(key, utc_now_text(), None)
    payload.update({"run_id": info["run_id"], "seal": info["seal"], "reason": "no"})
    return sign_document(st.keys.reviewer, VOID_TYPE, payload)


def test_checkpoints_need_the_log_role(st: ServerState, db_url: str | None, tmp_path: Path) -> None:
    from qualification.errors import TrustError
    from qualification.server.config import ServerConfig
    from qualification.signing.keys import create_key

    stray = tmp_path / "stray.pem"
    create_key(stray, passphrase=None, name="stray", identity="stray")
    config = ServerConfig.from_state(st.state, database_url=db_url, log_key=stray)
    db.upgrade(config.database_url)
    with pytest.raises(TrustError, match="not in the trust store with the log role"):
        EvidenceServer(config)
