"""Trusted time (qualification.signing.timestamping) against real TSAs: the lab's TSA on
OpenSSL ``ts`` with its own CA, started here in a temporary directory (not the machine-wide
lab), and a second one with a CA of its own. ``openssl ts -verify`` checks the same tokens
independently. Only replies no real TSA would send (granted with modifications, garbage) come
from a small canned HTTP server, named ``_CannedReplies`` below."""

from __future__ import annotations

import hashlib
import http.server
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from vqual_lab.tsa import TsaProcess, ensure_pki, running_tsa, start_tsa, stop_tsa

from qualification.errors import (
    EXIT_FAILED,
    EXIT_PLATFORM,
    BadInputError,
)
from qualification.signing.timestamping import (
    REPLY_TYPE,
    TimestampError,
    TimestampInvalid,
    encode_query,
    load_roots,
    request_token,
    verify_token,
)

DIGEST = hashlib.sha256(b"run.end line of a sealed run").digest()
OTHER = hashlib.sha256(b"another line").digest()


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaProcess]:
    with running_tsa(tmp_path_factory.mktemp("tsa"), address="127.0.0.81", port=0) as proc:
        yield proc


@pytest.fixture(scope="module")
def rogue_tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaProcess]:
    """A TSA with its own CA, the same subject names: not among the trusted roots."""
    with running_tsa(tmp_path_factory.mktemp("rogue"), address="127.0.0.82", port=0) as proc:
        yield proc


def _window(minutes: float = 5) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(minutes=minutes), now + timedelta(minutes=minutes)


def _openssl_verify(token: bytes, digest: bytes, ca: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    (tmp / "token.der").write_bytes(token)
    return subprocess.run(
        ["openssl", "ts", "-verify", "-token_in", "-in", str(tmp / "token.der"),
         "-digest", digest.hex(), "-CAfile", str(ca)],
        capture_output=True, text=True, timeout=30, check=False,
    )


def test_token_verifies_with_vqual_and_with_openssl(tsa: TsaProcess, tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    token = request_token(tsa.url, DIGEST)
    after = datetime.now(UTC)
    assert token.digest == DIGEST and token.url == tsa.url
    verified = verify_token(token.der, DIGEST, tsa.ca_file.read_bytes(),
                            not_before=before, not_after=after)
    assert before <= verified.time <= after
    assert verified.tsa_subject == "CN=vqual lab TSA,O=vqual lab"
    assert verified.policy.startswith("2.25.") and verified.serial > 0
    done = _openssl_verify(token.der, DIGEST, tsa.ca_file, tmp_path)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr


def test_query_is_a_timestamp_request_openssl_reads(tmp_path: Path) -> None:
    (tmp_path / "q.tsq").write_bytes(encode_query(DIGEST, 0x85848D402A7C4E31))
    done = subprocess.run(["openssl", "ts", "-query", "-in", str(tmp_path / "q.tsq"), "-text"],
                          capture_output=True, text=True, timeout=30, check=True)
    text = " ".join(done.stdout.split())
    assert "Version: 1" in text and "Hash Algorithm: sha256" in text
    assert "Nonce: 0x85848D402A7C4E31" in text and "Certificate required: yes" in text
    assert DIGEST[:8].hex(" ") in text


def test_each_request_has_a_fresh_nonce(tsa: TsaProcess) -> None:
    first, second = request_token(tsa.url, DIGEST), request_token(tsa.url, DIGEST)
    assert first.nonce != second.nonce and first.der != second.der


def test_token_for_another_digest_is_refused(tsa: TsaProcess, tmp_path: Path) -> None:
    token = request_token(tsa.url, OTHER)
    lo, hi = _window()
    with pytest.raises(TimestampInvalid, match="token covers digest") as err:
        verify_token(token.der, DIGEST, tsa.ca_file.read_bytes(), not_before=lo, not_after=hi)
    assert err.value.exit_code == EXIT_FAILED
    assert OTHER.hex()[:16] in str(err.value) and DIGEST.hex()[:16] in str(err.value)
    assert _openssl_verify(token.der, DIGEST, tsa.ca_file, tmp_path).returncode != 0


def test_tsa_outside_the_trusted_roots_is_refused(
    tsa: TsaProcess, rogue_tsa: TsaProcess, tmp_path: Path
) -> None:
    token = request_token(rogue_tsa.url, DIGEST)
    lo, hi = _window()
    # Its own CA vouches for it ...
    verify_token(token.der, DIGEST, rogue_tsa.ca_file.read_bytes(), not_before=lo, not_after=hi)
    # ... the trusted one does not, although every name in the chain is the same.
    with pytest.raises(TimestampInvalid, match=r"does not chain to the trusted TSA roots \(.*"
                       r"unable to get local issuer certificate\)$"):
        verify_token(token.der, DIGEST, tsa.ca_file.read_bytes(), not_before=lo, not_after=hi)
    assert _openssl_verify(token.der, DIGEST, tsa.ca_file, tmp_path).returncode != 0
    # Trusting both roots accepts either TSA.
    both = load_roots(tsa.ca_file.read_bytes() + rogue_tsa.ca_file.read_bytes())
    assert len(both) == 2
    verify_token(token.der, DIGEST, both, not_before=lo, not_after=hi)


@pytest.mark.parametrize("shift", [timedelta(hours=-2), timedelta(hours=2)])
def test_time_outside_the_window_is_refused(tsa: TsaProcess, shift: timedelta) -> None:
    token = request_token(tsa.url, DIGEST)
    lo, hi = _window(minutes=30)
    with pytest.raises(TimestampInvalid, match="token time .* is outside") as err:
        verify_token(token.der, DIGEST, tsa.ca_file.read_bytes(),
                     not_before=lo + shift, not_after=hi + shift)
    assert token.gen_time.isoformat() in str(err.value)


def test_window_widens_only_by_the_stated_accuracy(tsa: TsaProcess) -> None:
    token = request_token(tsa.url, DIGEST)
    ca = tsa.ca_file.read_bytes()
    t = token.gen_time  # the lab TSA states an accuracy of one second
    verify_token(token.der, DIGEST, ca, not_before=t + timedelta(seconds=1), not_after=t + timedelta(seconds=2))
    with pytest.raises(TimestampInvalid, match="outside"):
        verify_token(token.der, DIGEST, ca, not_before=t + timedelta(seconds=1.5),
                     not_after=t + timedelta(seconds=3))


def _openssl(tmp: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=tmp, capture_output=True, timeout=60, check=True)


def _forged_signer(tsa: TsaProcess, ext: str, tmp: Path) -> None:
    """A signer certificate the trusted CA issues with ``ext``: what a TSA that keeps its usage
    wrong would sign with (OpenSSL's own ``ts -reply`` refuses such a signer, so no real TSA
    here can). Made before the token is requested: its validity starts at the second it is
    issued, and a token stamped in an earlier second would find it not yet valid."""
    (tmp / "signer.ext").write_text(ext)
    _openssl(tmp, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", "signer.key", "-out", "signer.csr",
             "-subj", "/O=vqual lab/CN=vqual lab TSA")
    _openssl(tmp, "x509", "-req", "-in", "signer.csr", "-CA", str(tsa.ca_file), "-CAkey",
             str(tsa.pki.ca_key), "-set_serial", "77", "-days", "2", "-sha256",
             "-extfile", "signer.ext", "-out", "signer.crt")


def _resigned(token: bytes, tmp: Path) -> bytes:
    """The token's own TSTInfo signed again (``openssl cms``) by the forged signer in ``tmp``."""
    (tmp / "token.der").write_bytes(token)
    _openssl(tmp, "cms", "-verify", "-noverify", "-inform", "DER", "-in", "token.der",
             "-out", "tstinfo.der")
    _openssl(tmp, "cms", "-sign", "-binary", "-in", "tstinfo.der", "-nodetach", "-nosmimecap",
             "-econtent_type", "1.2.840.113549.1.9.16.1.4",  # id-ct-TSTInfo
             "-signer", "signer.crt", "-inkey", "signer.key", "-md", "sha256",
             "-outform", "DER", "-out", "resigned.der")
    return (tmp / "resigned.der").read_bytes()


@pytest.mark.parametrize(
    "ext",
    [
        "keyUsage = critical, digitalSignature\n",  # no extended key usage at all
        "keyUsage = critical, digitalSignature\nextendedKeyUsage = timeStamping\n",  # not critical
        "keyUsage = critical, digitalSignature\nextendedKeyUsage = critical, codeSigning\n",
    ],
    ids=["none", "not-critical", "code-signing"],
)
def test_a_signer_without_the_time_stamping_usage_is_refused(
    tsa: TsaProcess, ext: str, tmp_path: Path
) -> None:
    _forged_signer(tsa, "basicConstraints = critical, CA:FALSE\n" + ext, tmp_path)
    token = request_token(tsa.url, DIGEST)
    lo, hi = _window()
    forged = _resigned(token.der, tmp_path)
    with pytest.raises(TimestampInvalid, match="lacks the critical timeStamping extended key us"):
        verify_token(forged, DIGEST, tsa.ca_file.read_bytes(), not_before=lo, not_after=hi)
    assert _openssl_verify(forged, DIGEST, tsa.ca_file, tmp_path).returncode != 0


def test_a_resigned_token_with_the_right_usage_still_verifies(tsa: TsaProcess, tmp_path: Path) -> None:
    # The control for the test above: the forgery itself is sound, only the usage differs.
    ext = "basicConstraints = critical, CA:FALSE\nextendedKeyUsage = critical, timeStamping\n"
    _forged_signer(tsa, ext, tmp_path)
    token = request_token(tsa.url, DIGEST)
    lo, hi = _window()
    forged = _resigned(token.der, tmp_path)
    assert verify_token(forged, DIGEST, tsa.ca_file.read_bytes(), not_before=lo, not_after=hi)


def test_not_a_token_is_refused(tsa: TsaProcess) -> None:
    lo, hi = _window()
    with pytest.raises(TimestampInvalid, match="not an RFC 3161 time-stamp token"):
        verify_token(b"\x30\x03\x02\x01\x00", DIGEST, tsa.ca_file.read_bytes(),
                     not_before=lo, not_after=hi)


def test_bad_input_is_one_clear_line(tsa: TsaProcess) -> None:
    lo, hi = _window()
    with pytest.raises(BadInputError, match="SHA-256 digest: 32 bytes"):
        request_token(tsa.url, DIGEST[:31])
    with pytest.raises(BadInputError, match="is not http"):
        request_token("ftp://127.0.0.81/", DIGEST)
    with pytest.raises(BadInputError, match="timezone-aware"):
        verify_token(b"", DIGEST, tsa.ca_file.read_bytes(),
                     not_before=datetime(2026, 1, 1), not_after=hi)
    with pytest.raises(BadInputError, match="TSA roots: not PEM certificates"):
        verify_token(b"", DIGEST, b"not a certificate", not_before=lo, not_after=hi)


# --- a TSA that cannot be used ----------------------------------------------------------------


def test_unreachable_tsa_is_a_clear_error(tmp_path: Path) -> None:
    proc = start_tsa(tmp_path, address="127.0.0.83", port=0)
    url = proc.url
    assert stop_tsa(proc)
    with pytest.raises(TimestampError, match="TSA unreachable: .*refused") as err:
        request_token(url, DIGEST)
    assert err.value.exit_code == EXIT_PLATFORM
    assert str(err.value).startswith(url) and "\n" not in str(err.value)


def test_a_tsa_that_never_answers_times_out_within_the_bound() -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.83", 0))
        listener.listen(1)
        url = f"http://127.0.0.83:{listener.getsockname()[1]}/"
        t0 = time.monotonic()
        with pytest.raises(TimestampError, match="TSA unreachable: .*timed out"):
            request_token(url, DIGEST, timeout=0.5)
        assert time.monotonic() - t0 < 5


def test_a_server_that_does_not_speak_http_is_a_clear_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.83", 0))
        listener.listen(1)

        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        url = f"http://127.0.0.83:{listener.getsockname()[1]}/"
        with pytest.raises(TimestampError, match="TSA reply is not HTTP: .*SSH-2.0"):
            request_token(url, DIGEST, timeout=5)
        thread.join(timeout=5)


def test_http_error_is_named(tsa: TsaProcess) -> None:
    with pytest.raises(TimestampError, match="TSA answered HTTP 404"):
        request_token(tsa.url + "nosuch", DIGEST)


def test_a_refusal_names_the_status(tmp_path: Path) -> None:
    # A real TSA that only stamps SHA-512 imprints refuses a SHA-256 one (badAlg).
    with (
        running_tsa(tmp_path, address="127.0.0.83", port=0, digests=("sha512",)) as strict,
        pytest.raises(TimestampError, match=r"TSA refused the request: rejection \(.*not supp"),
    ):
        request_token(strict.url, DIGEST)


class _CannedReplies(http.server.ThreadingHTTPServer):
    """Not a TSA: answers every POST with one canned body (what no real TSA here sends)."""

    daemon_threads = True

    def __init__(self, body: bytes, content_type: str = REPLY_TYPE) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", outer.content_type)
                # ``declared`` more than is sent: a reply broken off.
                self.send_header("Content-Length", str(outer.declared or len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

        super().__init__(("127.0.0.84", 0), Handler)
        self.body = body
        self.content_type = content_type
        self.declared = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.84:{self.server_address[1]}/"


@pytest.fixture
def canned() -> Iterator[_CannedReplies]:
    server = _CannedReplies(b"")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_granted_with_modifications_is_not_accepted(canned: _CannedReplies) -> None:
    canned.body = bytes.fromhex("30053003020101")  # PKIStatusInfo { grantedWithMods }
    with pytest.raises(TimestampError, match="granted the request with modifications"):
        request_token(canned.url, DIGEST)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"garbage", REPLY_TYPE, "TSA reply is malformed"),
        (b"\x30\x03\x02\x01\x00", "text/html", "TSA reply is text/html, not application/timestamp-reply"),
    ],
)
def test_malformed_reply_is_a_clear_error(
    canned: _CannedReplies, body: bytes, content_type: str, message: str
) -> None:
    canned.body, canned.content_type = body, content_type
    with pytest.raises(TimestampError, match=message) as err:
        request_token(canned.url, DIGEST)
    assert "\n" not in str(err.value)


def test_a_reply_broken_off_is_a_clear_error(canned: _CannedReplies) -> None:
    canned.body, canned.declared = b"\x30\x82\x04\x00", 1024
    with pytest.raises(TimestampError, match="TSA reply broken off after 4 of 1024 bytes"):
        request_token(canned.url, DIGEST)


def test_a_replayed_reply_for_another_request_is_refused(
    tsa: TsaProcess, canned: _CannedReplies
) -> None:
    # A genuine reply from the real TSA, to a request with another nonce.
    import urllib.request

    req = urllib.request.Request(tsa.url, data=encode_query(DIGEST, 1),
                                 headers={"Content-Type": "application/timestamp-query"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        canned.body = resp.read()
    with pytest.raises(TimestampError, match="answers another request"):
        request_token(canned.url, DIGEST, nonce=2)
    assert request_token(canned.url, DIGEST, nonce=1).nonce == 1


def test_tsa_certificate_is_fit_for_time_stamping(tsa: TsaProcess) -> None:
    cert = x509.load_pem_x509_certificate(tsa.pki.tsa_cert.read_bytes())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [x509.ExtendedKeyUsageOID.TIME_STAMPING]
    ca = x509.load_pem_x509_certificate(tsa.ca_file.read_bytes())
    cert.verify_directly_issued_by(ca)


# --- an archived token, checked offline -------------------------------------------------------

# Package data: `vqual selftest` checks the same token at a site (ST-OQ-13).
FIXTURES = Path(__file__).resolve().parents[3] / "qualification" / "selftest" / "data"
ARCHIVED_DIGEST = hashlib.sha256(b"vqual archived token").digest()
ARCHIVED_TIME = datetime(2026, 12, 6, 18, 5, 38, tzinfo=UTC)


def test_an_archived_token_verifies_offline_with_its_root(tmp_path: Path) -> None:
    """A token kept with its root (qualification/selftest/data, from the lab TSA) verifies
    with no TSA running, and only for its digest, its root and its time."""
    token = (FIXTURES / "tsa-token.der").read_bytes()
    root = (FIXTURES / "tsa-root.pem").read_bytes()
    near = (ARCHIVED_TIME - timedelta(seconds=5), ARCHIVED_TIME + timedelta(seconds=5))
    verified = verify_token(token, ARCHIVED_DIGEST, root, not_before=near[0], not_after=near[1])
    assert verified.time == ARCHIVED_TIME
    assert verified.tsa_subject == "CN=vqual lab TSA,O=vqual lab"
    assert _openssl_verify(token, ARCHIVED_DIGEST, FIXTURES / "tsa-root.pem", tmp_path).returncode == 0
    with pytest.raises(TimestampInvalid, match="covers digest"):
        verify_token(token, DIGEST, root, not_before=near[0], not_after=near[1])
    with pytest.raises(TimestampInvalid, match="outside"):
        verify_token(token, ARCHIVED_DIGEST, root, not_before=near[1], not_after=near[1] + near[1].resolution)
    other = ensure_pki(tmp_path / "other").ca_cert.read_bytes()
    with pytest.raises(TimestampInvalid, match="does not chain"):
        verify_token(token, ARCHIVED_DIGEST, other, not_before=near[0], not_after=near[1])
