"""Backup and restore of a server (database and store), and the check that follows a restore.

A backup is a directory: ``backup.json`` (format, schema revision, time, each table file's
SHA-256 and row count), ``tables/<table>.jsonl`` (one JSON object per row, bytes in base64) and
``store/`` (the bundles). It is database-neutral: a SQLite server restores into PostgreSQL and
back. It is taken inside the write lock, so it is one consistent state.

:func:`check_server` is what makes a restore trustworthy: every signed checkpoint is checked
against the log key in the trust store and against the root recomputed from the restored
entries (a rewritten or removed entry breaks every checkpoint after it), and every run's
records against the digest the database holds for them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from qualification.errors import BadInputError, VqualError
from qualification.evidence.bundle import RECORDS
from qualification.evidence.verify import open_signed_document
from qualification.server import db
from qualification.server.config import ServerConfig, load_trust
from qualification.server.leaves import CHECKPOINT_TYPE, leaf_hash, seal_leaf
from qualification.server.merkle import DbTree, expected_nodes, stored_nodes
from qualification.timeutil import utc_now_text

FORMAT = "vqual.server-backup/v1"
#: In the order they are restored.
TABLES = (db.tokens, db.runs, db.audit, db.log_entries, db.log_nodes, db.checkpoints, db.voids,
          db.tombstones)


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: {"b64": base64.b64encode(v).decode()} if isinstance(v, bytes | memoryview)
            else v for k, v in row.items()}


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: base64.b64decode(v["b64"]) if isinstance(v, dict) else v for k, v in row.items()}


def backup(config: ServerConfig, out: Path) -> dict[str, Any]:
    """Write a backup of the server at ``config`` to the new directory ``out``."""
    if out.exists():
        raise BadInputError(f"{out} exists; a backup goes to a new directory")
    engine = db.make_engine(config.database_url)
    try:
        (out / "tables").mkdir(parents=True)
        index: dict[str, Any] = {"format": FORMAT, "revision": db.HEAD, "time": utc_now_text(),
                                 "tables": {}}
        with db.write_tx(engine) as conn:  # writers wait: one consistent state
            for table in TABLES:
                rows = [_encode(dict(r._mapping)) for r in conn.execute(sa.select(table))]
                data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
                (out / "tables" / f"{table.name}.jsonl").write_bytes(data)
                index["tables"][table.name] = {"rows": len(rows),
                                               "sha256": hashlib.sha256(data).hexdigest()}
            shutil.copytree(config.store, out / "store",
                            ignore=shutil.ignore_patterns(".incoming"))
        (out / "backup.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        return index
    finally:
        engine.dispose()


def restore(config: ServerConfig, source: Path) -> dict[str, Any]:
    """Restore the backup at ``source`` into the empty server at ``config``.

    Raises:
        BadInputError: not a backup, another schema revision, a table file that differs from
            the index, or a database or store that is not empty.
    """
    try:
        index: dict[str, Any] = json.loads((source / "backup.json").read_text())
    except (OSError, ValueError):
        raise BadInputError(f"{source} is not a server backup (no readable backup.json)") from None
    if index.get("format") != FORMAT or index.get("revision") != db.HEAD:
        raise BadInputError(f"{source}: backup format or schema revision is not {FORMAT} "
                            f"at revision {db.HEAD}")
    if config.store.exists() and any(p.name != ".incoming" for p in config.store.iterdir()):
        raise BadInputError(f"store {config.store} is not empty; restore into a new server")
    db.upgrade(config.database_url)
    engine = db.make_engine(config.database_url)
    try:
        with db.write_tx(engine) as conn:
            for table in TABLES:
                _restore_table(conn, table, source, index)
        shutil.copytree(source / "store", config.store, dirs_exist_ok=True)
    finally:
        engine.dispose()
    return index


def _restore_table(conn: Connection, table: sa.Table, source: Path, index: dict[str, Any]) -> None:
    if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one():
        raise BadInputError(f"table {table.name} is not empty; restore into a new database")
    data = (source / "tables" / f"{table.name}.jsonl").read_bytes()
    if hashlib.sha256(data).hexdigest() != index["tables"][table.name]["sha256"]:
        raise BadInputError(f"{source}: tables/{table.name}.jsonl differs from backup.json")
    rows = [_decode(json.loads(line)) for line in data.splitlines()]
    if rows:
        conn.execute(table.insert(), rows)
    if table is db.audit and rows and conn.dialect.name == "postgresql":
        # Rows came with their ids; the sequence must continue after them.
        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('audit', 'id'), "
                             "(SELECT max(id) FROM audit))"))


def check_server(config: ServerConfig) -> tuple[list[str], dict[str, int]]:
    """Problems of the log and the store (empty: consistent) and what was checked."""
    trust = load_trust(config.state_dir)
    problems: list[str] = []
    engine = db.make_engine(config.database_url)
    try:
        with db.read_tx(engine) as conn:
            tree = DbTree(conn, verified=True)  # from the leaves, not the stored nodes
            size = tree.get_size()
            cps = conn.execute(sa.select(db.checkpoints).order_by(db.checkpoints.c.size)).all()
            for cp in cps:
                problems += _check_checkpoint(cp, trust, tree, size)
            if stored_nodes(conn) != expected_nodes(conn):
                problems.append("the log's stored subtree roots (log_nodes) differ from its "
                                "entries (an entry or a node was rewritten)")
            runs = conn.execute(sa.select(db.runs)).all()
            for run in runs:
                problems += _check_run(config, conn, run)
            for stone in conn.execute(sa.select(db.tombstones)).all():
                problems += _check_tombstone(config, tree, stone)
    finally:
        engine.dispose()
    if cps and cps[-1].size != size:
        problems.append(f"the log has {size} entries but its latest checkpoint {cps[-1].size}")
    return problems, {"entries": size, "checkpoints": len(cps), "runs": len(runs)}


def _check_checkpoint(cp: Any, trust: Any, tree: DbTree, size: int) -> list[str]:
    where = f"checkpoint of size {cp.size}"
    try:
        doc = open_signed_document(bytes(cp.envelope), CHECKPOINT_TYPE, trust, "log", where=where)
    except VqualError as exc:
        return [f"{where}: not signed by a trusted log key: {exc.one_line()}"]
    if (doc.payload.get("size"), doc.payload.get("root")) != (cp.size, cp.root):
        return [f"{where}: its row differs from what the log key signed"]
    if cp.size > size:
        return [f"{where}: the log has only {size} entries (entries were removed)"]
    if tree.get_root(cp.size).hex() != cp.root:
        return [(f"{where}: the signed root differs from the root of the entries held "
                "(an entry was rewritten or removed)")]
    return []


def _check_run(config: ServerConfig, conn: Connection, run: Any) -> list[str]:
    records = config.store / run.change_id / run.run_id / RECORDS
    try:
        digest = hashlib.sha256(records.read_bytes()).hexdigest()
    except OSError:
        return [f"run {run.run_id}: {RECORDS} is missing from the store"]
    out = []
    if digest != run.records_sha256:
        out.append(f"run {run.run_id}: the stored records differ from the database's digest")
    wanted = leaf_hash(seal_leaf(run.change_id, run.run_id, run.seal))
    if DbTree(conn).find(wanted) is None:
        out.append(f"run {run.run_id}: its seal is not in the log")
    return out


def _check_tombstone(config: ServerConfig, tree: DbTree, stone: Any) -> list[str]:
    """A purged run: its purge is in the log and its files have left the store."""
    from qualification.server.retention import purge_leaf

    out = []
    if tree.find(leaf_hash(purge_leaf(stone.run_id, stone.seal, bytes(stone.envelope)))) is None:
        out.append(f"purged run {stone.run_id}: its purge is not in the log")
    if (config.store / stone.change_id / stone.run_id).exists():
        out.append(f"purged run {stone.run_id}: its files are still in the store")
    return out
