"""The rolling-patch orchestrator's own time per host, beyond the platform's operations.

A private VMware simulator (3 or more hosts) is patched end to end with the vSphere stand-in
executor and the platform requalifier, writing a real signed bundle and journal. Every call
into the platform and the executor is timed through a wrapper; the orchestrator's own time is
the run's wall time minus that (journal fsyncs, evidence signing, planning, bookkeeping).

Prints, per run: wall time, time inside platform/executor calls (the baseline, measured in the
same run), the orchestrator's own time per host, and own/baseline as a ratio.

Run: ``.venv/bin/python bench/bench_rollout_orchestrator.py [--hosts 3] [--repeat 2]`` (needs
the lab's simulator binary, /var/lib/vqual-lab/vcsim/bin, or a Go toolchain to build it).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml

from qualification.execution.keys import create_trusted_key
from qualification.execution.recorder import open_signer
from vqual_lab import vcsim
from vqual_lab.component import LabContext
from qualification.platforms.base import HypervisorPlatform
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.endpoint import Endpoint
from qualification.rollout.change import load_change
from qualification.rollout.evidence import PatchEvidence
from qualification.platforms.vsphere.patch import VsphereStandInExecutor
from qualification.rollout.orchestrator import Orchestrator
from qualification.rollout.requalify import PlatformRequalifier

LAB_BIN = Path("/var/lib/vqual-lab/vcsim/bin")


class Clock:
    def __init__(self) -> None:
        self.inside = 0.0
        self.calls = 0
        self._local = threading.local()
        self._lock = threading.Lock()

    def timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            # Only the outermost call counts (the executor calls the platform inside).
            depth = getattr(self._local, "depth", 0)
            self._local.depth = depth + 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._local.depth = depth
                if depth == 0:
                    with self._lock:
                        self.inside += time.perf_counter() - t0
                        self.calls += 1
        return call


class TimedPlatform:
    def __init__(self, wrapped: HypervisorPlatform, clock: Clock) -> None:
        self.wrapped = wrapped
        self.platform = wrapped.platform
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.wrapped, name)
        return self._clock.timed(attr) if callable(attr) else attr


class TimedExecutor(VsphereStandInExecutor):
    def __init__(self, factory: Callable[[], HypervisorPlatform], clock: Clock) -> None:
        super().__init__(factory, poll_s=0.05)
        self.installed = clock.timed(self.installed)  # type: ignore[method-assign]
        self.apply = clock.timed(self.apply)  # type: ignore[method-assign]
        self.reboot = clock.timed(self.reboot)  # type: ignore[method-assign]
        self.health = clock.timed(self.health)  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.175", 0))
        port = int(sock.getsockname()[1])
    inst = dataclasses.replace(vcsim.DEFAULT_VCENTER, key="bench", inventory_host="bench-vc",
                               address="127.0.0.175", port=port, cluster_hosts=args.hosts,
                               hardware={"*": vcsim.DEFAULT_VCENTER.hardware["*"]})
    if LAB_BIN.is_dir():
        shutil.copytree(LAB_BIN, tmp / "lab" / "vcsim" / "bin")
    ctx = LabContext(lab_dir=tmp / "lab", run_dir=tmp / "lab" / "run", repo_root=None,
                     log=lambda _m: None)
    component = vcsim.VcsimComponent((inst,))
    status = component.up(ctx)
    try:
        if status.state != "running":
            print(f"simulator did not start: {status.detail}")
            return 1
        user, pwd = vcsim.read_credentials(ctx, inst)
        endpoint = Endpoint(inst.address, user, pwd, port=inst.port, validate_certs=False,
                            datacenter="DC0", cluster="DC0_C0")
        state = tmp / "state"
        create_trusted_key(state / "keys" / "executor.pem", state, name="Bench executor",
                           identity="bench@example.org", roles=["executor"], passphrase=None,
                           throwaway=True, valid_days=1)
        signer = open_signer(state / "keys" / "executor.pem")
        print(f"{'run':>4} {'wall s':>8} {'platform s':>11} {'calls':>6} "
              f"{'own s/host':>11} {'own/platform':>13}")
        for n in range(1, args.repeat + 1):
            change_path = tmp / f"change-{n}.yaml"
            change_path.write_text(yaml.safe_dump({
                "apiVersion": "vqual.change/v1", "change_id": f"CHG{9100000 + n:07d}",
                "title": "bench", "risk": "high", "cluster": "DC0_C0",
                "target": {"packages": {"esx-standin-patch": f"9.0.{n}"}},
                "window": {"start": "2020-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"},
                # One migration at a time, so platform time and wall time add up.
                "max_parallel_migrations": 1,
                # Risk high needs a canary or a waiver; the numbers in docs/rolling-patch.md
                # were measured without a canary, so this keeps the same work.
                "canary_waiver": {"reason": "the bench times the orchestrator, not the canary"},
            }))
            change = load_change(change_path)
            clock = Clock()

            def factory(clock: Clock = clock) -> HypervisorPlatform:
                return TimedPlatform(VspherePlatform(endpoint), clock)

            evidence = PatchEvidence(tmp / "evidence", signer, "bench", state_dir=state)
            orch = Orchestrator(factory, TimedExecutor(factory, clock), PlatformRequalifier(),
                                change, state, evidence)
            t0 = time.perf_counter()
            outcome = orch.run()
            wall = time.perf_counter() - t0
            if outcome.status != "done":
                print(f"run {n} ended {outcome.status}: {outcome.deviation}")
                return 1
            hosts = max(len(outcome.committed), 1)
            own = wall - clock.inside
            print(f"{n:>4} {wall:8.2f} {clock.inside:11.2f} {clock.calls:6d} "
                  f"{own / hosts:11.3f} {own / clock.inside:13.2f}")
        return 0
    finally:
        component.down(ctx)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
