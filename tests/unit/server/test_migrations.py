"""Schema migrations (Alembic, shipped in the package): a database populated at the previous
revision is upgraded in place, keeps its accounts and runs, and logs the runs it held."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa
from pymerkle import InclusionProof, verify_inclusion

from qualification.server import db
from qualification.server.config import ServerConfig
from qualification.server.leaves import leaf_hash, read_sealed, seal_leaf
from qualification.server.merkle import DbTree, expected_nodes, stored_nodes
from qualification.server.service import EvidenceServer
from qualification.server.tokens import authenticate, create_token
from tests.unit.server.server_testlib import ServerState, new_run

RUNS = ("20260301T100000Z-aaaaaa", "20260302T100000Z-bbbbbb")


def test_a_populated_database_of_the_previous_revision_is_upgraded(
    st: ServerState, db_url: str | None
) -> None:
    config = ServerConfig.from_state(st.state, database_url=db_url, log_key=st.log_key)
    db.upgrade(config.database_url, "0001")
    engine = db.make_engine(config.database_url)
    token = create_token(engine, "ci-pipeline", "pusher")
    sealed = []
    for i, run_id in enumerate(RUNS):  # runs as a 0001 server stored them
        bundle = new_run(st, run_id)
        run = read_sealed(bundle)
        shutil.copytree(bundle, config.store / run.change_id / run_id)
        with db.write_tx(engine) as conn:
            conn.execute(sa.text(
                "INSERT INTO runs (run_id, change_id, seal, records_sha256, lines, pushed, "
                "pushed_by) VALUES (:r, :c, :s, :d, :n, :t, 'ci-pipeline')"),
                {"r": run_id, "c": run.change_id, "s": run.seal, "d": "0" * 64,
                 "n": len(run.lines), "t": f"2026-03-0{i + 1}T10:00:00.000000Z"})
        sealed.append(run)
    assert db.current_revision(engine) == "0001"
    engine.dispose()

    db.upgrade(config.database_url)
    server = EvidenceServer(config)
    try:
        assert db.current_revision(server.engine) == db.HEAD
        assert authenticate(server.engine, token) is not None  # the account survived
        with db.read_tx(server.engine) as conn:  # 0004 computed the tree state of the log
            assert stored_nodes(conn) == expected_nodes(conn) == {
                (1, 0): DbTree(conn, verified=True).get_root(2).hex()}
        server.ensure_checkpoint()
        for index, run in enumerate(sealed, start=1):
            digest = leaf_hash(seal_leaf(run.change_id, run.run_id, run.seal))
            proof = server.inclusion(digest, len(sealed))
            assert proof["index"] == index
            root = bytes.fromhex(server.latest_root())
            verify_inclusion(bytes.fromhex(digest), root,
                             InclusionProof.deserialize(proof["proof"]))
        info, data = server.pull("qa", RUNS[1])
        assert info["seal"] == sealed[1].seal and data
    finally:
        server.close()


def test_the_migrations_are_shipped_in_the_package() -> None:
    from qualification.server import migrations

    where = Path(migrations.__file__).parent
    assert (where / "env.py").is_file()
    assert sorted(p.name for p in (where / "versions").glob("v*.py")) == [
        "v0001_initial.py", "v0002_log.py", "v0003_sites_retention.py", "v0004_log_nodes.py",
        "v0005_web.py", "v0006_deviations.py"]


def test_a_populated_database_of_revision_0002_gains_sites_and_tombstones(
    st: ServerState, db_url: str | None
) -> None:
    from qualification.server.settings import Settings
    from tests.unit.server.sites_testlib import site_run

    config = ServerConfig.from_state(st.state, database_url=db_url, log_key=st.log_key)
    db.upgrade(config.database_url, "0002")
    engine = db.make_engine(config.database_url)
    token = create_token(engine, "ci-pipeline", "pusher")
    bundle = site_run(st, RUNS[0], "basel")
    run = read_sealed(bundle)
    shutil.copytree(bundle, config.store / run.change_id / run.run_id)
    with db.write_tx(engine) as conn:
        conn.execute(sa.text(
            "INSERT INTO runs (run_id, change_id, seal, records_sha256, lines, pushed, "
            "pushed_by) VALUES (:r, :c, :s, :d, :n, '2026-03-01T10:00:00.000000Z', 'ci')"),
            {"r": run.run_id, "c": run.change_id, "s": run.seal, "d": "0" * 64,
             "n": len(run.lines)})
    engine.dispose()

    db.upgrade(config.database_url)
    server = EvidenceServer(config)
    try:
        assert db.current_revision(server.engine) == db.HEAD
        account = authenticate(server.engine, token)
        assert account is not None and account.sites == frozenset()  # of no site until renewed
        assert server.run_info(RUNS[0])["sites"] == ["basel"]  # read from the held inventory
        server.settings = Settings(sites=("basel",))
        from qualification.server.service import Refused

        try:
            server.run_info(RUNS[0], account)
            raise AssertionError("an account of no site read a run of basel")
        except Refused as exc:
            assert exc.status == 403
        with db.read_tx(server.engine) as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(db.tombstones)
                                ).scalar_one() == 0
    finally:
        server.close()
