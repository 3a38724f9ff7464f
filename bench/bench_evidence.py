"""Evidence throughput against raw Ed25519, measured in the same run.

Writes a bundle of N check.result records with BundleWriter, verifies it with verify_bundle
(all cores), and prints records/s next to the raw sign and verify rates of ``cryptography`` on
this machine, with the ratios. Goals: writing >= 0.5 x raw sign, verifying >= 0.67 x raw verify.

The checks that a sealed run agrees with itself (run.end's counts, the JUnit and the report
against the records; qualification/evidence/agreement.py) are measured against the verifier
without them, in the same run on the same bundle: "before" runs verify_bundle with those
checks switched off (their three hooks replaced by no-ops, which is the verifier as it was),
"after" runs it whole. Goal: after >= 0.9 x before. ``--files`` also seals a JUnit and a
report rendered from the records (not timed as writing), so the agreement checks read them.
"pinned" verifies the same bundle through a pinned root's time-indexed trust store (three
signed versions; each record judged by the version in force at its time), against the plain
store in the same rounds. Goal: pinned >= 0.9 x plain.

    .venv/bin/python bench/bench_evidence.py [--records N] [--workers W] [--files]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from qualification.evidence import verify as verify_module
from qualification.evidence.bundle import BundleWriter
from qualification.evidence.verify import verify_bundle
from qualification.signing import Ed25519Signer, TrustStore
from qualification.signing.trust_root import TrustTimeline

TARGETS = [f"kvm{i:02d}.lab.example" for i in range(12)]
#: Rounds of verify with and without the agreement checks (best of each is compared).
ROUNDS = 3


def payload(i: int, writer: BundleWriter) -> dict[str, Any]:
    """A check.result as the callback writes it: about 1 KB of canonical JSON."""
    target = TARGETS[i % len(TARGETS)]
    raw = f"server 10.0.0.{i % 250} iburst\nmakestep 1.0 3\nrtcsync\nleapsectz right/UTC\n" * 3
    return {
        "test_id": f"KVM-{i % 20 + 1:02d}",
        "title": "chrony uses the approved time servers",
        "protocol": "IQ",
        "requirements": ["URS-SEC-01", "URS-HV-02"],
        "target": target,
        "check": "file_lines_match",
        "method": "host.file /etc/chrony/chrony.conf",
        "expected": {"op": "superset", "value": ["server 10.0.0.1 iburst", "rtcsync"]},
        "observed": {"servers": [f"10.0.0.{i % 250}"], "rtcsync": True, "offset_ms": i % 17},
        "verdict": "pass" if i % 50 else "fail",
        "reason": None if i % 50 else "server 10.0.0.1 missing",
        "raw": writer.store_raw(raw),
        "started": "2026-03-01T10:00:00.000000Z",
        "finished": "2026-03-01T10:00:00.012000Z",
        "duration_ms": 12,
        "deviation": None,
    }


def raw_rates(seconds: float = 1.0) -> tuple[float, float]:
    """Raw Ed25519 sign and verify rates over ~1.1 KB messages, one core, wall clock."""
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    msg = os.urandom(1100)
    sig = key.sign(msg)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(200):
            key.sign(msg)
        n += 200
    sign_rate = n / (time.perf_counter() - t0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            pub.verify(sig, msg)
        n += 100
    return sign_rate, n / (time.perf_counter() - t0)


def raw_cpu(count: int = 4000) -> tuple[float, float]:
    """Raw sign and verify rates per CPU second of this process (insensitive to other load)."""
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    msg = os.urandom(1100)
    sig = key.sign(msg)
    t0 = time.process_time()
    for _ in range(count):
        key.sign(msg)
    t1 = time.process_time()
    for _ in range(count // 4):
        pub.verify(sig, msg)
    t2 = time.process_time()
    return count / (t1 - t0), (count // 4) / (t2 - t1)


def cpu_all() -> float:
    """CPU seconds of this process and its finished children (the verify workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def verify_without_agreement(path: Path, trust: TrustStore, workers: int | None) -> float:
    """Seconds verify_bundle takes with the agreement checks switched off ("before")."""
    saved = (
        verify_module._ChainState._account,
        verify_module._check_agreement,
        verify_module._check_prev_run,
    )
    verify_module._ChainState._account = lambda *a: None  # type: ignore[method-assign]
    verify_module._check_agreement = lambda *a: None
    verify_module._check_prev_run = lambda *a: None
    try:
        t0 = time.perf_counter()
        result = verify_bundle(path, trust, workers=workers)
        seconds = time.perf_counter() - t0
    finally:
        (
            verify_module._ChainState._account,  # type: ignore[method-assign]
            verify_module._check_agreement,
            verify_module._check_prev_run,
        ) = saved
    if result.status != "valid":
        raise SystemExit(f"bench bundle did not verify (before): {result.problems[:3]}")
    return seconds


def pinned_store(trust: TrustStore) -> TrustTimeline:
    """``trust`` as three signed versions in force since 2020 (what rooted_store builds once
    the pin's signatures are checked; those checks cost per version, not per record)."""
    versions = [(datetime(2020, 1, month, tzinfo=UTC), month, trust) for month in (1, 2, 3)]
    return TrustTimeline.build(trust, versions, "0" * 64, "bench")


def verify_pinned(path: Path, timeline: TrustTimeline, workers: int | None) -> float:
    t0 = time.perf_counter()
    result = verify_bundle(path, timeline, workers=workers)
    seconds = time.perf_counter() - t0
    if result.status != "valid":
        raise SystemExit(f"bench bundle did not verify (pinned): {result.problems[:3]}")
    return seconds


def sealed_files(writer: BundleWriter) -> tuple[float, float]:
    """Add a JUnit and a report rendered from the records; returns the wall and CPU seconds
    it took (not counted as writing)."""
    from qualification.evidence.reader import read_bundle
    from qualification.reports.html import render_report
    from qualification.reports.junit import render_junit

    t0, c0 = time.perf_counter(), time.process_time()
    records = read_bundle(writer.path).records
    writer.add_file("junit.xml", render_junit(records).encode("utf-8"))
    writer.add_file("report.html", render_report(records).encode("utf-8"))
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--files", action="store_true", help="seal a rendered JUnit and report")
    args = ap.parse_args()
    n = args.records

    # The machine may be shared: raw rates are taken right before and after each phase and
    # averaged, so a load change shifts both sides of the ratio alike.
    before = raw_rates()
    cpu_before = raw_cpu()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        signer = Ed25519Signer.generate()
        trust = TrustStore.empty(root / "trust.yaml")
        trust.add_key(
            public_key_pem=signer.public_pem(),
            name="Bench Executor",
            identity="bench@example.com",
            roles=["executor"],
            valid_from=datetime(2020, 1, 1, tzinfo=UTC),
        )
        trust.save()
        writer = BundleWriter.create(root / "evidence", "CHG0000001", "bench", signer, "bench")
        planned = [
            {"test_id": f"KVM-{i % 20 + 1:02d}", "target": t, "protocol": "IQ"}
            for i, t in enumerate(TARGETS)
        ]
        datas = [payload(i, writer) for i in range(min(n, 1000))]
        t0, c0 = time.perf_counter(), time.process_time()
        writer.append("run.start", {"planned": planned, "mode": "qualify"})
        # Results arrive in batches (a task's results); each batch ends at a task boundary.
        batch = 10_000
        for start in range(0, n, batch):
            writer.append_many(
                "check.result", [datas[i % len(datas)] for i in range(start, min(n, start + batch))]
            )
            writer.sync()  # a task boundary
        render_s, render_cpu = sealed_files(writer) if args.files else (0.0, 0.0)
        writer.seal({"pass": n - n // 50, "fail": n // 50}, len(planned), n, "fail")
        write_s = time.perf_counter() - t0 - render_s
        write_cpu = time.process_time() - c0 - render_cpu
        size = (writer.path / "records.jsonl").stat().st_size
        middle = raw_rates()
        cpu_after = raw_cpu()

        t0, c0 = time.perf_counter(), cpu_all()
        result = verify_bundle(writer.path, trust, workers=args.workers)
        verify_s, verify_cpu = time.perf_counter() - t0, cpu_all() - c0
        if result.status != "valid":
            raise SystemExit(f"bench bundle did not verify: {result.problems[:3]}")
        # Interleaved rounds, the best of each: a shared machine's load shifts both alike.
        best_s = verify_s
        before_s = verify_without_agreement(writer.path, trust, args.workers)
        timeline = pinned_store(trust)
        pinned_s = verify_pinned(writer.path, timeline, args.workers)
        for _ in range(ROUNDS - 1):
            t1 = time.perf_counter()
            again = verify_bundle(writer.path, trust, workers=args.workers)
            best_s = min(best_s, time.perf_counter() - t1)
            assert again.status == "valid"
            before_s = min(before_s, verify_without_agreement(writer.path, trust, args.workers))
            pinned_s = min(pinned_s, verify_pinned(writer.path, timeline, args.workers))
        after = raw_rates()

    sign_rate = (before[0] + middle[0]) / 2
    verify_rate = (middle[1] + after[1]) / 2
    cpu_sign = (cpu_before[0] + cpu_after[0]) / 2
    cpu_verify = (cpu_before[1] + cpu_after[1]) / 2
    verify_rate_cpu = (n + 2) / verify_cpu
    write_rate = (n + 2) / write_s
    write_rate_cpu = (n + 2) / write_cpu
    verify_rec = (n + 2) / verify_s
    print(
        f"records: {n} ({size / 1e6:.1f} MB), cores: {os.cpu_count()}, "
        f"load average at end: {os.getloadavg()[0]:.1f}"
    )
    print(f"raw Ed25519 sign    : {sign_rate:9.0f} /s (one core, wall)")
    print(f"raw Ed25519 verify  : {verify_rate:9.0f} /s (one core, wall)")
    print(
        f"bundle write        : {write_rate:9.0f} records/s   ratio {write_rate / sign_rate:.2f}"
        "  (goal >= 0.50)"
    )
    print(
        f"bundle write, CPU   : {write_rate_cpu:9.0f} records/cpu-s ratio "
        f"{write_rate_cpu / cpu_sign:.2f} to raw sign per cpu-s ({cpu_sign:.0f})"
    )
    print(
        f"bundle verify       : {verify_rec:9.0f} records/s   ratio {verify_rec / verify_rate:.2f}"
        "  (goal >= 0.67)"
    )
    print(
        f"bundle verify, CPU  : {verify_rate_cpu:9.0f} records/cpu-s ratio "
        f"{verify_rate_cpu / cpu_verify:.2f} to raw verify per cpu-s ({cpu_verify:.0f}); "
        f"parallel speed-up {verify_cpu / verify_s:.2f}x"
    )
    before_rec, after_rec = (n + 2) / before_s, (n + 2) / best_s
    print(
        f"verify, best of {ROUNDS}   : {after_rec:9.0f} records/s   without the agreement "
        f"checks {before_rec:.0f} records/s: {after_rec / before_rec:.2f} x  (goal >= 0.90"
        + (", JUnit and report sealed)" if args.files else ", no JUnit or report)")
    )
    pinned_rec = (n + 2) / pinned_s
    print(
        f"verify, pinned root : {pinned_rec:9.0f} records/s   plain store {after_rec:.0f} "
        f"records/s: {pinned_rec / after_rec:.2f} x  (goal >= 0.90)"
    )


if __name__ == "__main__":
    main()
