"""One RFC 3161 token round trip against signing one record with Ed25519, in the same run.

Starts the lab's TSA (OpenSSL ``ts``, its own CA) in a throwaway directory on its own
loopback address, then times, interleaved so a load change on the shared machine shifts both
sides alike: signing one ~1 KB record into a DSSE envelope (canonical JSON + Ed25519, as the
bundle writer does per record), asking the TSA for a token over a digest (HTTP, ``openssl ts
-reply`` in a fresh process on the TSA side), and verifying that token (chain, EKU, digest,
window). Prints medians and the ratios to one record signature.

    .venv/bin/python bench/bench_timestamping.py [--tokens N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rfc8785
from vqual_lab.tsa import running_tsa

from qualification.signing import Ed25519Signer, sign_envelope
from qualification.signing.timestamping import request_token, verify_token

ADDRESS = "127.0.0.87"


def record(i: int) -> dict[str, Any]:
    """A check.result-sized record (about 1 KB of canonical JSON)."""
    return {
        "v": 1, "seq": i, "prev": "0" * 64, "time": "2026-03-01T10:00:00.000000Z",
        "change_id": "CHG0000001", "run_id": "bench", "actor": "bench", "initiator": "bench",
        "kind": "check.result",
        "payload": {
            "test_id": f"KVM-{i % 20 + 1:02d}", "target": "kvm01.lab.example", "protocol": "IQ",
            "expected": {"op": "superset", "value": ["server 10.0.0.1 iburst", "rtcsync"]},
            "observed": {"servers": [f"10.0.0.{i % 250}"], "rtcsync": True},
            "raw": "server 10.0.0.1 iburst\nmakestep 1.0 3\nrtcsync\n" * 12,
            "verdict": "pass",
        },
    }


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=200)
    args = ap.parse_args()
    signer = Ed25519Signer.generate()
    payloads = [rfc8785.dumps(record(i)) for i in range(100)]
    sign_s: list[float] = []
    request_s: list[float] = []
    verify_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with running_tsa(Path(tmp), address=ADDRESS, port=0) as tsa:
            start_s = time.perf_counter() - t0
            roots = tsa.ca_file.read_bytes()
            request_token(tsa.url, hashlib.sha256(b"warm-up").digest())
            size = 0
            for i in range(args.tokens):
                payload = payloads[i % len(payloads)]
                # 50 signatures per token, timed one by one: each sample is one record.
                sign_s += timed(lambda p=payload: sign_envelope(p, signer).to_bytes(), 50)
                digest = hashlib.sha256(payload).digest()
                t0 = time.perf_counter()
                token = request_token(tsa.url, digest)
                request_s.append(time.perf_counter() - t0)
                size = len(token.der)
                now = datetime.now(UTC)
                lo, hi = now - timedelta(minutes=1), now + timedelta(minutes=1)
                t0 = time.perf_counter()
                verify_token(token.der, digest, roots, not_before=lo, not_after=hi)
                verify_s.append(time.perf_counter() - t0)
    sign = statistics.median(sign_s)
    req = statistics.median(request_s)
    ver = statistics.median(verify_s)
    p90 = statistics.quantiles(request_s, n=10)[-1]
    print(f"tokens: {args.tokens}, cores: {os.cpu_count()}, "
          f"load average at end: {os.getloadavg()[0]:.1f}; TSA started in {start_s:.2f} s "
          "(PKI made, server answering)")
    print(f"sign one record (DSSE, Ed25519) : {sign * 1e6:9.1f} us median")
    print(f"token round trip (request)      : {req * 1e3:9.2f} ms median, {p90 * 1e3:.2f} ms p90"
          f"   ratio {req / sign:,.0f} x one record signature")
    print(f"token verification              : {ver * 1e3:9.2f} ms median"
          f"   ratio {ver / sign:,.0f} x one record signature")
    print(f"token size                      : {size} bytes (DER TimeStampToken)")


if __name__ == "__main__":
    main()
