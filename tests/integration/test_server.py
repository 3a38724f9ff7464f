"""The evidence server as it runs: ``vqual serve`` (uvicorn) on SQLite and on the tests' own
PostgreSQL, ``vqual push``, ``vqual pull``, ``vqual verify`` and ``vqual log check`` as
commands; a real qualification run (the embedded default) and generated runs; two uvicorn
workers behind nginx, pushed to at the same time, make one consistent log."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, VENV_BIN, run_vqual, vqual_env
from tests.pg_testlib import Postgres, postgres_fixture
from tests.server_testlib import NGINX, Served, nginx, serve, token_file, write_one_test_spec
from tests.trustroot_testlib import pin_state
from tests.unit.evidence.evidence_testlib import CHANGE, make_keys
from tests.unit.evidence.test_verify_agreement import real_run

postgres = postgres_fixture()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory: an executor and a log service key, people's keys, all trusted; and
    a real qualification run of the embedded default in ./evidence."""
    base = tmp_path_factory.mktemp("site")
    state = base / "state"
    for name, role in (("CI Pipeline", "executor"), ("Evidence log", "log")):
        done = run_vqual("keys", "create", "--name", name, "--role", role, "--service",
                         "--throwaway", state_dir=state)
        assert done.returncode == 0, done.stderr
    spec = write_one_test_spec(base / "spec.yaml", "server-push")
    done = run_vqual("qualify", "--evidence-dir", str(base / "evidence"), "-i",
                     str(REPO / "inventories" / "local"), "-s", str(spec), "-c", "CHG0000015",
                     "--limit", "localhost", "--json", state_dir=state)
    assert done.returncode == 0, done.stdout + done.stderr
    return base


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, site: Path, tmp_path: Path) -> Iterator[tuple[Served, list[str]]]:
    state = tmp_path / "state"
    shutil.copytree(site / "state", state)
    db_args: list[str] = []
    if request.param == "postgresql":
        pg: Postgres = request.getfixturevalue("postgres")
        db_args = ["--database-url", pg.create_database()]
    served = serve(state, *db_args)
    try:
        yield served, db_args
    finally:
        served.stop()


def _vqual(state: Path, *args: str, token: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = {"VQUAL_SERVER_TOKEN_FILE": str(token)} if token else {}
    return run_vqual(*args, state_dir=state, **extra)


def test_a_real_run_is_pushed_pulled_verified_and_proven_in_the_log(
    server: tuple[Served, list[str]], site: Path, tmp_path: Path
) -> None:
    served, db_args = server
    state = tmp_path / "state"
    pusher = token_file(state, "ci-pipeline", "pusher", *db_args)
    reader = token_file(state, "qa-reader", "reader", *db_args)
    change = site / "evidence" / "CHG0000015"
    (run,) = [p for p in change.iterdir() if p.is_dir()]

    done = _vqual(state, "push", str(change), "--server", served.url, token=pusher)
    assert done.returncode == 0, done.stderr
    assert f"stored as run {run.name}" in done.stdout and "log entries [1]" in done.stdout
    assert pusher.read_text().strip() not in done.stdout + done.stderr + served.log.read_text()

    done = _vqual(state, "pull", run.name, "--server", served.url, "-o", str(tmp_path / "got"),
                  token=reader)
    assert done.returncode == 0, done.stderr
    pulled = tmp_path / "got" / "CHG0000015" / run.name
    assert _vqual(state, "verify", str(pulled)).returncode == 0
    done = _vqual(state, "log", "check", str(pulled), "--server", served.url, token=reader)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "log VALID at checkpoint size 1" in done.stdout
    assert "seal: included at log index 1" in done.stdout


def test_refusals_are_one_line_and_audited(
    server: tuple[Served, list[str]], site: Path, tmp_path: Path
) -> None:
    served, db_args = server
    state = tmp_path / "state"
    pusher = token_file(state, "ci-pipeline", "pusher", *db_args)
    change = site / "evidence" / "CHG0000015"
    (run,) = [p for p in change.iterdir() if p.is_dir()]
    tampered = tmp_path / "tampered" / run.name
    shutil.copytree(run, tampered)
    (tampered / "spec.yaml").write_text("apiVersion: vqual/v1\n")

    done = _vqual(state, "push", str(tampered), "--server", served.url, token=pusher)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("vqual: server refused (422): does not verify (invalid)")

    done = run_vqual("push", str(run), "--server", served.url, state_dir=state)
    assert done.returncode == 2
    assert done.stderr == "vqual: no server token: set VQUAL_SERVER_TOKEN or use --token-file\n"
    done = run_vqual("push", str(run), "--server", served.url, state_dir=state,
                     VQUAL_SERVER_TOKEN="vq_not-a-token")
    assert (done.returncode, done.stderr) == (
        2, "vqual: server refused (401): authentication required: a service-account token\n")

    audit = run_vqual("serve", "audit", *db_args, state_dir=state)
    rows = [json.loads(line) for line in audit.stdout.splitlines()]
    assert {(r["who"], r["action"], r["outcome"]) for r in rows} >= {
        ("ci-pipeline", "push", "refused"), ("anonymous", "push", "refused")}


def test_two_workers_behind_nginx_pushing_at_once_make_one_consistent_log(
    request: pytest.FixtureRequest, site: Path, tmp_path: Path
) -> None:
    pg: Postgres = request.getfixturevalue("postgres")
    url = pg.create_database()
    state = tmp_path / "state"
    shutil.copytree(site / "state", state)
    keys = make_keys(tmp_path / "people")  # generated runs, signed by a second executor
    (state / "trust.yaml").write_text(_merged_trust(state, keys.trust.path))
    pin_state(state)  # the second executor is in force before its runs are written
    changes = []
    for worker in range(2):
        evidence = tmp_path / f"evidence{worker}"
        for i in range(6):
            real_run(evidence, keys, f"2026030{worker + 1}T1000{i:02d}Z-w{worker}r{i:03d}")
        changes.append(evidence / CHANGE)
    if not NGINX.is_file():
        pytest.skip(f"nginx is not installed ({NGINX}); scripts/setup installs it")
    upstream = serve(state, "--workers", "2", "--database-url", url)
    try:
        served = nginx(tmp_path / "nginx", upstream.url)
    except RuntimeError:
        upstream.stop()
        raise
    try:
        pusher = token_file(state, "ci-pipeline", "pusher", "--database-url", url)
        reader = token_file(state, "qa-reader", "reader", "--database-url", url)
        env = vqual_env(state, VQUAL_SERVER_TOKEN_FILE=str(pusher))
        procs = [subprocess.Popen([str(VENV_BIN / "vqual"), "push", str(c), "--server",
                                   served.url], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for c in changes]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        for change in changes:
            for run in sorted(change.iterdir()):
                done = _vqual(state, "log", "check", str(run), "--server", served.url,
                              token=reader)
                assert done.returncode == 0, done.stdout
                assert "log VALID at checkpoint size 12" in done.stdout
        # Every push went through the proxy.
        pushes = [line for line in (tmp_path / "nginx" / "access.log").read_text().splitlines()
                  if '"POST /api/v1/runs HTTP' in line]
        assert len(pushes) == 12
    finally:
        served.stop()
        upstream.stop()


def _merged_trust(state: Path, people: Path) -> str:
    """The site's trust store plus the generated runs' people (an unsigned store)."""
    ours = yaml.safe_load((state / "trust.yaml").read_text())
    theirs = yaml.safe_load(people.read_text())
    ours["keys"] = ours["keys"] + theirs["keys"]
    return yaml.safe_dump(ours, sort_keys=False)


def _with_passphrase(state: Path, *args: str, token: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "vqual"), *args, "--passphrase-fd", "0"],
                          input="correct horse battery\n", text=True, capture_output=True,
                          env=vqual_env(state, VQUAL_SERVER_TOKEN_FILE=str(token)), timeout=300,
                          check=False)


def test_a_wrong_push_is_voided_by_an_approvers_signature_and_still_pulled(
    site: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    shutil.copytree(site / "state", state)
    for name, role in (("Anna Approver", "approver"), ("Rita Reviewer", "reviewer")):
        done = subprocess.run(
            [str(VENV_BIN / "vqual"), "keys", "create", "--name", name, "--role", role,
             "--out", str(tmp_path / f"{role}.pem"), "--passphrase-fd", "0"],
            input="correct horse battery\n", text=True, capture_output=True,
            env=vqual_env(state), timeout=120, check=False)
        assert done.returncode == 0, done.stderr
    served = serve(state)
    try:
        pusher = token_file(state, "ci-pipeline", "pusher")
        reader = token_file(state, "qa-reader", "reader")
        (run,) = [p for p in (site / "evidence" / "CHG0000015").iterdir() if p.is_dir()]
        assert _vqual(state, "push", str(run), "--server", served.url, token=pusher).returncode == 0

        done = _with_passphrase(state, "void", run.name, "--reason", "pushed by mistake",
                                "--server", served.url, "--key", str(tmp_path / "reviewer.pem"),
                                token=pusher)
        assert done.returncode == 2
        assert "does not hold the approver role" in done.stderr
        done = _with_passphrase(state, "void", run.name, "--reason", "pushed by mistake",
                                "--server", served.url, "--key", str(tmp_path / "approver.pem"),
                                token=pusher)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"voided run {run.name} by Anna Approver; log entry 2\n"

        done = _vqual(state, "pull", run.name, "--server", served.url, "-o",
                      str(tmp_path / "got"), token=reader)
        assert done.returncode == 0
        assert f"warning: run {run.name} was voided by Anna Approver" in done.stderr
        audit = [json.loads(line) for line in
                 run_vqual("serve", "audit", state_dir=state).stdout.splitlines()]
        assert ("ci-pipeline", "void", "ok") in {(r["who"], r["action"], r["outcome"])
                                                 for r in audit}
    finally:
        served.stop()
