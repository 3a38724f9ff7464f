"""Verifying a format v2 bundle with its trusted-time checks against the v1 path, same run.

Starts the lab's TSA (OpenSSL ``ts``, its own CA) in a throwaway directory, writes a bundle of
N ``check.result`` records with BundleWriter whose trust store names that TSA (so ``run.end``
and one review signature get their ``timestamp`` records), seals a JUnit and a report rendered
from the records (format v2 refuses placeholders; not timed), then verifies it in interleaved
rounds: "v1 path" with the format v2 checks switched off (trusted time: the token checks and
the dropped-record check, replaced by a no-op, which is the verifier as it was), "v2" whole.
Prints the best of each, by wall clock and by CPU seconds of this process and its verify
workers (less sensitive to other load on a shared machine), the ratios, and what the
trusted-time checks themselves took. Goal: v2 >= 0.9 x the v1 path.

    .venv/bin/python bench/bench_trusted_time.py [--records N] [--workers W] [--rounds R]
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

from vqual_lab.tsa import running_tsa

from qualification.evidence import trusted_time
from qualification.evidence.bundle import BundleWriter, append_signature
from qualification.evidence.reader import read_bundle
from qualification.evidence.verify import verify_bundle
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.signing import Ed25519Signer, TrustStore
from qualification.signing.trusted_tsa import TsaEntry

TARGETS = [f"kvm{i:02d}.lab.example" for i in range(12)]


def payload(i: int, writer: BundleWriter) -> dict[str, Any]:
    """A check.result as the callback writes it: about 1 KB of canonical JSON."""
    raw = f"server 10.0.0.{i % 250} iburst\nmakestep 1.0 3\nrtcsync\n" * 3
    return {
        "test_id": f"KVM-{i % 20 + 1:02d}", "title": "chrony uses the approved time servers",
        "protocol": "IQ", "requirements": ["URS-SEC-01"], "target": TARGETS[i % len(TARGETS)],
        "check": "file_lines_match", "method": "host.file /etc/chrony/chrony.conf",
        "expected": {"op": "superset", "value": ["rtcsync"]},
        "observed": {"servers": [f"10.0.0.{i % 250}"], "rtcsync": True},
        "verdict": "pass", "reason": None, "raw": writer.store_raw(raw),
        "started": "2026-03-01T10:00:00.000000Z", "finished": "2026-03-01T10:00:00.012000Z",
        "duration_ms": 12, "deviation": None,
    }


def write_bundle(root: Path, n: int, tsa: TsaEntry) -> tuple[Path, TrustStore]:
    executor, reviewer = Ed25519Signer.generate(), Ed25519Signer.generate()
    trust = TrustStore.empty(root / "trust.yaml")
    since = datetime(2020, 1, 1, tzinfo=UTC)
    trust.add_key(public_key_pem=executor.public_pem(), name="Bench Executor",
                  identity="bench@example.com", roles=["executor"], valid_from=since)
    trust.add_key(public_key_pem=reviewer.public_pem(), name="Bench Reviewer",
                  identity="review@example.com", roles=["reviewer"], valid_from=since)
    trust.tsa = tsa
    trust.save()
    w = BundleWriter.create(root / "evidence", "CHG0000001", "bench", executor, "bench")
    w.tsa = tsa
    planned = [{"test_id": f"KVM-{i % 20 + 1:02d}", "target": t, "protocol": "IQ"}
               for i, t in enumerate(TARGETS)]
    # One result per planned test, the rest repeat them: the agreement checks see N rows.
    w.append("run.start", {"planned": planned, "mode": "qualify"})
    datas = [payload(i, w) for i in range(min(n, 1000))]
    for start in range(0, n, 10_000):
        w.append_many("check.result",
                      [datas[i % len(datas)] for i in range(start, min(n, start + 10_000))])
        w.sync()
    records = read_bundle(w.path).records
    w.add_file("junit.xml", render_junit(records).encode("utf-8"))
    w.add_file("report.html", render_report(records).encode("utf-8"))
    w.seal({"pass": n}, len(planned), n, "pass")
    append_signature(w.path, reviewer, {"meaning": "reviewed", "name": "Bench Reviewer",
                                        "roles": ["reviewer"]}, tsa=tsa)
    return w.path, TrustStore.load(root / "trust.yaml")


def cpu_all() -> float:
    """CPU seconds of this process and its finished children (the verify workers)."""
    own = os.times()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.user + own.system + kids.ru_utime + kids.ru_stime


#: Seconds the trusted-time checks took in the last v2 round.
CHECKS = [0.0]


def timed(path: Path, trust: TrustStore, workers: int | None, *, v2: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of one verify_bundle, with or without the format v2 checks."""
    saved = trusted_time.check_bundle

    def measured(*args: Any) -> None:
        t = time.perf_counter()
        saved(*args)
        CHECKS[0] = time.perf_counter() - t

    def skipped(*args: Any) -> None:
        return None

    trusted_time.check_bundle = measured if v2 else skipped  # type: ignore[assignment]
    try:
        t0, c0 = time.perf_counter(), cpu_all()
        res = verify_bundle(path, trust, workers=workers)
        took = (time.perf_counter() - t0, cpu_all() - c0)
    finally:
        trusted_time.check_bundle = saved
    if res.status != "valid" or (v2 and len(res.trusted_time) != 2):
        raise SystemExit(f"bench bundle did not verify: {res.problems[:3]} {res.trusted_time}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_tsa(
        Path(tmp) / "tsa", address="127.0.0.90", port=0
    ) as proc:
        tsa = TsaEntry("bench TSA", proc.url, proc.ca_file.read_text(), datetime.now(UTC))
        t0 = time.perf_counter()
        path, trust = write_bundle(Path(tmp), args.records, tsa)
        print(f"wrote {args.records + 4} records (2 timestamp records) in "
              f"{time.perf_counter() - t0:.1f} s")
        best = {False: [float("inf")] * 2, True: [float("inf")] * 2}
        checks = float("inf")
        for i in range(args.rounds):
            # Interleaved, alternating which goes first: the machine's load shifts both alike.
            for v2 in (False, True) if i % 2 == 0 else (True, False):
                wall, cpu = timed(path, trust, args.workers, v2=v2)
                best[v2] = [min(best[v2][0], wall), min(best[v2][1], cpu)]
                if v2:
                    checks = min(checks, CHECKS[0])
    lines = args.records + 5
    for label, k in (("wall", 0), ("CPU", 1)):
        v1_rate, v2_rate = lines / best[False][k], lines / best[True][k]
        unit = "records/s" if k == 0 else "records/cpu-s"
        print(f"verify, v1 path, {label:4} : {v1_rate:9.0f} {unit} (best of {args.rounds})")
        print(f"verify, v2, {label:4}      : {v2_rate:9.0f} {unit} (best of {args.rounds})")
        print(f"ratio v2 / v1 path, {label:4}: {v2_rate / v1_rate:.3f} x  (goal >= 0.90: "
              f"{'met' if v2_rate / v1_rate >= 0.9 else 'NOT met'})")
    print(f"the trusted-time checks themselves: {checks * 1000:.1f} ms "
          f"({checks / best[True][0]:.2%} of a v2 verify)")


if __name__ == "__main__":
    main()
