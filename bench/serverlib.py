"""What the evidence-server benchmarks share (bench_server_push.py, bench_server_review.py):
a throwaway state directory, generated sealed bundles, and a real ``vqual serve`` started on
a free port, waited for and stopped by its process group.

The state's trust store is the bench's own and unsigned, so everything here judges it as
legacy trust (``VQUAL_LEGACY_TRUST=1``, set by :func:`legacy_trust`), as a site would only
for a throwaway store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from qualification.evidence.bundle import BundleWriter
from qualification.execution.recorder import records_as_dicts
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.signing import Ed25519Signer, TrustStore
from qualification.signing.keys import create_key

BIN = Path(sys.executable).parent
SINCE = datetime(2020, 1, 1, tzinfo=UTC)
#: How long ``vqual serve`` may take to answer its health check (measured: 1-3 s alone).
READY_S = 120


def legacy_trust() -> None:
    """Judge the bench's unsigned throwaway store as legacy trust, here and in every
    ``vqual`` this process starts."""
    os.environ["VQUAL_LEGACY_TRUST"] = "1"


def make_state(base: Path) -> Ed25519Signer:
    """A state directory with a trusted executor and a trusted log key."""
    executor = Ed25519Signer.generate()
    trust = TrustStore.empty(base / "trust.yaml")
    trust.add_key(public_key_pem=executor.public_pem(), name="CI Pipeline",
                  identity="svc-ci@example.com", roles=["executor"], valid_from=SINCE)
    (base / "keys").mkdir()
    create_key(base / "keys" / "log.pem", passphrase=None, name="Evidence log",
               identity="svc-log@example.com")
    trust.add_key(public_key_pem=(base / "keys" / "log.pem.pub").read_text(),
                  name="Evidence log", identity="svc-log@example.com", roles=["log"],
                  valid_from=SINCE)
    trust.save()
    return executor


def make_bundle(evidence: Path, signer: Ed25519Signer, i: int, results: int) -> Path:
    """A sealed run with ``results`` passed check results, its JUnit and report rendered
    from it."""
    run_id = f"20260301T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}Z-b{i:06d}"
    w = BundleWriter.create(evidence, f"CHG{i % 97:07d}", run_id, signer, "bench")
    planned = [{"test_id": f"T-{k:03d}", "target": "kvm01.lab", "protocol": "IQ"}
               for k in range(results)]
    w.append("run.start", {
        "tool": {"name": "vqual", "version": "0.1.0"}, "versions": {"python": "3.11"},
        "controller": {"hostname": "ctl01"}, "clock": {"synchronized": True},
        "spec": {"path": "specs/bench.yaml", "name": "bench", "version": "1", "digest": "ab" * 32},
        "data_files": [], "inventory": {"digest": "ef" * 32}, "trust": {"digest": "01" * 32},
        "targets": [{"name": "kvm01.lab", "kinds": ["kvm_host"], "risk": "high"}],
        "planned": planned, "prev_run_seal": None, "mode": "qualify"})
    for p in planned:
        w.append("check.result", {
            "test_id": p["test_id"], "title": "bench", "protocol": "IQ",
            "requirements": ["URS-01"], "target": "kvm01.lab", "check": "equals",
            "method": "host.command true", "expected": {"op": "eq", "value": 1},
            "observed": 1, "verdict": "pass", "reason": None, "raw": None,
            "started": "2026-03-01T10:00:00.000000Z", "finished": "2026-03-01T10:00:00.001000Z",
            "duration_ms": 1, "deviation": None})
    recs = records_as_dicts(w.path)
    w.add_file("junit.xml", render_junit(recs).encode())
    w.add_file("report.html", render_report(recs).encode())
    counts = {"pass": results, "fail": 0, "error": 0, "not-executed": 0, "waived": 0}
    w.seal(counts, results, results, "pass")
    return w.path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(state: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """``vqual serve --port <free> ARGS`` on ``state``, once its health check answers."""
    port = free_port()
    proc = subprocess.Popen([str(BIN / "vqual"), "serve", "--port", str(port), *args],
                            env=dict(os.environ, VQUAL_STATE_DIR=str(state)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(url + "/api/v1/health", timeout=2).close()
            return proc, url
        except OSError:
            time.sleep(0.1)  # poll interval, bounded by the deadline
    stop(proc)
    raise SystemExit("vqual serve did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server and its workers (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
