"""The mutation sweep (tests/unit/evidence/test_mutations.py, VQ-45) timed: every registered
mutation class, ``--instances`` seeded instances each, applied to a copy of the honest
three-run change (the trust-root and trusted-time classes: of the trusted change, with a TSA
started for the bench on port 0) and judged by ``verify_change`` in this process.

Prints, per class, instances tried and detected and the time per instance; then the sweep's
rate in instances per second, and how much of it is verifying (the rest is copying the change
and applying the mutation). Exits 1 if any instance is not detected.

Run: ``.venv/bin/python bench/bench_mutations.py [--instances 20]``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vqual_lab.tsa import running_tsa

from qualification.signing.trusted_tsa import TsaEntry
from tests.unit.evidence.evidence_testlib import SINCE
from tests.unit.evidence.mutation_classes import REGISTRY
from tests.unit.evidence.mutation_testlib import Base, copy_case, judge, missed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_tsa(
        Path(tmp) / "tsa", address="127.0.0.89", port=0
    ) as tsa:
        root = Path(tmp)
        t0 = time.perf_counter()
        bases = {"plain": Base.build(root / "base")}
        t1 = time.perf_counter()
        entry = TsaEntry("site TSA", tsa.url, tsa.ca_file.read_text(), SINCE)
        bases["trusted"] = Base.build_trusted(root / "trusted", entry)
        print(f"honest change built in {t1 - t0:.2f} s, "
              f"the trusted one in {time.perf_counter() - t1:.2f} s")
        total, verifying, undetected = 0.0, 0.0, 0
        for name in sorted(REGISTRY):
            cls, found, start = REGISTRY[name], 0, time.perf_counter()
            for n in range(args.instances):
                case = copy_case(bases[cls.base], root / f"{name}-{n}")
                expect = cls.apply(case, random.Random(f"{name}/{n}"))
                v0 = time.perf_counter()
                gaps = missed(judge(case), expect)
                verifying += time.perf_counter() - v0
                found += not gaps
                shutil.rmtree(case.change.parent)
            took = time.perf_counter() - start
            total += took
            undetected += args.instances - found
            per = 1000 * took / args.instances
            print(f"{name:34} tried {args.instances:3}  detected {found:3}  {per:6.1f} ms each")
        count = len(REGISTRY) * args.instances
        print(
            f"{len(REGISTRY)} classes x {args.instances} instances = {count} in {total:.1f} s: "
            f"{count / total:.1f} instances per second ({100 * verifying / total:.0f}% verifying)"
        )
    return 1 if undetected else 0


if __name__ == "__main__":
    sys.exit(main())
