"""Push, store, pull through the HTTP API (Starlette's TestClient over the real app), against
SQLite and the tests' own PostgreSQL: what verifies is stored and pulled back whole; what does
not, or what would replace a held run, is refused with the reason and audited."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from qualification.evidence.bundle import append_signature
from qualification.evidence.verify import verify_bundle
from qualification.server.app import build_app
from qualification.server.files import pack, unpack
from qualification.server.service import EvidenceServer
from qualification.signing.keys import Ed25519Signer
from tests.unit.evidence.evidence_testlib import CHANGE, build_bundle
from tests.unit.evidence.tamper_testlib import rewrite
from tests.unit.server.server_testlib import ServerState, new_run, start_server

RUN = "20260301T100000Z-aaaaaa"
TAR = {"Content-Type": "application/x-tar"}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def served(
    st: ServerState, db_url: str | None
) -> Iterator[tuple[EvidenceServer, dict[str, str], TestClient]]:
    server, tokens = start_server(st, db_url)
    yield server, tokens, TestClient(build_app(server))
    server.close()


def _push(client: TestClient, token: str, bundle: Path) -> Any:
    return client.post("/api/v1/runs", content=pack(bundle), headers={**TAR, **_auth(token)})


def _audit(server: EvidenceServer) -> list[tuple[str, str, str]]:
    return [(r["who"], r["action"], r["outcome"]) for r in server.audit_rows()]


def test_a_verified_bundle_is_stored_logged_and_pulled_back_whole(
    st: ServerState, served: Any, tmp_path: Path
) -> None:
    server, tokens, client = served
    bundle = new_run(st, RUN)
    answer = _push(client, tokens["pusher"], bundle)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["outcome"], body["run_id"], body["log_indexes"]) == ("stored", RUN, [1])
    seal = body["seal"]
    assert _push(client, tokens["pusher"], bundle).json()["outcome"] == "unchanged"

    for ref in (RUN, seal):
        got = client.get(f"/api/v1/runs/{ref}/bundle", headers=_auth(tokens["reader"]))
        assert got.status_code == 200
        out = tmp_path / f"pulled-{ref[:8]}"
        unpack(got.content, out, max_bytes=1 << 30)
        assert (out / "records.jsonl").read_bytes() == (bundle / "records.jsonl").read_bytes()
        assert verify_bundle(out, st.keys.trust, workers=1).status == "valid"
    assert ("acct-reader", "pull", "ok") in _audit(server)


def test_signatures_appended_after_the_seal_are_taken_on_re_push(
    st: ServerState, served: Any, tmp_path: Path
) -> None:
    _server, tokens, client = served
    bundle = new_run(st, RUN)
    assert _push(client, tokens["pusher"], bundle).status_code == 201
    append_signature(bundle, st.keys.reviewer, {"meaning": "reviewed", "name": "Rita Reviewer",
                                                "roles": ["reviewer"], "comment": "ok"})
    answer = _push(client, tokens["pusher"], bundle)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["outcome"], answer.json()["appended"]) == ("appended", 1)
    assert answer.json()["log_indexes"] == [2]

    got = client.get(f"/api/v1/runs/{RUN}/bundle", headers=_auth(tokens["reader"]))
    out = tmp_path / "pulled"
    unpack(got.content, out, max_bytes=1 << 30)
    result = verify_bundle(out, st.keys.trust, workers=1)
    assert result.status == "valid"
    assert [s["name"] for s in result.signatures] == ["Rita Reviewer"]


def test_a_tampered_bundle_is_refused_saying_why(st: ServerState, served: Any) -> None:
    server, tokens, client = served
    bundle = new_run(st, RUN)
    (bundle / "junit.xml").write_bytes(b"<testsuites/>\n")
    answer = _push(client, tokens["pusher"], bundle)
    assert answer.status_code == 422
    assert "does not verify (invalid)" in answer.json()["error"]
    assert "junit.xml" in answer.json()["error"]
    assert ("acct-pusher", "push", "refused") in _audit(server)
    assert client.get(f"/api/v1/runs/{RUN}", headers=_auth(tokens["reader"])).status_code == 404


def test_a_result_the_run_did_not_plan_is_refused_naming_the_test(
    st: ServerState, served: Any
) -> None:
    # the push verifies with `vqual verify`'s code: the plan decides which results belong
    server, tokens, client = served
    build_bundle(st.evidence, st.keys, RUN, unplanned=(("EXTRA-01", "kvm01.lab"),))
    answer = _push(client, tokens["pusher"], st.evidence / CHANGE / RUN)
    assert answer.status_code == 422
    assert "check.result for test 'EXTRA-01', which run.start did not plan" in (
        answer.json()["error"])
    assert ("acct-pusher", "push", "refused") in _audit(server)


def test_a_bundle_signed_again_with_an_untrusted_key_is_refused(
    st: ServerState, served: Any
) -> None:
    server, tokens, client = served
    bundle = new_run(st, RUN)
    rewrite(bundle, Ed25519Signer.generate(), lambda rec: rec)
    answer = _push(client, tokens["pusher"], bundle)
    assert answer.status_code == 422
    assert "does not verify" in answer.json()["error"]
    assert ("acct-pusher", "push", "refused") in _audit(server)


def test_another_bundle_under_a_held_run_id_is_refused(
    st: ServerState, served: Any, tmp_path: Path
) -> None:
    server, tokens, client = served
    held = new_run(st, RUN)
    held_seal = _push(client, tokens["pusher"], held).json()["seal"]
    st.evidence = tmp_path / "other-evidence"
    other = new_run(st, RUN)  # same run id, another run (other times, other seal)
    answer = _push(client, tokens["pusher"], other)
    assert answer.status_code == 409
    assert f"run {RUN} is held with seal" in answer.json()["error"]
    refused = [r for r in server.audit_rows() if r["outcome"] == "refused"]
    assert refused and "cannot replace it" in refused[0]["detail"]
    pulled = client.get(f"/api/v1/runs/{RUN}/bundle", headers=_auth(tokens["reader"]))
    assert pulled.headers["X-Vqual-Seal"] == held_seal  # the held run is untouched


def test_a_re_push_that_forks_the_held_records_is_refused(
    st: ServerState, served: Any, tmp_path: Path
) -> None:
    _server, tokens, client = served
    bundle = new_run(st, RUN)
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    append_signature(bundle, st.keys.reviewer, {"meaning": "reviewed", "name": "Rita Reviewer",
                                                "roles": ["reviewer"], "comment": "first"})
    assert _push(client, tokens["pusher"], bundle).status_code == 201
    append_signature(copy, st.keys.reviewer, {"meaning": "reviewed", "name": "Rita Reviewer",
                                              "roles": ["reviewer"], "comment": "second"})
    answer = _push(client, tokens["pusher"], copy)
    assert answer.status_code == 409
    assert "differs from the held records at line" in answer.json()["error"]


def test_pushing_and_pulling_need_a_token_of_the_right_role(
    st: ServerState, served: Any
) -> None:
    server, tokens, client = served
    bundle = new_run(st, RUN)
    assert client.post("/api/v1/runs", content=pack(bundle), headers=TAR).status_code == 401
    bad = _auth("vq_" + "x" * 43)
    assert client.post("/api/v1/runs", content=pack(bundle), headers={**TAR, **bad}).status_code == 401
    assert _push(client, tokens["reader"], bundle).status_code == 403
    assert client.get(f"/api/v1/runs/{RUN}/bundle").status_code == 401
    assert client.get("/api/v1/audit", headers=_auth(tokens["pusher"])).status_code == 403
    assert client.get("/api/v1/health").json() == {"status": "ok"}
    rows = _audit(server)
    assert ("anonymous", "push", "refused") in rows
    assert ("acct-reader", "push", "refused") in rows
    assert ("anonymous", "pull", "refused") in rows
    assert _push(client, tokens["admin"], bundle).status_code == 201
    assert client.get("/api/v1/audit", headers=_auth(tokens["admin"])).status_code == 200


def _tar(members: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize("body, why", [
    (_tar({"records.jsonl": b"x\n", "../escape.txt": b"x"}), "is not a file of a bundle"),
    (_tar({"records.jsonl": b"x\n", "data/../../escape.txt": b"x"}), "is not a file of a bundle"),
    (_tar({"records.jsonl": b"x\n", "/etc/cron.d/x": b"x"}), "is not a file of a bundle"),
    (_tar({"records.jsonl": b"x\n"}, symlink="data/link"), "is not a regular file"),
    (_tar({"records.jsonl": b"x\n", "notes.txt": b"x"}), "is not a file of a bundle"),
    (b"not a tar at all", "not an uncompressed tar"),
])
def test_archive_members_cannot_reach_outside_the_store(
    st: ServerState, served: Any, body: bytes, why: str
) -> None:
    _server, tokens, client = served
    answer = client.post("/api/v1/runs", content=body, headers={**TAR, **_auth(tokens["pusher"])})
    assert answer.status_code == 422
    assert why in answer.json()["error"]
    assert not (st.state / "server" / "escape.txt").exists()
    assert not list((st.state / "server" / "store" / ".incoming").iterdir())


@pytest.mark.parametrize("path", [
    "/api/v1/runs/../../../etc/passwd",
    "/api/v1/runs/..%2F..%2F..%2Fetc%2Fpasswd/bundle",
    "/api/v1/runs/%2E%2E/bundle",
    "/api/v1/runs/..%5C..%5Cetc/bundle",
    "/api/v1/runs/.hidden/bundle",
])
def test_run_urls_cannot_reach_outside_the_store(
    st: ServerState, served: Any, path: str
) -> None:
    _server, tokens, client = served
    assert _push(client, tokens["pusher"], new_run(st, RUN)).status_code == 201
    answer = client.get(path, headers=_auth(tokens["reader"]))
    assert answer.status_code == 404
    assert b"root:" not in answer.content


def test_a_body_over_the_limit_is_refused_and_audited(st: ServerState, db_url: str | None) -> None:
    from dataclasses import replace

    server, tokens = start_server(st, db_url)
    server.config = replace(server.config, max_body=1000)
    client = TestClient(build_app(server))
    answer = _push(client, tokens["pusher"], new_run(st, RUN))
    assert answer.status_code == 413
    assert ("acct-pusher", "push", "refused") in _audit(server)
    server.close()
