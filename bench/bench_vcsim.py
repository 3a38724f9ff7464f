"""The lab's VMware simulator and WinRM stand-in: build, start, first answer, stop.

Everything runs in a throwaway lab directory and on addresses of its own (127.0.0.241/.242,
127.0.0.251), so it does not disturb a running lab. Ratios are against baselines measured in
the same run:

1. build: cold (empty Go build cache) is the baseline; a cache hit (binary present, digest
   unchanged) and a rebuild with a warm Go cache (what a change to main.go or a patch costs)
   are given as fractions of it;
2. start: both simulators up until their SDK answers, against the baseline of exec'ing the
   same binary with ``-h`` (loading it, no model, no TLS key); then one pyVmomi login and
   ``about`` read, and ``down``;
3. the WinRM stand-in: up until it answers, and one ``run_ps`` through pywinrm against the
   baseline of one unauthenticated HTTP round trip to it.

Run: ``.venv/bin/python bench/bench_vcsim.py [--no-cold] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from vqual_lab import vcsim
from vqual_lab.component import LabContext
from vqual_lab.winrm_standin import WinRMStandIn


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` runs."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def row(label: str, seconds: float, baseline: float | None = None) -> None:
    ratio = f"  x{seconds / baseline:8.2f}" if baseline else ""
    print(f"  {label:<52} {seconds:9.3f} s{ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-cold", action="store_true", help="skip the cold build (minutes)")
    ap.add_argument("--repeat", type=int, default=3)
    ns = ap.parse_args()

    lab_dir = Path(tempfile.mkdtemp(prefix="vqual-bench-lab-"))
    ctx = LabContext(lab_dir=lab_dir, run_dir=lab_dir / "run", repo_root=None, log=lambda _m: None)
    instances = (
        dataclasses.replace(vcsim.DEFAULT_VCENTER, address="127.0.0.241", port=28443),
        dataclasses.replace(vcsim.DEFAULT_ESXI, address="127.0.0.242", port=28444),
    )
    comp = vcsim.VcsimComponent(instances)
    standin = WinRMStandIn(address="127.0.0.251", port=25985)
    try:
        print("build")
        if not ns.no_cold:
            cold = vcsim.build(lab_dir)
            row("cold (empty Go cache) = baseline", cold.seconds)
        else:
            # The lab's Go cache, copied: the standard library hits, govmomi compiles again
            # (its build directory is part of the cache keys; -trimpath would avoid that but
            # rebuilds the standard library, twice the CPU of a cold build).
            real = Path("/var/lib/vqual-lab/vcsim/gocache")
            if real.is_dir():
                shutil.copytree(real, lab_dir / "vcsim" / "gocache")
            cold = vcsim.build(lab_dir)
            row("first build in a new lab dir, Go cache copied = baseline", cold.seconds)
        hit = vcsim.build(lab_dir)
        assert not hit.built
        row("cache hit (digest unchanged)", hit.seconds, cold.seconds)
        cold.binary.unlink()
        warm = vcsim.build(lab_dir)
        assert warm.built
        row("rebuild with a warm Go cache", warm.seconds, cold.seconds)
        print(f"  binary {warm.binary.stat().st_size / 1e6:.1f} MB")

        print("start (both instances until the SDK answers)")

        def exec_help() -> None:
            subprocess.run([str(warm.binary), "-h"], capture_output=True, check=False)

        base = timed(exec_help, ns.repeat)
        row("exec the binary with -h = baseline", base)
        ups: list[float] = []
        downs: list[float] = []
        logins: list[float] = []
        for _ in range(ns.repeat):
            t0 = time.perf_counter()
            st = comp.up(ctx)
            ups.append(time.perf_counter() - t0)
            assert st.state == "running", st
            t0 = time.perf_counter()
            si = vcsim.connect(ctx, instances[0])
            assert si.RetrieveContent().about.apiType == "VirtualCenter"
            vcsim.disconnect(si)
            logins.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            st = comp.down(ctx)
            downs.append(time.perf_counter() - t0)
            assert st.state == "stopped", st
        row("up: vCenter (4 hosts) + ESXi answering", statistics.median(ups), base)
        row("pyVmomi login + about (vCenter)", statistics.median(logins), base)
        row("down (both, by PID)", statistics.median(downs), base)

        print("WinRM stand-in")
        t0 = time.perf_counter()
        st = standin.up(ctx)
        row("up until it answers", time.perf_counter() - t0)
        assert st.state == "running", st

        def http_401() -> None:
            conn = http.client.HTTPConnection(standin.address, standin.port, timeout=5)
            conn.request("POST", "/wsman", body=b"", headers={"Content-Length": "0"})
            conn.getresponse().read()
            conn.close()

        import winrm

        session = winrm.Session(
            standin.url,
            auth=standin.read_credentials(ctx),
            transport="basic",
            server_cert_validation="ignore",
        )
        rt = timed(http_401, ns.repeat * 5)
        row("one HTTP round trip (401) = baseline", rt)
        ps = timed(lambda: session.run_ps("Get-VMHost | ConvertTo-Json"), ns.repeat * 5)
        row("run_ps Get-VMHost (5 WS-Man requests)", ps, rt)
    finally:
        comp.down(ctx)
        standin.down(ctx)
        shutil.rmtree(lab_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
