"""The KVM lab's start and stop times, measured in one run against baselines from the same run.

Runs its own KVM cluster in its own lab dir on its own addresses (default 127.0.0.131/.132),
so it never disturbs a lab that is up. Reports:

1. ``up`` warm (base cached) and ``down``, ``--repeat`` times;
2. a host's first libvirt connection with capabilities, with the QEMU probe the lab keeps
   against the baseline without it (the ratio is what keeping it buys);
3. with ``--fresh``: ``up`` from an empty lab dir (debootstrap included), and warm ``up`` as
   a ratio of it. The goals: fresh under 180 s, warm under 40 s.

Run: ``.venv/bin/python bench/bench_lab_kvm.py [--lab-dir DIR] [--base-from DIR] [--fresh]``.
``--base-from /var/lib/vqual-lab`` hard-links an existing base instead of building one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lab-dir", default="/var/lib/vqual-lab-bench")
    ap.add_argument("--base-from", default=None, help="lab dir whose cached base to hard-link")
    ap.add_argument("--hosts", default="kvm1=127.0.0.131,kvm2=127.0.0.132")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fresh", action="store_true", help="also time up from an empty lab dir")
    args = ap.parse_args()

    lab_dir = Path(args.lab_dir)
    os.environ["VQUAL_LAB_DIR"] = str(lab_dir)
    os.environ["VQUAL_LAB_KVM_HOSTS"] = args.hosts
    os.environ["VQUAL_LAB_INVENTORY_DIR"] = str(lab_dir / "inventory")

    import libvirt

    from vqual_lab import manager
    from vqual_lab.kvm import KvmCluster, Paths

    ctx = manager.context()
    kvm = KvmCluster()
    paths = Paths.of(ctx)

    def timed(fn: object) -> float:
        started = time.monotonic()
        result = fn()  # type: ignore[operator]
        took = time.monotonic() - started
        if hasattr(result, "state") and result.state not in ("running", "stopped"):
            sys.exit(f"failed: {result.detail}\n" + "\n".join(result.log_tail))
        return took

    kvm.down(ctx)
    fresh = None
    if args.fresh:
        shutil.rmtree(lab_dir, ignore_errors=True)
        fresh = timed(lambda: kvm.up(ctx))
        kvm.down(ctx)
    elif not paths.base.exists() and args.base_from:
        paths.base.parent.mkdir(parents=True, exist_ok=True)
        src = Path(args.base_from) / "cache" / "kvm-base"
        subprocess.run(["cp", "-al", str(src), str(paths.base)], check=True)

    ups, downs = [], []
    for _ in range(args.repeat):
        ups.append(timed(lambda: kvm.up(ctx)))
        downs.append(timed(lambda: kvm.down(ctx)))

    def first_connection() -> float:
        kvm.up(ctx)
        started = time.monotonic()
        conn = libvirt.open(kvm.hosts[0].libvirt_uri)
        conn.getCapabilities()
        conn.close()
        took = time.monotonic() - started
        kvm.down(ctx)
        return took

    first_connection()  # makes sure a probe is kept (down keeps it)
    with_cache = first_connection()
    shutil.rmtree(paths.caps_cache, ignore_errors=True)
    without_cache = first_connection()  # the baseline; down keeps the new probe again

    print(f"kvm up warm    median {statistics.median(ups):6.2f} s  (runs: {_fmt(ups)})")
    print(f"kvm down       median {statistics.median(downs):6.2f} s  (runs: {_fmt(downs)})")
    print(
        f"first libvirt connection + capabilities: {with_cache:.2f} s with the kept probe, "
        f"{without_cache:.2f} s without (baseline): {without_cache / with_cache:.1f}x faster"
    )
    if fresh is not None:
        print(
            f"kvm up fresh   {fresh:6.2f} s (goal < 180 s); warm up is "
            f"{statistics.median(ups) / fresh:.3f} of fresh"
        )


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
