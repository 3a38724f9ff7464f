"""Real ``vqual serve`` processes for the integration tests, and nginx in front of them: a free
port, readiness polled with a deadline (no fixed sleeps), stopped by PID (the process group we
started: uvicorn's or nginx's workers with it)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.conftest import VENV_BIN, run_vqual, vqual_env

#: ``vqual serve`` from its start (migrations, the first checkpoint, uvicorn and its workers)
#: to a healthy answer, measured here with the machine's 2 cores shared (load 8-10): one
#: worker 1.0-1.9 s, two workers 2.8-3.3 s; nginx in front of them 0.1 s. As the lab's
#: components do, the bound is a documented multiple of the slowest measured start (20x, room
#: for a machine busier still) with a floor (30 s).
MEASURED_READY_S = 3.3
READY_MULTIPLE, READY_FLOOR_S = 20, 30.0
READY_SECONDS = max(READY_FLOOR_S, READY_MULTIPLE * MEASURED_READY_S)


def write_one_test_spec(path: Path, name: str, checked: str = "/etc/passwd") -> Path:
    """Write to ``path`` the one-test protocol the server's integration tests run on
    localhost: IQ-T-001, that the file ``checked`` exists (it passes for /etc/passwd, and
    fails for a path that is not there)."""
    spec = {
        "apiVersion": "vqual/v1", "kind": "Protocol",
        "metadata": {"name": name, "title": "A small protocol", "version": "1.0"},
        "requirements": ["URS-SEC-01"],
        "tests": [{"id": "IQ-T-001", "title": f"{checked} exists", "protocol": "IQ",
                   "requirements": ["URS-SEC-01"], "applies_to": ["linux_host"],
                   "risk": ["low", "medium", "high"], "check": "file_exists",
                   "params": {"path": checked}, "expect": {"op": "equals", "value": True},
                   "acceptance": "as expected"}],
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group we started: uvicorn + workers
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


def serve(state: Path, *args: str) -> Served:
    port = free_port()
    log = state / f"serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "vqual"), "serve", "--port", str(port), *args],
            env=vqual_env(state), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    served = Served(f"http://127.0.0.1:{port}", proc, log)
    _wait_healthy(served)
    return served


def token_file(state: Path, name: str, role: str, *db_args: str) -> Path:
    path = state / f"{name}.token"
    done = run_vqual("serve", "token", "create", "--name", name, "--role", role,
                     "--out", str(path), *db_args, state_dir=state)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"token for {name} ({role}) written to {path}"
    return path


NGINX = Path("/usr/sbin/nginx")


def nginx(base: Path, upstream: str) -> Served:
    """Debian's nginx as the reverse proxy in front of ``upstream`` (``http://host:port``), in
    the foreground with everything (config, pid, logs, temp files) under ``base``."""
    base.mkdir(parents=True)
    port = free_port()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (base / sub).mkdir()
    # Started as root, nginx's workers would switch to an unprivileged user that cannot reach
    # the test's temporary directory; they keep the test's user instead.
    user = "user root root;" if os.geteuid() == 0 else ""
    (base / "nginx.conf").write_text(f"""
{user}
daemon off;
worker_processes 2;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log {base}/access.log;
  client_body_temp_path {base}/body;
  proxy_temp_path {base}/proxy;
  fastcgi_temp_path {base}/fastcgi;
  uwsgi_temp_path {base}/uwsgi;
  scgi_temp_path {base}/scgi;
  client_max_body_size 256m;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass {upstream};
      proxy_set_header Host $host;
      proxy_read_timeout 300s;
    }}
  }}
}}
""")
    log = base / "nginx.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(NGINX), "-p", str(base), "-e", str(base / "error.log"),
                                 "-c", str(base / "nginx.conf")],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    served = Served(f"http://127.0.0.1:{port}", proc, log)
    _wait_healthy(served)
    return served


def _wait_healthy(served: Served) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while True:
        if served.proc.poll() is not None:
            raise RuntimeError(f"exited {served.proc.returncode}: {served.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(served.url + "/api/v1/health", timeout=2) as resp:
                if json.loads(resp.read()) == {"status": "ok"}:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            served.stop()
            raise RuntimeError(f"not ready after {READY_SECONDS:.0f} s (measured {MEASURED_READY_S} s): "
                               f"{served.log.read_text()}")
        time.sleep(0.1)  # poll interval, bounded by the deadline above
