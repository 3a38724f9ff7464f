"""Backup and restore of a populated server (database and store), with the log's consistency
checked after the restore; a log entry rewritten in a backup is detected when it is restored.
Against SQLite and PostgreSQL, and from one into the other."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from qualification.cli import main
from qualification.evidence.bundle import append_signature
from qualification.server.app import build_app
from qualification.server.backup import backup, check_server, restore
from qualification.server.config import ServerConfig
from qualification.server.files import pack
from qualification.server.logcheck import check_log
from qualification.server.service import EvidenceServer
from qualification.server.voiding import void_document
from tests.pg_testlib import Postgres
from tests.unit.server.server_testlib import InProcessClient, ServerState, new_run, start_server

RUNS = ("20260301T100000Z-aaaaaa", "20260302T100000Z-bbbbbb", "20260303T100000Z-cccccc")


def _populate(st: ServerState, server: EvidenceServer, token: str) -> Path:
    bundles = [new_run(st, run_id) for run_id in RUNS]
    for bundle in bundles:
        server.push("ci", pack(bundle))
    append_signature(bundles[0], st.keys.reviewer, {"meaning": "reviewed", "name": "Rita Reviewer",
                                                    "roles": ["reviewer"], "comment": ""})
    server.push("ci", pack(bundles[0]))
    info = server.run_info(RUNS[2])
    server.void("qa", RUNS[2], void_document(st.keys.approver, st.keys.trust, info, "wrong"))
    assert check_log(InProcessClient(build_app(server), token), bundles[0], st.state).problems == []
    return bundles[0]


def _new_home(st: ServerState, base: Path, url: str | None) -> ServerConfig:
    """Another server's home: the same trust and log key, an empty database and store."""
    state = base / "restored-state"
    shutil.copytree(st.state, state, ignore=shutil.ignore_patterns("server", "log"))
    return ServerConfig.from_state(state, database_url=url, log_key=state / "keys" / "log.pem")


def _restore_and_check(st: ServerState, source: Path, target: ServerConfig, signed: Path) -> None:
    restore(target, source)
    problems, counts = check_server(target)
    assert problems == []
    assert counts == {"entries": 5, "checkpoints": 5, "runs": 3}
    server = EvidenceServer(target)
    try:
        assert server.run_info(RUNS[2])["voided"]["by"] == "Anna Approver"
        info, _data = server.pull("qa", RUNS[0])
        assert info["lines"] == len((signed / "records.jsonl").read_bytes().splitlines())
        # The client that saw the original log's checkpoint finds the restored one consistent.
        token = start_token(server)
        result = check_log(InProcessClient(build_app(server), token), signed, st.state)
        assert result.problems == [] and result.consistent_from == 5
    finally:
        server.close()


def start_token(server: EvidenceServer) -> str:
    from qualification.server.tokens import create_token

    return create_token(server.engine, "restore-check", "reader")


def test_a_populated_server_is_backed_up_and_restored_consistent(
    st: ServerState, db_url: str | None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server, tokens = start_server(st, db_url)
    signed = _populate(st, server, tokens["reader"])
    index = backup(server.config, tmp_path / "backup")
    server.close()
    assert index["tables"]["log_entries"]["rows"] == 5
    target_url = None if db_url is None else request.getfixturevalue("postgres").create_database()
    _restore_and_check(st, tmp_path / "backup", _new_home(st, tmp_path, target_url), signed)


def test_a_sqlite_backup_restores_into_postgresql(
    st: ServerState, postgres: Postgres, tmp_path: Path
) -> None:
    server, tokens = start_server(st, None)
    signed = _populate(st, server, tokens["reader"])
    backup(server.config, tmp_path / "backup")
    server.close()
    _restore_and_check(st, tmp_path / "backup", _new_home(st, tmp_path, postgres.create_database()),
                       signed)


def test_a_log_entry_rewritten_in_a_backup_is_detected_on_restore(
    st: ServerState, db_url: str | None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server, tokens = start_server(st, db_url)
    _populate(st, server, tokens["reader"])
    backup(server.config, tmp_path / "backup")
    server.close()
    # Someone holding the backup rewrites entry 2 and fixes up the backup's own index.
    entries = tmp_path / "backup" / "tables" / "log_entries.jsonl"
    rows = [json.loads(line) for line in entries.read_text().splitlines()]
    rows[1]["leaf"] = {"b64": base64.b64encode(b'{"kind":"seal","run_id":"forged"}').decode()}
    entries.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    index_path = tmp_path / "backup" / "backup.json"
    index = json.loads(index_path.read_text())
    index["tables"]["log_entries"]["sha256"] = hashlib.sha256(entries.read_bytes()).hexdigest()
    index_path.write_text(json.dumps(index))

    target_url = None if db_url is None else request.getfixturevalue("postgres").create_database()
    target = _new_home(st, tmp_path, target_url)
    args = ["serve", "restore", str(tmp_path / "backup"), "--state-dir", str(target.state_dir)]
    if target_url:
        args += ["--database-url", target_url]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 1, done.output
    assert "INCONSISTENT: 5 log entries, 5 signed checkpoints, 3 runs" in done.output
    assert ("checkpoint of size 2: the signed root differs from the root of the entries held"
            in done.output)


def test_a_backup_whose_table_file_changed_is_refused(st: ServerState, tmp_path: Path) -> None:
    server, tokens = start_server(st, None)
    _populate(st, server, tokens["reader"])
    backup(server.config, tmp_path / "backup")
    server.close()
    with (tmp_path / "backup" / "tables" / "runs.jsonl").open("a") as out:
        out.write("{}\n")
    from qualification.errors import BadInputError

    with pytest.raises(BadInputError, match="runs.jsonl differs from backup.json"):
        restore(_new_home(st, tmp_path, None), tmp_path / "backup")
