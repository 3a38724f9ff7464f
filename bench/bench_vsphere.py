"""The vSphere probe: what one target's observations cost, against one SOAP round trip.

Starts a simulated vCenter (4 hosts) in a throwaway lab directory on an address of its own
(127.0.0.149), so it does not disturb a running lab. Ratios are against the baseline of one
round trip (``ServiceInstance.CurrentTime``) measured in the same run:

1. login and logout (what every probe call pays once);
2. every host's facts through one PropertyCollector read (``host_details``, what the
   ``hosts`` method answers) against reading the same 8 properties per host one attribute at
   a time through pyVmomi's lazy properties (what a naive adapter would do);
3. one probe call answering the requests of specs/vsphere-cluster.yaml for a vCenter target.

Run: ``.venv/bin/python bench/bench_vsphere.py [--repeat 5]``.
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

from qualification.execution.evaluation import requests_for
from vqual_lab import vcsim
from vqual_lab.component import LabContext
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.endpoint import Endpoint
from qualification.platforms.vsphere.observations import probe
from qualification.spec.loader import load_spec

REPO = Path(__file__).resolve().parents[1]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
LAB_BIN = Path("/var/lib/vqual-lab/vcsim/bin")
NAIVE_PATHS = (
    "hardware.systemInfo.vendor",
    "hardware.systemInfo.model",
    "hardware.biosInfo.biosVersion",
    "config.product.build",
    "config.lockdownMode",
    "summary.hardware.cpuModel",
    "hardware.memorySize",
    "runtime.connectionState",
)


def timed(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def row(label: str, seconds: float, baseline: float) -> None:
    print(f"  {label:<58} {seconds * 1000:9.1f} ms  x{seconds / baseline:8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ns = ap.parse_args()

    lab_dir = Path(tempfile.mkdtemp(prefix="vqual-bench-vsphere-"))
    if LAB_BIN.is_dir():  # the lab's build: a cache hit instead of a build
        shutil.copytree(LAB_BIN, lab_dir / "vcsim" / "bin")
    ctx = LabContext(lab_dir=lab_dir, run_dir=lab_dir / "run", repo_root=None, log=lambda _m: None)
    inst = dataclasses.replace(
        vcsim.DEFAULT_VCENTER, key="bench", address="127.0.0.149", port=28649
    )
    component = vcsim.VcsimComponent((inst,))
    try:
        status = component.up(ctx)
        assert status.state == "running", status
        user, pwd = vcsim.read_credentials(ctx, inst)
        ep = Endpoint(inst.address, user, pwd, port=inst.port, validate_certs=False,
                      datacenter="DC0", cluster="DC0_C0")
        spec = load_spec(COLLECTION / "specs" / "vsphere-cluster.yaml")
        tests = [
            {"test_id": t.id, "check": t.check, "params": dict(t.params),
             "expect": t.expect.to_json()}
            for t in spec.tests if "vcenter" in t.applies_to and t.check != "vsphere_hcl"
        ]
        requests = requests_for(tests).by_probe["vsphere"]
        with VspherePlatform(ep) as platform:
            base = timed(lambda: platform.si.CurrentTime(), ns.repeat)
            hosts = [obj for obj, _props in platform._hosts_raw()]

            def naive() -> None:
                for host in hosts:
                    for path in NAIVE_PATHS:
                        value: Any = host
                        for part in path.split("."):
                            value = getattr(value, part)

            print(f"vSphere probe on a simulated vCenter ({len(hosts)} hosts), median of {ns.repeat}")
            row("one round trip (CurrentTime) = baseline", base, base)
            row("login + logout", timed(lambda: VspherePlatform(ep).close(), ns.repeat), base)
            row("host facts through the PropertyCollector (host_details)",
                timed(platform.host_details, ns.repeat), base)
            row("same 8 properties per host, one attribute at a time",
                timed(naive, ns.repeat), base)
        row(f"probe: {len(tests)} tests of the spec, {len(requests)} requests, incl. login",
            timed(lambda: probe(ep, requests), ns.repeat), base)
    finally:
        component.down(ctx)
        shutil.rmtree(lab_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
