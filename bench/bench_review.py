"""QA review costs against floors measured in the same run.

1. ``vqual sign``'s core (``sign_bundle``: trust checks, full verification, append) against
   ``verify_bundle`` alone on the same bundle: signing should cost little more than verifying.
2. ``vqual audit``'s core (``collect_events``) over many bundles against reading the same
   bundles with ``read_bundle`` (the floor: decoding every record).

Run: ``.venv/bin/python bench/bench_review.py [--results 2000] [--bundles 50]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qualification.evidence.bundle import BundleWriter
from qualification.evidence.reader import read_bundle
from qualification.evidence.verify import verify_bundle
from qualification.review.audit_trail import collect_events
from qualification.review.esign import sign_bundle
from qualification.signing import Ed25519Signer, TrustStore


def _bundle(root: Path, run_id: str, signer: Ed25519Signer, results: int) -> Path:
    w = BundleWriter.create(root, "CHG0000001", run_id, signer, "bench")
    planned = [{"test_id": f"T-{i}", "target": "h", "protocol": "IQ"} for i in range(results)]
    w.append("run.start", {"mode": "qualify", "planned": planned})
    for i in range(results):
        w.append(
            "check.result",
            {
                "test_id": f"T-{i}",
                "target": "h",
                "protocol": "IQ",
                "verdict": "pass",
                "raw": None,
                "observed": i,
            },
        )
    w.seal({"pass": results}, results, results, "pass")
    return w.path


def _best(func, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=int, default=2000)
    parser.add_argument("--bundles", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        executor, reviewer = Ed25519Signer.generate(), Ed25519Signer.generate()
        store = TrustStore.empty(root / "trust.yaml")
        since = datetime.now(UTC) - timedelta(days=1)
        store.add_key(
            public_key_pem=executor.public_pem(),
            name="CI",
            identity="ci",
            roles=["executor"],
            valid_from=since,
        )
        store.add_key(
            public_key_pem=reviewer.public_pem(),
            name="Rita",
            identity="rita",
            roles=["reviewer"],
            valid_from=since,
        )
        store.save()
        trust = TrustStore.load(root / "trust.yaml")

        big = _bundle(root / "ev", "20260101T000000Z-000000", executor, args.results)
        # Interleaved, so neither side gets the warm caches alone.
        verify_times, sign_times = [], []
        for _ in range(3):
            verify_times.append(_best(lambda: verify_bundle(big, trust), 1))
            sign_times.append(_best(lambda: sign_bundle(big, reviewer, trust, "reviewed"), 1))
        verify, sign = min(verify_times), min(sign_times)
        print(
            f"sign vs verify, {args.results} results: sign {sign * 1000:.1f} ms, "
            f"verify {verify * 1000:.1f} ms, ratio {sign / verify:.2f}"
        )

        for i in range(args.bundles):
            _bundle(root / "many", f"20260102T000000Z-{i:06x}", executor, 40)
        runs = sorted((root / "many").glob("*/*"))
        floor = _best(lambda: [read_bundle(p) for p in runs])
        audit = _best(lambda: collect_events(root, [root / "many"], since))
        print(
            f"audit vs read_bundle, {args.bundles} bundles x 42 records: audit "
            f"{audit * 1000:.1f} ms, read {floor * 1000:.1f} ms, ratio {audit / floor:.2f}"
        )


if __name__ == "__main__":
    main()
