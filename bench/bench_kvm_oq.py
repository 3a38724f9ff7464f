"""KVM OQ on the lab: live migration interruption and backup/restore, repeated.

Needs the lab up (`scripts/lab up kvm guests`) and one free slot in the VM budget. Prints, per
migration (idle and under memory load, alternating), the measured interruption against the
same guest's largest heartbeat gap just before the migration (same-run baseline), and the
migration's wall time; then one backup/restore.

    .venv/bin/python bench/bench_kvm_oq.py [--migrations N]
"""

from __future__ import annotations

import argparse
import os
import time

from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.guest_backup import run_backup_restore
from qualification.platforms.libvirt.guest_migrate import run_migration_heartbeat
from qualification.timeutil import new_run_id

KVM1 = "qemu+tcp://127.0.0.11/system"
KVM2 = "qemu+tcp://127.0.0.12/system"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--migrations", type=int, default=3)
    parser.add_argument("--load-mib", type=int, default=64,
                        help="memory the guest keeps dirtying (0: idle guest)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("run  load_mib  interruption_s  baseline_gap_s  ratio  guest_frozen_s  migration_s  total_s")
    # Idle and loaded runs alternate, so load on the machine hits both alike.
    for i in range(args.migrations * 2):
        load = args.load_mib if i % 2 else 0
        t0 = time.monotonic()
        with LibvirtPlatform(KVM1) as kvm1:
            r = run_migration_heartbeat(kvm1, KVM2, template="master", run_id=new_run_id(),
                                          unsafe=True, load_mib=load)
        v = r.value
        if v["verdict"] != "pass":
            print(f"{i + 1}    {v['verdict']}: {v['reason']}")
            continue
        ratio = v["interruption_s"] / v["baseline_gap_s"] if v["baseline_gap_s"] else 0.0
        print(f"{i + 1:<4} {load:<9} {v['interruption_s']:<15} {v['baseline_gap_s']:<15} {ratio:<6.1f} "
              f"{v['guest_frozen_s']:<15} {v['migration_s']:<12} {time.monotonic() - t0:.1f}")
    t0 = time.monotonic()
    with LibvirtPlatform(KVM1) as kvm1:
        r = run_backup_restore(kvm1, template="master", run_id=new_run_id())
    steps = {a["name"]: a for a in r.actions}
    backup = steps.get("vm.backup", {}).get("after", {})
    print(f"backup/restore {r.value['verdict']}: backup job {backup.get('job_ms')} ms, "
          f"total {time.monotonic() - t0:.1f} s (two guest boots)")


if __name__ == "__main__":
    main()
