"""Logging at seal time and ``vqual verify --log``, as they run: a real ``vqual qualify`` (the
embedded default) and a real ``vqual patch`` (a whole rolling-patch run on libvirt's test
driver, in-process; its one stand-in is the patch executor, as in
tests/unit/rollout/test_orchestrator_verdict.py) push their runs to a real ``vqual serve`` when
they seal; both are pulled with their log proofs and verified against the log online and
offline (the server stopped), on SQLite and on the tests' own PostgreSQL. A rewritten log
entry fails ``verify --log`` as an inconsistent log; an unreachable server loses no evidence."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from qualification.cli import main
from qualification.rollout import launch
from qualification.server import db
from qualification.server.config import ServerConfig
from qualification.server.merkle import rebuild_nodes
from tests.conftest import REPO, pin_state, run_vqual
from tests.pg_testlib import Postgres, postgres_fixture
from tests.server_testlib import free_port, serve, token_file, write_one_test_spec
from tests.unit.rollout.test_orchestrator_verdict import MemoryExecutor, Run

postgres = postgres_fixture()


@dataclass
class Site:
    harness: Run  # the state (executor key), the libvirt test driver, the change file
    evidence: Path

    @property
    def state(self) -> Path:
        return self.harness.state


def _site(tmp_path: Path) -> Site:
    harness = Run(tmp_path)
    done = run_vqual("keys", "create", "--name", "Evidence log", "--role", "log", "--service",
                     "--throwaway", state_dir=harness.state)
    assert done.returncode == 0, done.stderr
    pin_state(harness.state)  # the log key added above, signed by the test root
    harness.change("medium")  # tmp/change.yaml
    (tmp_path / "inventory.yml").write_text("all:\n  hosts:\n    h1: {}\n")
    return Site(harness, tmp_path / "evidence")


def _patch(site: Site, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """``vqual patch`` in-process on the test driver (the patch executor a stand-in)."""
    monkeypatch.setattr(launch, "platform_and_executor", lambda *_a, **_k: (
        site.harness.platform, MemoryExecutor({"h1": {"agent": "1.0"}}), None))
    return CliRunner().invoke(main, [
        "patch", "-i", str(site.harness.tmp / "inventory.yml"),
        "--change", str(site.harness.tmp / "change.yaml"), "--state-dir", str(site.state),
        "--evidence-dir", str(site.evidence), "--json", *args])


def _qualify(site: Site, server_url: str, token: Path, *, callback: bool = False
             ) -> dict[str, Any]:
    """``vqual qualify`` with a server configured by the environment, as a pipeline has it:
    the command's ``$VQUAL_SERVER_URL``, or (``callback``) the evidence callback's
    ``$VQUAL_PUSH_ON_SEAL``."""
    spec = write_one_test_spec(site.harness.tmp / "spec.yaml", "server-log")
    args = ("qualify", "--evidence-dir", str(site.evidence), "-i",
            str(REPO / "inventories" / "local"), "-s", str(spec), "-c", "CHG0000015",
            "--limit", "localhost", "--json")
    if callback:
        done = run_vqual(*args, state_dir=site.state, VQUAL_SERVER_TOKEN_FILE=str(token),
                         VQUAL_PUSH_ON_SEAL=server_url)
    else:
        done = run_vqual(*args, state_dir=site.state, VQUAL_SERVER_TOKEN_FILE=str(token),
                         VQUAL_SERVER_URL=server_url)
    assert done.returncode == 0, done.stdout + done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    if request.param == "sqlite":
        yield []
        return
    pg: Postgres = request.getfixturevalue("postgres")
    yield ["--database-url", pg.create_database()]


def test_runs_pushed_at_seal_are_pulled_and_proven_in_the_log_online_and_offline(
    database: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _site(tmp_path)
    served = serve(site.state, *database)
    try:
        pusher = token_file(site.state, "ci-pipeline", "pusher", *database)
        reader = token_file(site.state, "qa-reader", "reader", *database)
        monkeypatch.setenv("VQUAL_SERVER_TOKEN_FILE", str(pusher))
        patched = _patch(site, monkeypatch, "--push", served.url)
        out = json.loads(patched.stdout)
        assert out["push"]["ok"] is True, out["push"]
        assert out["push"]["outcome"]["outcome"] == "stored"
        assert patched.exit_code == out["exit_code"]  # the run's code, pushed or not
        qualified = _qualify(site, served.url, pusher)
        assert qualified["push"] == {
            "server": served.url, "ok": True, "outcome": qualified["push"]["outcome"],
            "message": f"pushed to {served.url}: stored as run {qualified['run_id']}; log "
                       "entries [2]"}
        runs = {"patch": out["run_id"], "qualify": qualified["run_id"]}
        pulled = {}
        for name, run_id in runs.items():
            done = run_vqual("pull", run_id, "--server", served.url, "-o", str(tmp_path / "got"),
                             state_dir=site.state, VQUAL_SERVER_TOKEN_FILE=str(reader))
            assert done.returncode == 0, done.stderr
            (target,) = (tmp_path / "got").glob(f"*/{run_id}")
            assert (target.parent / f"{run_id}.log.json").is_file()
            pulled[name] = target
        for name, target in pulled.items():  # online
            done = run_vqual("verify", str(target), "--log", served.url, state_dir=site.state,
                             VQUAL_SERVER_TOKEN_FILE=str(reader))
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"{target.name} in the log: log VALID at checkpoint size 2" in done.stdout
            assert "seal: included at log index" in done.stdout
        change = site.evidence / "CHG0000015"
        done = run_vqual("verify", str(change), "--log", served.url, "--json",
                         state_dir=site.state, VQUAL_SERVER_TOKEN_FILE=str(reader))
        payload = json.loads(done.stdout)
        assert done.returncode == 0 and payload["log"]["status"] == "valid", done.stdout
        assert payload["warnings"] == []  # its latest run is anchored by the log now
    finally:
        served.stop()
    for name, target in pulled.items():  # offline: the server is gone
        proof = target.parent / f"{target.name}.log.json"
        done = run_vqual("verify", str(target), "--log", str(proof), state_dir=site.state)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "seal: included at log index" in done.stdout
        assert "consistent with the checkpoint of size 2 seen before" in done.stdout


def test_a_rewritten_log_entry_fails_verify_log_as_inconsistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _site(tmp_path)
    served = serve(site.state)
    try:
        pusher = token_file(site.state, "ci-pipeline", "pusher")
        reader = token_file(site.state, "qa-reader", "reader")
        monkeypatch.setenv("VQUAL_SERVER_TOKEN_FILE", str(pusher))
        first = json.loads(_patch(site, monkeypatch, "--push", served.url).stdout)
        bundle = Path(first["bundle"])
        done = run_vqual("verify", str(bundle), "--log", served.url, state_dir=site.state,
                         VQUAL_SERVER_TOKEN_FILE=str(reader))
        assert "log VALID at checkpoint size 1" in done.stdout, done.stdout + done.stderr
        # Someone holding the database rewrites entry 1 and the stored tree state with it...
        engine = db.make_engine(ServerConfig.from_state(site.state).database_url)
        with db.write_tx(engine) as conn:
            conn.execute(db.log_entries.update().where(db.log_entries.c.idx == 1)
                         .values(leaf=b'{"kind":"seal","run_id":"forged"}'))
            rebuild_nodes(conn)
        engine.dispose()
        # ...and the next push has the server sign a checkpoint over the rewrite.
        second = json.loads(_patch(site, monkeypatch, "--push", served.url).stdout)
        assert second["push"]["ok"] is True
        done = run_vqual("verify", str(bundle), "--log", served.url, state_dir=site.state,
                         VQUAL_SERVER_TOKEN_FILE=str(reader))
        assert done.returncode == 1, done.stdout + done.stderr
        assert "log INVALID at checkpoint size 2" in done.stdout
        assert "  log inconsistent since the checkpoint of size 1 seen at " in done.stdout
    finally:
        served.stop()


def test_the_evidence_callback_pushes_at_seal_with_push_on_seal(tmp_path: Path) -> None:
    site = _site(tmp_path)
    served = serve(site.state)
    try:
        pusher = token_file(site.state, "ci-pipeline", "pusher")
        reader = token_file(site.state, "qa-reader", "reader")
        qualified = _qualify(site, served.url, pusher, callback=True)
        assert "push" not in qualified  # the command itself has no server configured
        done = run_vqual("pull", str(qualified["run_id"]), "--server", served.url, "-o",
                         str(tmp_path / "got"), state_dir=site.state,
                         VQUAL_SERVER_TOKEN_FILE=str(reader))
        assert done.returncode == 0, done.stderr
        (pulled,) = (tmp_path / "got").glob(f"*/{qualified['run_id']}")
        done = run_vqual("verify", str(pulled), "--log", served.url, state_dir=site.state,
                         VQUAL_SERVER_TOKEN_FILE=str(reader))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "seal: included at log index 1" in done.stdout
    finally:
        served.stop()


def test_an_unreachable_server_loses_no_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _site(tmp_path)
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("VQUAL_SERVER_TOKEN", "vq_not-used")
    (site.state / "config.yaml").write_text(f"push_server: {nowhere}\n")
    result = _patch(site, monkeypatch)
    assert result.stdout.startswith("{"), (result.output, result.exception)
    out = json.loads(result.stdout)
    bundle = Path(out["bundle"])
    assert result.exit_code == out["exit_code"] and out["seal"]
    assert out["push"]["ok"] is False
    assert out["push"]["message"] == (
        f"push to {nowhere} failed: cannot reach the server at {nowhere}: [Errno 111] "
        f"Connection refused; the run stays sealed at {bundle}; push it later with vqual push")
    text = CliRunner().invoke(main, ["verify", str(bundle), "--state-dir", str(site.state)])
    assert text.exit_code == 0 and f"{bundle}: VALID" in text.output  # sealed, valid, here

    served = serve(site.state)  # the server is back: vqual push takes the run
    try:
        pusher = token_file(site.state, "ci-pipeline", "pusher")
        done = run_vqual("push", str(bundle), "--server", served.url, state_dir=site.state,
                         VQUAL_SERVER_TOKEN_FILE=str(pusher))
        assert done.returncode == 0, done.stderr
        assert f"stored as run {out['run_id']}" in done.stdout
    finally:
        served.stop()
    shutil.rmtree(site.evidence)
