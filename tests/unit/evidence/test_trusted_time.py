"""Trusted time as records (format v2): bundles written for real by the evidence writer with
tokens from real TSAs (the lab's TSA on OpenSSL ``ts``, started here in a temporary
directory on port 0, never the machine-wide lab), verified by vqual and by ``openssl ts
-verify``; swapped, foreign, backdated and dropped tokens are refused, naming the record."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import socket
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from vqual_lab.tsa import TsaProcess, running_tsa

from qualification.cli import main
from qualification.evidence.bundle import BundleWriter, append_signature
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.records import ZERO_DIGEST, format_time
from qualification.evidence.trusted_time import summary
from qualification.evidence.verify import verify_bundle
from qualification.signing import TrustStore
from qualification.signing.dsse import parse_envelope, sign_envelope
from qualification.signing.timestamping import request_token
from qualification.signing.trusted_tsa import TsaEntry
from tests.unit.evidence.evidence_testlib import (
    CHANGE,
    SINCE,
    Keys,
    add_renderings,
    check_result,
    make_keys,
    planned,
    run_start_data,
)


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaProcess]:
    with running_tsa(tmp_path_factory.mktemp("tsa"), address="127.0.0.85", port=0) as proc:
        yield proc


@pytest.fixture(scope="module")
def rogue_tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaProcess]:
    """A TSA with a CA of its own and the same names: not among the store's roots."""
    with running_tsa(tmp_path_factory.mktemp("rogue"), address="127.0.0.86", port=0) as proc:
        yield proc


def entry(proc: TsaProcess, since: datetime = SINCE) -> TsaEntry:
    return TsaEntry("site TSA", proc.url, proc.ca_file.read_text(), since)


def keys_naming(state: Path, tsa: TsaEntry | None) -> Keys:
    """The test people's keys in a saved trust store that names ``tsa``."""
    keys = make_keys(state)
    keys.trust.tsa = tsa
    keys.trust.save()
    keys.trust = TrustStore.load(state / "trust.yaml")
    return keys


def stamped_run(evidence: Path, keys: Keys, tsa: TsaEntry | None, *, sign: bool = True) -> Path:
    """A sealed run written by the evidence writer, its seal (and a review signature)
    stamped by ``tsa``."""
    w = BundleWriter.create(evidence, CHANGE, "20260301T100000Z-a1b2c3", keys.executor,
                            "jane.doe")
    w.tsa = tsa
    w.append("run.start", run_start_data())
    counts = {"pass": 0, "fail": 0, "error": 0, "not-executed": 0, "waived": 0}
    for i, t in enumerate(planned()):
        data = check_result(w, t["test_id"], t["target"], i)
        counts[data["verdict"]] += 1
        w.append("check.result", data)
    add_renderings(w)
    w.seal(counts, len(planned()), len(planned()), "fail" if counts["fail"] else "pass")
    if sign:
        append_signature(w.path, keys.reviewer,
                         {"meaning": "reviewed", "name": "Rita Reviewer", "roles": ["reviewer"]},
                         tsa=tsa)
    return w.path


def lines_of(bundle: Path) -> list[bytes]:
    return (bundle / "records.jsonl").read_bytes().splitlines()


def record(line: bytes) -> dict[str, Any]:
    rec: dict[str, Any] = json.loads(parse_envelope(line).payload)
    return rec


def resign(bundle: Path, keys: Keys, edit: Callable[[list[dict[str, Any]]], None]) -> None:
    """Edit the decoded records, then sign each again with its own signer's key (an attacker
    holding every key), rebuilding seq and prev so every signature and link verifies."""
    signers = {s.keyid: s for s in (keys.executor, keys.reviewer, keys.approver)}
    recs = [record(line) for line in lines_of(bundle)]
    edit(recs)
    out: list[bytes] = []
    prev = ZERO_DIGEST
    for rec in recs:
        rec.update(seq=len(out), prev=prev)
        if rec["kind"] == "timestamp":
            rec["data"].update(stamps=len(out) - 1, digest=prev)
        line = sign_envelope(canonical_bytes(rec), signers[rec["actor"]]).to_bytes()
        out.append(line)
        prev = hashlib.sha256(line).hexdigest()
    (bundle / "records.jsonl").write_bytes(b"".join(line + b"\n" for line in out))


def openssl_verify(token: bytes, digest_hex: str, ca: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    (tmp / "token.der").write_bytes(token)
    return subprocess.run(
        ["openssl", "ts", "-verify", "-token_in", "-in", str(tmp / "token.der"),
         "-digest", digest_hex, "-CAfile", str(ca)],
        capture_output=True, text=True, timeout=30, check=False,
    )


def test_tokens_the_writer_stored_verify_with_vqual_and_with_openssl(
    tsa: TsaProcess, tmp_path: Path
) -> None:
    keys = keys_naming(tmp_path, entry(tsa))
    bundle = stamped_run(tmp_path / "ev", keys, keys.trust.tsa)
    res = verify_bundle(bundle, keys.trust, workers=1)
    assert res.status == "valid", res.problems
    assert res.format_text == "format v2"
    assert [(t["kind"], t["tsa"]) for t in res.trusted_time] == [
        ("run.end", "site TSA"), ("signature", "site TSA")
    ]
    assert summary(res).startswith(f"sealed by {res.trusted_time[0]['time']} per TSA site TSA")
    lines = lines_of(bundle)
    kinds = [record(line)["kind"] for line in lines]
    assert kinds[-4:] == ["run.end", "timestamp", "signature", "timestamp"]
    for i in (len(lines) - 3, len(lines) - 1):
        data = record(lines[i])["data"]
        # The token covers the SHA-256 of the previous line as written, without its newline.
        digest = hashlib.sha256(lines[i - 1]).hexdigest()
        assert data["digest"] == digest and data["stamps"] == i - 1
        done = openssl_verify(base64.b64decode(data["token"]), digest, tsa.ca_file, tmp_path)
        assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    # The seal digest is run.end's line, not its timestamp's.
    assert res.seal_digest == hashlib.sha256(lines[-4]).hexdigest()


def test_a_token_over_another_digest_is_refused_naming_the_record(
    tsa: TsaProcess, tmp_path: Path
) -> None:
    keys = keys_naming(tmp_path, entry(tsa))
    bundle = stamped_run(tmp_path / "ev", keys, keys.trust.tsa)

    def swap(recs: list[dict[str, Any]]) -> None:
        # The signature's token put into run.end's timestamp record (same TSA, real token).
        recs[-3]["data"]["token"] = recs[-1]["data"]["token"]
        recs[-3]["data"]["gen_time"] = recs[-1]["data"]["gen_time"]

    resign(bundle, keys, swap)
    res = verify_bundle(bundle, keys.trust, workers=1)
    n = len(lines_of(bundle))
    assert res.status == "invalid"
    # run.end's token is another line's; the signature's line changed with the chain, so its
    # own token no longer covers it either.
    assert len(res.problems) == 2, res.problems
    assert res.problems[0].startswith(
        f"records.jsonl line {n - 2} (seq {n - 3}): token for seq {n - 4} (run.end): token "
        "covers digest "
    )
    assert res.problems[1].startswith(
        f"records.jsonl line {n} (seq {n - 1}): token for seq {n - 2} (signature): token "
        "covers digest "
    )
    assert summary(res).startswith("no trusted time")


def test_a_token_from_a_tsa_outside_the_stores_roots_is_refused(
    tsa: TsaProcess, rogue_tsa: TsaProcess, tmp_path: Path
) -> None:
    keys = keys_naming(tmp_path, entry(tsa))
    # Written with the rogue TSA's tokens; judged with the store that names the real roots.
    bundle = stamped_run(tmp_path / "ev", keys, entry(rogue_tsa), sign=False)
    res = verify_bundle(bundle, keys.trust, workers=1)
    n = len(lines_of(bundle))
    assert res.status == "invalid"
    assert len(res.problems) == 1
    assert res.problems[0].startswith(
        f"records.jsonl line {n} (seq {n - 1}): token for seq {n - 2} (run.end): "
        "token signer does not chain to the trusted TSA roots"
    )


@pytest.mark.parametrize("shift", [timedelta(days=-1), timedelta(hours=1)],
                         ids=["backdated", "postdated"])
def test_a_token_whose_time_is_outside_the_records_window_is_refused(
    tsa: TsaProcess, tmp_path: Path, shift: timedelta
) -> None:
    """An executor key holder rewrites run.end's time and gets a genuine token for the new
    line: the TSA's time betrays it."""
    keys = keys_naming(tmp_path, entry(tsa))
    bundle = stamped_run(tmp_path / "ev", keys, keys.trust.tsa, sign=False)
    when = datetime.now(UTC) + shift

    def move(recs: list[dict[str, Any]]) -> None:
        recs[-2]["time"] = format_time(when)
        recs[-1]["time"] = format_time(when + timedelta(milliseconds=80))

    resign(bundle, keys, move)
    lines = lines_of(bundle)
    token = request_token(tsa.url, hashlib.sha256(lines[-2]).digest())
    resign(bundle, keys, lambda recs: recs[-1]["data"].update(
        token=base64.b64encode(token.der).decode(), gen_time=format_time(token.gen_time)))
    res = verify_bundle(bundle, keys.trust, workers=1)
    n = len(lines)
    assert res.status == "invalid"
    assert len(res.problems) == 1, res.problems
    assert res.problems[0].startswith(
        f"records.jsonl line {n} (seq {n - 1}): token for seq {n - 2} (run.end): token time "
    )
    assert " is outside " in res.problems[0]


def test_a_dropped_timestamp_record_is_refused_naming_the_record(
    tsa: TsaProcess, tmp_path: Path
) -> None:
    keys = keys_naming(tmp_path, entry(tsa))
    bundle = stamped_run(tmp_path / "ev", keys, keys.trust.tsa)
    lines = lines_of(bundle)
    (bundle / "records.jsonl").write_bytes(b"".join(x + b"\n" for x in lines[:-1]))
    res = verify_bundle(bundle, keys.trust, workers=1)
    n = len(lines) - 1
    assert res.status == "invalid"
    assert res.problems == [
        (f"records.jsonl line {n} (seq {n - 1}): signature has no timestamp record after it, "
         f"although the trust store names TSA site TSA since {format_time(SINCE)[:19]}Z "
         "(dropped?)")
    ]

    # run.end's, dropped by someone holding every key (the chain rebuilt): still refused.
    bundle2 = stamped_run(tmp_path / "ev2", keys, keys.trust.tsa)
    resign(bundle2, keys, lambda recs: recs.pop(-3))
    res = verify_bundle(bundle2, keys.trust, workers=1)
    assert res.status == "invalid"
    assert any("run.end has no timestamp record after it" in p for p in res.problems)


def test_a_run_sealed_before_the_store_named_its_tsa_needs_no_token(
    tsa: TsaProcess, tmp_path: Path
) -> None:
    keys = keys_naming(tmp_path, None)
    bundle = stamped_run(tmp_path / "ev", keys, None)
    later = keys_naming(tmp_path / "later", entry(tsa, datetime.now(UTC) + timedelta(hours=1)))
    later.trust.keys = keys.trust.keys
    res = verify_bundle(bundle, later.trust, workers=1)
    assert res.status == "valid", res.problems
    assert summary(res) == (
        "no trusted time (the trust store named no TSA when the run was sealed)"
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.87", 0))
        port: int = s.getsockname()[1]
    return port


def test_an_unreachable_tsa_warns_once_and_the_run_is_sealed_without_trusted_time(
    tsa: TsaProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = TsaEntry("site TSA", f"http://127.0.0.87:{_closed_port()}/",
                    tsa.ca_file.read_text(), SINCE)
    keys = keys_naming(tmp_path, down)
    with caplog.at_level(logging.WARNING):
        bundle = stamped_run(tmp_path / "ev", keys, down, sign=False)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "no trusted time: TSA site TSA gave no token" in warned[0]
    res = verify_bundle(bundle, keys.trust, workers=1)
    assert res.status == "valid", res.problems
    assert res.seal_digest is not None and res.trusted_time == []
    assert summary(res).startswith("no trusted time (TSA site TSA gave no token: http://127.0.0.87:")
    assert "TSA unreachable" in summary(res)
    assert any("no trusted time for seq" in w for w in res.warnings)


def test_a_run_without_tsa_says_no_trusted_time_in_verify_text_and_json(
    tmp_path: Path
) -> None:
    keys = keys_naming(tmp_path, None)
    bundle = stamped_run(tmp_path / "ev", keys, None)
    res = verify_bundle(bundle, keys.trust, workers=1)
    assert res.status == "valid" and res.trusted_time == []
    runner = CliRunner()
    # the store here is unpinned (this test is about trusted time, not the trust root)
    text = runner.invoke(main, ["verify", str(bundle), "--state-dir", str(tmp_path),
                                "--legacy-trust"])
    assert text.exit_code == 0, text.output
    assert ("  trusted time: no trusted time (the trust store named no TSA when the run was "
            "sealed)") in text.output.splitlines()
    assert "  format v2" in text.output.splitlines()
    out = runner.invoke(main, ["verify", "--json", str(bundle), "--state-dir", str(tmp_path),
                               "--legacy-trust"])
    payload = json.loads(out.output)
    assert payload["trusted_time"]["summary"].startswith("no trusted time")
    assert payload["trusted_time"]["tokens"] == [] and payload["format"] == 2


def test_the_timestamp_record_must_be_signed_by_the_stamped_records_signer(
    tsa: TsaProcess, tmp_path: Path
) -> None:
    keys = keys_naming(tmp_path, entry(tsa))
    bundle = stamped_run(tmp_path / "ev", keys, keys.trust.tsa)
    resign(bundle, keys, lambda recs: recs[-1].update(actor=keys.executor.keyid))
    res = verify_bundle(bundle, keys.trust, workers=1)
    n = len(lines_of(bundle))
    assert f"records.jsonl line {n} (seq {n - 1}): timestamp is signed by another key than " \
           f"seq {n - 2}" in res.problems


def test_legacy_signer_cannot_smuggle_timestamp_records_into_v1(tmp_path: Path) -> None:
    """A v1 bundle has no timestamp records; one appended is not part of its format."""
    keys = keys_naming(tmp_path, None)
    bundle = stamped_run(tmp_path / "ev", keys, None, sign=False)

    def to_v1(recs: list[dict[str, Any]]) -> None:
        for rec in recs:
            rec["v"] = 1
        recs.append({**recs[-1], "kind": "timestamp", "data": {
            "stamps": 0, "digest": "", "tsa": "x", "token": None, "gen_time": None,
            "error": "none"}})

    resign(bundle, keys, to_v1)
    res = verify_bundle(bundle, keys.trust, workers=1)
    assert res.format_text == "format v1 (legacy)"
    assert any("timestamp records are not part of format v1" in p for p in res.problems)


def test_a_signature_on_a_v1_bundle_stays_v1(tmp_path: Path) -> None:
    keys = keys_naming(tmp_path, None)
    bundle = stamped_run(tmp_path / "ev", keys, None, sign=False)
    resign(bundle, keys, lambda recs: [r.update(v=1) for r in recs])
    append_signature(bundle, keys.reviewer,
                     {"meaning": "reviewed", "name": "Rita Reviewer", "roles": ["reviewer"]})
    assert record(lines_of(bundle)[-1])["v"] == 1
    res = verify_bundle(bundle, keys.trust, workers=1)
    assert res.status == "valid", res.problems
    assert res.format_text == "format v1 (legacy)"
    assert summary(res) == "no trusted time (format v1 has no timestamp records)"

