"""A real RFC 3161 Time-Stamp Authority for the lab, on OpenSSL's ``ts`` with its own CA.

On first start it makes, with the ``openssl`` command, a root CA and a TSA certificate signed
by it (``extendedKeyUsage = critical, timeStamping``, as RFC 3161 section 2.3 requires) and an
OpenSSL ``ts`` configuration; they are kept (``<lab dir>/tsa/pki``), so the CA a trust store
names survives ``down`` and ``up``. The server is a small HTTP server (RFC 3161 section 3.4:
``POST`` of ``application/timestamp-query``, answered with ``application/timestamp-reply``)
that hands each query to ``openssl ts -reply``, one at a time (OpenSSL keeps the serial number
in a file). Anything else is answered with an HTTP error, never with a made-up reply.

:func:`start_tsa`, :func:`stop_tsa` and :func:`running_tsa` run one instance in any directory,
without the rest of the lab (the tests start their own, on other addresses, with port 0);
:class:`TsaComponent` is the lab component ``tsa``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, PlatformError
from vqual_lab.component import (
    ComponentStatus,
    LabContext,
    file_lock,
    pid_start_time,
    processes_under,
    same_process,
    stop_pid,
    tail,
)
from vqual_lab.vcsim import is_loopback

DEFAULT_ADDRESS = "127.0.0.71"
DEFAULT_PORT = 8318  # 318 is the registered TSP port; unprivileged here
DEFAULT_NAME = "vqual lab TSA"
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
# A UUID-based OID (ITU-T X.667, arc 2.25): anyone may mint one without registering.
POLICY_OID = "2.25.191479436640532707563839349567372934281"
DIGESTS = ("sha256", "sha384", "sha512")
# A query is a few hundred bytes; anything much larger is not a query.
MAX_QUERY = 64 * 1024
_START_TIMEOUT = 15.0


# --- the PKI and the OpenSSL ts configuration ---------------------------------------------


@dataclass(frozen=True)
class TsaPki:
    """Files of one TSA: its root CA, its signing certificate and key, its ts config."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def tsa_cert(self) -> Path:
        return self.directory / "tsa.crt"

    @property
    def tsa_key(self) -> Path:
        return self.directory / "tsa.key"

    @property
    def config(self) -> Path:
        return self.directory / "ts.cnf"

    @property
    def serial(self) -> Path:
        return self.directory / "serial"

    def complete(self) -> bool:
        return all(
            p.is_file() for p in (self.ca_cert, self.tsa_cert, self.tsa_key, self.config)
        )


def _openssl(args: Sequence[str], cwd: Path) -> None:
    try:
        done = subprocess.run(
            ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError as exc:
        raise PlatformError("the openssl command is not installed", where="lab tsa") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise PlatformError(f"openssl {args[0]} failed: {last}", where="lab tsa")


_TSA_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def ts_config(pki: TsaPki, digests: Sequence[str] = DIGESTS) -> str:
    """The OpenSSL ``ts`` configuration of ``pki`` (``openssl ts -reply -config``)."""
    return f"""\
# Written by vqual_lab.tsa; OpenSSL ts configuration of a lab TSA.
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
serial = {pki.serial}
crypto_device = builtin
signer_cert = {pki.tsa_cert}
signer_key = {pki.tsa_key}
signer_digest = sha256
default_policy = {POLICY_OID}
digests = {", ".join(digests)}
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def ensure_pki(
    directory: Path, *, name: str = DEFAULT_NAME, digests: Sequence[str] = DIGESTS
) -> TsaPki:
    """The TSA's PKI in ``directory``, made on first use (kept afterwards).

    Keys are ECDSA P-256, mode 0600, in a 0700 directory. The configuration is rewritten each
    time (it holds only paths and the accepted digests).

    Raises:
        PlatformError: openssl is missing or failed.
    """
    pki = TsaPki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    # Two `up`s at once (a test session beside `vqual-lab up`) make one CA, not two.
    with file_lock(directory / ".lock"):
        _make_pki(pki, name)
    pki.config.write_text(ts_config(pki, digests))
    return pki


def _make_pki(pki: TsaPki, name: str) -> None:
    directory = pki.directory
    if pki.complete():
        return
    for path in (pki.ca_cert, pki.ca_key, pki.tsa_cert, pki.tsa_key, pki.serial):
        path.unlink(missing_ok=True)
    (directory / "tsa.ext").write_text(_TSA_EXT)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl(
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
         "-subj", f"/O=vqual lab/CN={name} root CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        directory,
    )
    _openssl(
        ["req", "-new", *ec, "-keyout", "tsa.key", "-out", "tsa.csr",
         "-subj", f"/O=vqual lab/CN={name}"],
        directory,
    )
    _openssl(
        ["x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "3650",
         "-sha256", "-extfile", "tsa.ext", "-out", "tsa.crt"],
        directory,
    )
    for key in (pki.ca_key, pki.tsa_key):
        os.chmod(key, 0o600)
    (directory / "tsa.csr").unlink(missing_ok=True)
    pki.serial.write_text("01\n")


# --- the HTTP server (runs as its own process) ---------------------------------------------


def openssl_reply(config: Path, query: bytes, *, timeout: float = 30.0) -> bytes | None:
    """``openssl ts -reply`` for one DER query: the DER reply (a query OpenSSL cannot read or
    will not stamp gets a reply saying so, as RFC 3161 asks), or None if OpenSSL failed."""
    try:
        done = subprocess.run(
            ["openssl", "ts", "-reply", "-config", str(config), "-queryfile", "/dev/stdin",
             "-out", "/dev/stdout"],
            input=query, capture_output=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        sys.stderr.write(f"openssl ts -reply took longer than {timeout} s\n")
        return None
    if done.returncode != 0 or not done.stdout:
        sys.stderr.write(f"openssl ts -reply failed: {done.stderr.decode(errors='replace')}\n")
        return None
    return done.stdout


class _Handler(http.server.BaseHTTPRequestHandler):
    server: TsaServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        # What the readiness probe reads; no timestamp is ever given for a GET.
        if self.path == "/":
            self._send(200, f"{self.server.name} (OpenSSL ts), POST {QUERY_TYPE}\n".encode())
        else:
            self._send(404, b"not found\n")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_QUERY:
            self.close_connection = True
            self._send(413, b"query too large or of no stated length\n")
            return
        query = self.rfile.read(length)
        if self.path != "/":
            self._send(404, b"not found\n")
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != QUERY_TYPE:
            self._send(415, f"Content-Type must be {QUERY_TYPE}\n".encode())
            return
        with self.server.lock:  # OpenSSL keeps the serial number in a file
            reply = openssl_reply(self.server.config, query)
        if reply is None:
            self._send(500, b"the TSA could not answer (see its log)\n")
            return
        self._send(200, reply, REPLY_TYPE)


class TsaServer(http.server.ThreadingHTTPServer):
    """The lab TSA's HTTP front: each query goes to ``openssl ts -reply``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], config: Path, name: str) -> None:
        super().__init__(address, _Handler)
        self.config = config
        self.name = name
        self.lock = threading.Lock()


def serve(argv: list[str] | None = None) -> None:
    """``python -m vqual_lab.tsa --listen ADDR:PORT --config TS_CNF --ready-file F``: serve
    until SIGTERM. Port 0 takes a free port; the URL served is written to the ready file
    once the socket listens."""
    ap = argparse.ArgumentParser(description="vqual lab TSA (OpenSSL ts)")
    ap.add_argument("--listen", required=True)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--ready-file", required=True, type=Path)
    ap.add_argument("--name", default=DEFAULT_NAME)
    ns = ap.parse_args(argv)
    host, _, port = ns.listen.rpartition(":")
    server = TsaServer((host, int(port)), ns.config, ns.name)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    url = f"http://{host}:{server.server_address[1]}/"
    tmp = ns.ready_file.with_suffix(".tmp")
    tmp.write_text(url + "\n")
    os.replace(tmp, ns.ready_file)
    print(f"tsa ready {url}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        print("tsa stopping", flush=True)


# --- one instance, started and stopped by PID -----------------------------------------------


@dataclass(frozen=True)
class TsaProcess:
    """A running TSA: its process (outer PID and kernel start time), URL and CA certificate."""

    pid: int
    start: int | None
    url: str
    ca_file: Path
    pki: TsaPki
    log: Path

    def to_state(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start, "url": self.url,
                "ca_file": str(self.ca_file), "pki": str(self.pki.directory),
                "log": str(self.log)}


# Popen objects of servers this process started, so a stopped one is reaped.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def answers(url: str, timeout: float = 1.0) -> bool:
    """True if a lab TSA answers its readiness probe (``GET /``) at ``url``."""
    rest = url.split("://", 1)[-1].strip("/")
    host, _, port = rest.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status == 200 and b"OpenSSL ts" in resp.read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def start_tsa(
    run_dir: Path,
    *,
    pki_dir: Path | None = None,
    address: str = DEFAULT_ADDRESS,
    port: int = DEFAULT_PORT,
    name: str = DEFAULT_NAME,
    digests: Sequence[str] = DIGESTS,
    timeout: float = _START_TIMEOUT,
) -> TsaProcess:
    """Start one TSA server whose log and ready file live in ``run_dir``; its PKI is made
    in ``pki_dir`` (default ``run_dir/pki``) if not there. Returns once it answers.

    Raises:
        BadInputError: ``address`` is not in 127.0.0.0/8.
        PlatformError: openssl failed, or the server did not answer within ``timeout`` s.
    """
    if not is_loopback(address):
        raise BadInputError(f"tsa: address {address} is not in 127.0.0.0/8", where="lab tsa")
    pki = ensure_pki(pki_dir or run_dir / "pki", name=name, digests=digests)
    run_dir.mkdir(parents=True, exist_ok=True)
    ready = run_dir / "tsa.url"
    ready.unlink(missing_ok=True)
    log = run_dir / "tsa.log"
    cmd = [sys.executable, "-m", "vqual_lab.tsa", "--listen", f"{address}:{port}",
           "--config", str(pki.config), "--ready-file", str(ready), "--name", name]
    # The server imports this package: run it from wherever this module was imported.
    pkg_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (pkg_root, os.environ.get("PYTHONPATH", "")) if p)}
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=run_dir, env=env,
                                start_new_session=True)
    _CHILDREN[proc.pid] = proc
    started = TsaProcess(proc.pid, pid_start_time(proc.pid), "", pki.ca_cert, pki, log)
    deadline = time.monotonic() + timeout
    while True:
        url = ready.read_text().strip() if ready.is_file() else ""
        if url and answers(url):
            return TsaProcess(proc.pid, started.start, url, pki.ca_cert, pki, log)
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_tsa(started)
            last = " | ".join(tail(log, 3)) or "no output"
            raise PlatformError(f"the TSA did not answer at {address}:{port}: {last}",
                                where="lab tsa")
        time.sleep(0.02)


def stop_tsa(tsa: TsaProcess | dict[str, Any]) -> bool:
    """Stop a TSA by its recorded PID (if it is still that process). True if it is gone."""
    pid, start = (tsa.pid, tsa.start) if isinstance(tsa, TsaProcess) else (
        int(tsa["pid"]), tsa.get("start"))
    gone = not same_process(pid, start) or stop_pid(pid)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1)
    return gone


@contextlib.contextmanager
def running_tsa(run_dir: Path, **kwargs: Any) -> Iterator[TsaProcess]:
    """A TSA for the length of a ``with`` block (see :func:`start_tsa` for the arguments)."""
    tsa = start_tsa(run_dir, **kwargs)
    try:
        yield tsa
    finally:
        stop_tsa(tsa)


# --- the lab component ----------------------------------------------------------------------


class TsaComponent:
    """LabComponent ``tsa``: the lab's RFC 3161 Time-Stamp Authority (OpenSSL ``ts``)."""

    name = "tsa"

    def __init__(self, address: str | None = None, port: int | None = None) -> None:
        """Address and port default to ``$VQUAL_LAB_TSA`` (``127.0.0.191:28318``, for a
        second lab beside the first), else 127.0.0.71:8318."""
        env_address, _, env_port = os.environ.get("VQUAL_LAB_TSA", "").rpartition(":")
        if env_port and not env_port.isdigit():
            raise BadInputError("VQUAL_LAB_TSA is not <127.x.y.z>:<port>", where="lab tsa")
        self.address = address or env_address or DEFAULT_ADDRESS
        self.port = port or (int(env_port) if env_port else DEFAULT_PORT)
        if not is_loopback(self.address):
            raise BadInputError(f"tsa: address {self.address} is not in 127.0.0.0/8",
                                where="lab tsa")

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/"

    def pki(self, ctx: LabContext) -> TsaPki:
        """Kept across ``down``: the CA a trust store names stays the same."""
        return TsaPki(ctx.lab_dir / "tsa" / "pki")

    def _dir(self, ctx: LabContext) -> Path:
        return ctx.run_dir / "tsa"

    def _recorded(self, ctx: LabContext) -> dict[str, Any]:
        rec: dict[str, Any] = ctx.state().get(self.name, {})
        return rec

    def _alive(self, ctx: LabContext) -> bool:
        rec = self._recorded(ctx)
        return bool(rec) and same_process(int(rec["pid"]), rec.get("start"))

    def up(self, ctx: LabContext) -> ComponentStatus:
        if self._alive(ctx) and answers(self.url):
            return ComponentStatus(self.name, "running", f"already running: {self.url}")
        if self._recorded(ctx):
            self.down(ctx)
        run = self._dir(ctx)
        try:
            tsa = start_tsa(run, pki_dir=self.pki(ctx).directory, address=self.address,
                            port=self.port)
        except PlatformError as exc:
            return ComponentStatus(self.name, "failed", exc.one_line(), tail(run / "tsa.log"))
        ctx.update_state(self.name, tsa.to_state())
        return ComponentStatus(self.name, "running", f"{tsa.url} (OpenSSL ts, CA {tsa.ca_file})")

    def down(self, ctx: LabContext) -> ComponentStatus:
        rec = self._recorded(ctx)
        if rec and not stop_tsa(rec):
            return ComponentStatus(self.name, "failed", f"could not stop pid {rec['pid']}")
        ctx.update_state(self.name, None)
        shutil.rmtree(self._dir(ctx), ignore_errors=True)
        left = processes_under([self._dir(ctx)])
        if left:
            return ComponentStatus(self.name, "failed", f"processes left behind: {left}")
        return ComponentStatus(self.name, "stopped", "stopped" if rec else "was not running")

    def status(self, ctx: LabContext) -> ComponentStatus:
        alive = self._alive(ctx)
        if alive and answers(self.url):
            return ComponentStatus(self.name, "running", f"{self.url} (OpenSSL ts)")
        if not alive:
            return ComponentStatus(self.name, "stopped", "not running")
        return ComponentStatus(self.name, "failed", f"not answering at {self.url}",
                               tail(self._dir(ctx) / "tsa.log"))

    def inventory(self, ctx: LabContext) -> dict[str, Any]:
        """Variables for every host (``all``): the TSA's URL and the CA file to trust."""
        return {"groups": {}, "vars": {"vqual_tsa_url": self.url,
                                       "vqual_tsa_ca_file": str(self.pki(ctx).ca_cert)}}


if __name__ == "__main__":
    serve()
