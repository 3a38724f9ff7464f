"""The vSphere OQ protocol: what one run on throwaway VMs costs, against one SOAP round trip.

Starts a simulated vCenter (4 hosts) and a simulated standalone ESXi in a throwaway lab
directory on addresses of their own (127.0.0.148-149, ports 28656-28657), so a running lab is
not disturbed. Ratios are against the baseline of one round trip
(``ServiceInstance.CurrentTime``) measured in the same run:

1. one VM's state as an OQ step records it, in one read (``vm_state``), against the same
   state through the generic facts methods (``vm_exists``, ``vm``, ``snapshots``,
   ``vm_tags``: what the protocol's first version did before and after every step);
2. the whole protocol (every OQ test, template clone included) on the vCenter and on the
   standalone ESXi, with the number of actions it recorded.

Run: ``.venv/bin/python bench/bench_vsphere_oq.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vqual_lab import vcsim
from vqual_lab.component import LabContext
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.endpoint import Endpoint
from qualification.platforms.vsphere.oq import TAG_KEY, OqSettings, run_protocol

LAB_BIN = Path("/var/lib/vqual-lab/vcsim/bin")


def timed(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def row(label: str, seconds: float, baseline: float) -> None:
    print(f"  {label:<62} {seconds * 1000:9.1f} ms  x{seconds / baseline:8.1f}")


def generic_state(p: VspherePlatform, vm: str) -> dict[str, Any]:
    """The VM's state through the generic facts methods (several reads)."""
    facts = p.vm(vm) if p.vm_exists(vm) else None
    snaps = p.snapshots(vm) if facts else []
    tags = [t for t in p.vm_tags(TAG_KEY) if t["name"] == vm]
    return {"facts": facts, "snapshots": snaps, "tags": tags}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ns = ap.parse_args()

    lab_dir = Path(tempfile.mkdtemp(prefix="vqual-bench-vsphere-oq-"))
    if LAB_BIN.is_dir():  # the lab's build: a cache hit instead of a build
        shutil.copytree(LAB_BIN, lab_dir / "vcsim" / "bin")
    ctx = LabContext(lab_dir=lab_dir, run_dir=lab_dir / "run", repo_root=None, log=lambda _m: None)
    vc = dataclasses.replace(
        vcsim.DEFAULT_VCENTER, key="benchvc", address="127.0.0.148", port=28656
    )
    esx = dataclasses.replace(vcsim.DEFAULT_ESXI, key="benchesx", address="127.0.0.149", port=28657)
    component = vcsim.VcsimComponent((vc, esx))
    try:
        status = component.up(ctx)
        assert status.state == "running", status
        endpoints = {}
        for inst, dc, cluster in ((vc, "DC0", "DC0_C0"), (esx, None, None)):
            user, pwd = vcsim.read_credentials(ctx, inst)
            endpoints[inst.key] = Endpoint(
                inst.address,
                user,
                pwd,
                port=inst.port,
                validate_certs=False,
                datacenter=dc,
                cluster=cluster,
            )
        with VspherePlatform(endpoints["benchvc"]) as p:
            baseline = timed(lambda: p.si.CurrentTime(), ns.repeat * 10)
            print(f"baseline: one round trip (CurrentTime) {baseline * 1000:.2f} ms")
            vm = "DC0_C0_RP0_VM0"
            row(
                "VM state, one read (vm_state)",
                timed(lambda: p.vm_state(vm, TAG_KEY), ns.repeat),
                baseline,
            )
            row(
                "VM state, generic facts methods",
                timed(lambda: generic_state(p, vm), ns.repeat),
                baseline,
            )
            row(
                "hosts' maintenance and load (host_runtime)",
                timed(p.host_runtime, ns.repeat),
                baseline,
            )
            row("hosts' facts (host_details)", timed(p.host_details, ns.repeat), baseline)
        for key, settings in (
            ("benchvc", OqSettings(template="DC0_C0_RP0_VM3")),
            ("benchesx", OqSettings(template="ha-host_VM1")),
        ):
            runs: list[float] = []
            actions = 0
            for n in range(ns.repeat):
                with VspherePlatform(endpoints[key]) as p:
                    t0 = time.perf_counter()
                    result = run_protocol(p, f"20260101T000000Z-bench{n:02d}", settings=settings)
                    runs.append(time.perf_counter() - t0)
                    actions = len(result.actions)
            row(f"OQ protocol on {key} ({actions} actions)", statistics.median(runs), baseline)
    finally:
        component.down(ctx)
        shutil.rmtree(lab_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
