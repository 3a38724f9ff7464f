"""The lab TSA component (``vqual_lab.tsa``) in a lab directory of its own, on an address the
machine-wide lab does not use: its PKI, its HTTP front, up/status/down by PID and its
inventory variables. Not marked ``lab``: it needs only openssl."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from rfc3161_client import PKIStatus, decode_timestamp_response
from vqual_lab import manager
from vqual_lab.component import LabContext, processes_under, same_process
from vqual_lab.tsa import MAX_QUERY, QUERY_TYPE, TsaComponent, ensure_pki

from qualification.errors import BadInputError
from qualification.signing.timestamping import encode_query, request_token

ADDRESS = "127.0.0.85"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((ADDRESS, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def ctx(tmp_path: Path) -> LabContext:
    return LabContext(lab_dir=tmp_path, run_dir=tmp_path / "run", repo_root=None,
                      log=lambda _msg: None)


@pytest.fixture
def component(ctx: LabContext) -> Iterator[TsaComponent]:
    comp = TsaComponent(address=ADDRESS, port=_free_port())
    try:
        yield comp
    finally:
        comp.down(ctx)


def _post(url: str, body: bytes, content_type: str) -> tuple[int, str, bytes]:
    host, _, port = url.split("://")[1].strip("/").rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", "/", body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def test_up_status_inventory_down_by_pid(ctx: LabContext, component: TsaComponent) -> None:
    assert component.status(ctx).state == "stopped"
    st = component.up(ctx)
    assert st.state == "running", st
    rec = ctx.state()["tsa"]
    assert same_process(rec["pid"], rec["start"]) and rec["url"] == component.url
    assert component.status(ctx).state == "running"
    assert component.up(ctx).detail.startswith("already running")  # idempotent
    assert ctx.state()["tsa"]["pid"] == rec["pid"]
    # It stamps: a token over a digest, from the URL the inventory names.
    inv = manager.build_inventory([component.inventory(ctx)])
    all_vars = inv["all"]["vars"]
    assert all_vars["vqual_tsa_url"] == component.url
    assert all_vars["vqual_tsa_ca_file"] == str(ctx.lab_dir / "tsa" / "pki" / "ca.crt")
    token = request_token(all_vars["vqual_tsa_url"], hashlib.sha256(b"x").digest())
    assert token.der
    ca = Path(all_vars["vqual_tsa_ca_file"]).read_bytes()

    st = component.down(ctx)
    assert st.state == "stopped", st
    assert not same_process(rec["pid"], rec["start"])
    assert "tsa" not in ctx.state()
    assert not processes_under([ctx.run_dir / "tsa", ctx.lab_dir / "tsa"])
    assert component.status(ctx).state == "stopped"
    # The CA is kept across down and up: what a trust store names stays valid.
    assert component.up(ctx).state == "running"
    assert Path(all_vars["vqual_tsa_ca_file"]).read_bytes() == ca


def test_down_from_another_process_instance(ctx: LabContext, component: TsaComponent) -> None:
    assert component.up(ctx).state == "running"
    rec = ctx.state()["tsa"]
    # A fresh instance (as `vqual-lab down` in another process has) stops it by the recorded PID.
    other = TsaComponent(address=component.address, port=component.port)
    assert other.down(ctx).state == "stopped"
    assert not same_process(rec["pid"], rec["start"])


def test_http_front_answers_only_timestamp_queries(ctx: LabContext, component: TsaComponent) -> None:
    assert component.up(ctx).state == "running"
    query = encode_query(hashlib.sha256(b"x").digest(), 7)
    status, ctype, body = _post(component.url, query, QUERY_TYPE)
    assert (status, ctype) == (200, "application/timestamp-reply") and body
    assert _post(component.url, query, "application/octet-stream")[0] == 415
    assert _post(component.url, b"\x30" * (MAX_QUERY + 1), QUERY_TYPE)[0] == 413
    # Not a query: OpenSSL answers in the protocol, rejected with badDataFormat.
    status, _, body = _post(component.url, b"not a query", QUERY_TYPE)
    assert status == 200 and decode_timestamp_response(body).status == PKIStatus.REJECTION


def test_pki_is_a_root_ca_and_a_time_stamping_certificate(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", name="test TSA")
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    tsa = x509.load_pem_x509_certificate(pki.tsa_cert.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not tsa.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [x509.ExtendedKeyUsageOID.TIME_STAMPING]
    tsa.verify_directly_issued_by(ca)
    assert tsa.subject.rfc4514_string() == "CN=test TSA,O=vqual lab"
    for key in (pki.ca_key, pki.tsa_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    # Made once: a second call keeps the CA.
    assert ensure_pki(tmp_path / "pki").ca_cert.read_bytes() == pki.ca_cert.read_bytes()


def test_only_loopback_addresses() -> None:
    with pytest.raises(BadInputError, match="not in 127.0.0.0/8"):
        TsaComponent(address="10.0.0.1")


def test_address_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VQUAL_LAB_TSA", "127.0.0.191:28318")
    assert TsaComponent().url == "http://127.0.0.191:28318/"
    monkeypatch.setenv("VQUAL_LAB_TSA", "127.0.0.191:x")
    with pytest.raises(BadInputError, match="VQUAL_LAB_TSA"):
        TsaComponent()


def test_the_lab_lists_it_and_its_inventory_vars_reach_all_hosts() -> None:
    assert "tsa" in manager.names()
    fragment = {"groups": {"g": {"hosts": {"h": {}}}}}
    inv = manager.build_inventory([fragment, {"groups": {}, "vars": {"vqual_tsa_url": "u"}}])
    assert inv["all"]["vars"] == {"vqual_tsa_url": "u"} and "g" in inv["all"]["children"]
    # Without such vars the inventory is as before.
    assert manager.build_inventory([fragment]) == {"all": {"children": {"g": {"hosts": {"h": {}}}}}}
    assert json.dumps(manager.build_inventory([]))  # still serialisable when empty
