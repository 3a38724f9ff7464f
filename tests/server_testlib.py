"""A real ``vqual serve`` process for the integration tests: a free port, readiness polled
with a deadline (no fixed sleeps), stopped by its PID (its process group: uvicorn's workers)."""

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

from tests.conftest import VENV_BIN, run_vqual, vqual_env

READY_SECONDS = 90


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
    deadline = time.monotonic() + READY_SECONDS
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"vqual serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(served.url + "/api/v1/health", timeout=2) as resp:
                if json.loads(resp.read()) == {"status": "ok"}:
                    return served
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            served.stop()
            raise RuntimeError(f"vqual serve not ready after {READY_SECONDS} s: {log.read_text()}")
        time.sleep(0.1)  # poll interval, bounded by the deadline above


def token_file(state: Path, name: str, role: str, *db_args: str) -> Path:
    path = state / f"{name}.token"
    done = run_vqual("serve", "token", "create", "--name", name, "--role", role,
                     "--out", str(path), *db_args, state_dir=state)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"token for {name} ({role}) written to {path}"
    return path
