"""The lab's Master-VM image and TCG guests: build cold/warm, boot to ready.

Everything runs in a throwaway lab directory, with QEMU started directly (no libvirt, no KVM
hosts) on addresses of its own (127.0.0.160-162), so it does not disturb a running lab.
Ratios are against baselines measured in the same run:

1. build: the cold build (mmdebstrap, else debootstrap, from the machine's apt mirror; ext4
   image; initrd) is the baseline; a rebuild from the cached root (what a change to a guest
   asset costs) and a cache hit (digest unchanged) are given as fractions of it. With ``--no-cold``
   the debootstrap root is copied from the lab's cache and the rebuild is the baseline;
2. boot: one guest from QEMU start to its ready line (sshd and the guest agent up) is the
   baseline; then the first SSH command and a guest-agent ping; then two guests booting at
   once (the budget's two clones), each against the baseline.

TCG guests share the machine's two cores with everything else: the load average is printed
before and after, and figures taken under load are not the machine's best.

Run: ``.venv/bin/python bench/bench_guests.py [--no-cold] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from vqual_lab import guests
from vqual_lab.component import DEFAULT_LAB_DIR

ADDRESSES = ("127.0.0.160", "127.0.0.161", "127.0.0.162")


def row(label: str, seconds: float, baseline: float | None = None) -> None:
    ratio = f"  x{seconds / baseline:8.2f}" if baseline else ""
    print(f"  {label:<56} {seconds:9.2f} s{ratio}")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--no-cold", action="store_true", help="reuse the lab's debootstrap root")
    ap.add_argument("--repeat", type=int, default=2, help="boots of the single guest")
    ns = ap.parse_args()

    print(f"load average before: {load()}")
    lab_dir = Path(tempfile.mkdtemp(prefix="vqual-bench-guests-"))
    try:
        print("build")
        if ns.no_cold:
            src = Path(os.environ.get("VQUAL_LAB_DIR") or DEFAULT_LAB_DIR) / "cache" / "guest"
            roots = sorted(src.glob("rootfs-*"))
            if not roots:
                raise SystemExit("no cached debootstrap root in the lab dir: run without --no-cold")
            dest = lab_dir / "cache" / "guest"
            dest.mkdir(parents=True)
            subprocess.run(["cp", "-a", str(roots[-1]), str(dest)], check=True)
            cold = None
        else:
            t0 = time.perf_counter()
            guests.build_master_image(lab_dir)
            cold = time.perf_counter() - t0
            row("cold: mmdebstrap (or debootstrap) + image + initrd", cold)
            image_dirs = list((lab_dir / "cache" / "guest").glob("image-*"))
            for d in image_dirs:
                shutil.rmtree(d)
        t0 = time.perf_counter()
        image = guests.build_master_image(lab_dir)
        rebuild = time.perf_counter() - t0
        row("rebuild from the cached debootstrap root", rebuild, cold)
        base = cold or rebuild
        t0 = time.perf_counter()
        hit = guests.build_master_image(lab_dir)
        assert not hit.built
        row("cache hit (digest of the inputs only)", time.perf_counter() - t0, base)
        used = (
            int(
                subprocess.run(
                    ["du", "-sk", str(image.image)], capture_output=True, text=True, check=True
                ).stdout.split()[0]
            )
            // 1024
        )
        print(
            f"  image: {used} MiB used of {guests.IMAGE_SIZE_MIB} MiB (sparse), "
            f"initrd {image.initrd.stat().st_size // 1024} KiB, kernel {image.kernel_version}"
        )

        key = lab_dir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        pub = key.with_suffix(".pub").read_text()
        work = lab_dir / "direct"

        print("boot (QEMU -accel tcg, 384 MiB, 1 vCPU, first boot of a fresh overlay)")
        singles = []
        cpu = []
        for i in range(ns.repeat):
            g = guests.boot_direct(
                image,
                f"bench{i}",
                work,
                ssh_address=ADDRESSES[0],
                ssh_port=2360,
                authorized_key=pub,
            )
            try:
                singles.append(g.ready_seconds)
                cpu.append(g.ready_cpu_seconds)
                if i == 0:
                    t0 = time.perf_counter()
                    subprocess.run(
                        [
                            "ssh",
                            "-i",
                            str(key),
                            "-p",
                            "2360",
                            "-o",
                            "BatchMode=yes",
                            "-o",
                            "StrictHostKeyChecking=no",
                            "-o",
                            "UserKnownHostsFile=/dev/null",
                            "-o",
                            "LogLevel=ERROR",
                            f"root@{ADDRESSES[0]}",
                            "true",
                        ],
                        check=True,
                        timeout=300,
                    )
                    first_ssh = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    g.agent().ping()
                    ping = time.perf_counter() - t0
            finally:
                g.stop()
        one = statistics.median(singles)
        row(f"one guest to ready (median of {len(singles)})", one)
        row(
            "  its QEMU's CPU time to ready (what an idle core would take)",
            statistics.median(cpu),
            one,
        )
        row("  then first SSH command (key exchange under TCG)", first_ssh, one)
        row("  then one guest-agent ping", ping, one)

        results: dict[str, float] = {}

        def boot(name: str, address: str, port: int) -> None:
            g = guests.boot_direct(
                image, name, work, ssh_address=address, ssh_port=port, authorized_key=pub
            )
            results[name] = g.ready_seconds
            results[name + " CPU"] = g.ready_cpu_seconds
            g.stop()

        threads = [
            threading.Thread(target=boot, args=(f"pair{i}", ADDRESSES[i + 1], 2361 + i))
            for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name, seconds in sorted(results.items()):
            what = "QEMU CPU time" if name.endswith(" CPU") else "to ready"
            row(f"two guests at once: {name.removesuffix(' CPU')} {what}", seconds, one)
    finally:
        shutil.rmtree(lab_dir, ignore_errors=True)
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
