"""A full rolling patch of a 16-host, 1,000-VM cluster on VMware's simulator, watched by the
independent observer of the rolling-patch tests, with the orchestrator's own time measured.

The bench starts its own simulator (``vqual_lab.vcsim``; 127.0.0.161:29443 by default, its own
lab directory under a temporary directory; stopped by PID at the end) with 16 cluster hosts
and about 1,000 VMs. The change patches every host with the vSphere stand-in executor (a mark
on the host, no software) and the platform requalifier, writing a real signed bundle and
journal; it carries anti-affinity groups of three VMs on three different hosts, and one
group with a VM on every host whose members are all approved to stop (none of them can move
while the others run, so each host's member is stopped for its host's patch and started
again).

The observer (tests/integration/rollout_observer.py) polls the simulator on its own connection
from a separate process (so its polling takes no CPU time from the orchestrator's process);
its record is judged with ``check_safety``. Every platform and executor call is timed through
a wrapper; the orchestrator's own time is the run's wall time minus the time inside them, and
a cProfile of the run (``--profile``) says where that own time goes; the time inside the
calls is also summed per call name.

Run: ``.venv/bin/python bench/bench_rolling_patch_scale.py [--hosts 16] [--vms 1000]``.
Goals (issue 19): no safety violation, every host patched once, the orchestrator's own time
under 10 % of the run.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import multiprocessing
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import yaml
from bench_rollout_orchestrator import Clock, TimedExecutor, TimedPlatform
from vqual_lab import vcsim
from vqual_lab.component import LabContext

from qualification.evidence.verify import verify_bundle
from qualification.execution.recorder import open_signer
from qualification.platforms.base import HypervisorPlatform, vm_summaries
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.endpoint import Endpoint
from qualification.platforms.vsphere.patch import read_host_mark
from qualification.review.signed import load_trust
from qualification.rollout.change import load_change
from qualification.rollout.evidence import PatchEvidence
from qualification.rollout.orchestrator import Orchestrator
from qualification.rollout.requalify import PlatformRequalifier
from tests.integration.rollout_observer import PlatformObserver, Snapshot, check_safety

LAB_BIN = Path("/var/lib/vqual-lab/vcsim/bin")
CLUSTER = "DC0_C0"


class UnionClock(Clock):
    """Time during which at least one platform or executor call is running: with parallel
    migrations, calls overlap, and their sum would exceed the wall time."""

    def __init__(self) -> None:
        super().__init__()
        self._active = 0
        self._since = 0.0
        #: call name -> [calls, seconds] (summed: overlapping calls each count in full)
        self.by_name: dict[str, list[float]] = {}

    def timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._local, "depth", 0)
            self._local.depth = depth + 1
            if depth == 0:
                with self._lock:
                    if self._active == 0:
                        self._since = time.perf_counter()
                    self._active += 1
                    self.calls += 1
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._local.depth = depth
                if depth == 0:
                    with self._lock:
                        self._active -= 1
                        if self._active == 0:
                            self.inside += time.perf_counter() - self._since
                        row = self.by_name.setdefault(getattr(fn, "__name__", "?"), [0, 0.0])
                        row[0] += 1
                        row[1] += time.perf_counter() - started
        return call


def _observe(make: Callable[[], HypervisorPlatform], interval_s: float, ctl: Connection) -> None:
    """Child process: poll until told to stop, then send every snapshot back."""
    observer = PlatformObserver(make, interval_s=interval_s)
    observer.poll()
    observer.start()
    ctl.send("started")
    ctl.recv()
    ctl.send(observer.stop())


def _groups(placement: dict[str, str], hosts: list[str], n_groups: int
            ) -> tuple[list[list[str]], list[str]]:
    """Anti-affinity groups of three VMs on three different hosts, and one group with a VM on
    every host (the stop-approved ones)."""
    by_host: dict[str, list[str]] = {h: sorted(v for v, h2 in placement.items() if h2 == h)
                                     for h in hosts}
    everywhere = [by_host[h].pop(0) for h in hosts if by_host[h]]
    groups: list[list[str]] = []
    i = 0
    while len(groups) < n_groups:
        trio = [hosts[(i + k) % len(hosts)] for k in range(3)]
        if not all(by_host[h] for h in trio):
            break
        groups.append([by_host[h].pop(0) for h in trio])
        i += 1
    return groups, everywhere


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--vms", type=int, default=1000, help="VMs in the cluster (about)")
    parser.add_argument("--groups", type=int, default=50, help="anti-affinity groups of three")
    parser.add_argument("--address", default="127.0.0.161")
    parser.add_argument("--port", type=int, default=29443)
    parser.add_argument("--interval", type=float, default=0.5,
                        help="observer poll interval, s (each poll lists every VM)")
    parser.add_argument("--parallel", type=int, default=4, help="max_parallel_migrations")
    parser.add_argument("--vcpu-ratio", type=float, default=64.0,
                        help="the change's vcpu_ratio: the simulator's hosts have few cores, "
                             "1,000 one-vCPU VMs need a high overcommit to fit on 15 hosts")
    parser.add_argument("--profile", type=int, default=25,
                        help="print this many lines of the orchestrator's cProfile (0: none)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-rp-scale-"))
    # vcsim puts ``-vms`` VMs in every resource pool; the cluster has one.
    inst = dataclasses.replace(
        vcsim.DEFAULT_VCENTER, key="rpscale", inventory_host="rpscale-vc", address=args.address,
        port=args.port, cluster_hosts=args.hosts, vms=args.vms,
        hardware={"*": vcsim.DEFAULT_VCENTER.hardware["*"]})
    if LAB_BIN.is_dir():
        shutil.copytree(LAB_BIN, tmp / "lab" / "vcsim" / "bin")
    ctx = LabContext(lab_dir=tmp / "lab", run_dir=tmp / "lab" / "run", repo_root=None,
                     log=lambda _m: None)
    component = vcsim.VcsimComponent((inst,))
    t_up = time.perf_counter()
    status = component.up(ctx)
    try:
        if status.state != "running":
            print(f"simulator did not start: {status.detail}")
            return 1
        print(f"simulator up in {time.perf_counter() - t_up:.1f} s at {inst.url}")
        return _run(args, tmp, ctx, inst)
    finally:
        component.down(ctx)
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, tmp: Path, ctx: LabContext, inst: vcsim.VcsimInstance) -> int:
    user, pwd = vcsim.read_credentials(ctx, inst)
    endpoint = Endpoint(inst.address, user, pwd, port=inst.port, validate_certs=False,
                        datacenter="DC0", cluster=CLUSTER)
    with VspherePlatform(endpoint) as p:
        hosts = sorted(h.name for h in p.hosts())
        vms = vm_summaries(p)
        templates = {v.name for v in vms if v.template}
        placement = {v.name: v.host for v in vms if v.power_state == "running"}
    groups, everywhere = _groups(placement, hosts, args.groups)
    print(f"cluster: {len(hosts)} hosts, {len(vms)} VMs ({len(placement)} powered on, "
          f"{len(templates)} templates seen), {len(groups)} anti-affinity groups of three, "
          f"one group of {len(everywhere)} approved to stop")

    from qualification.execution.keys import create_trusted_key

    state = tmp / "state"
    create_trusted_key(state / "keys" / "executor.pem", state, name="Bench executor",
                       identity="bench@example.org", roles=["executor"], passphrase=None,
                       throwaway=True, valid_days=1)
    sys.path.insert(0, str(REPO / "tests"))
    from trustroot_testlib import pin_state

    pin_state(state)
    signer = open_signer(state / "keys" / "executor.pem")
    change_path = tmp / "change.yaml"
    change_path.write_text(yaml.safe_dump({
        "apiVersion": "vqual.change/v1", "change_id": "CHG0019003",
        "title": "bench at scale", "risk": "high", "cluster": CLUSTER,
        "target": {"packages": {"esx-standin-patch": "19.0.3"}},
        "window": {"start": "2020-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"},
        "max_parallel_migrations": args.parallel, "vcpu_ratio": args.vcpu_ratio,
        "migration_timeout_s": 120, "step_timeout_s": 120,
        "anti_affinity": groups + [everywhere],
        "stop_approved": [{"vm": vm, "max_downtime_s": 3600} for vm in everywhere],
        "canary_waiver": {"reason": "the bench times the orchestrator at scale, not the canary"},
    }))
    change = load_change(change_path)
    clock = UnionClock()

    def factory() -> HypervisorPlatform:
        return TimedPlatform(VspherePlatform(endpoint), clock)  # type: ignore[return-value]

    mp = multiprocessing.get_context("fork")
    ours, theirs = mp.Pipe()
    watcher = mp.Process(target=_observe, args=(lambda: VspherePlatform(endpoint),
                                                args.interval, theirs), daemon=True)
    watcher.start()
    ours.recv()
    evidence = PatchEvidence(tmp / "evidence", signer, "bench", state_dir=state)
    orch = Orchestrator(factory, TimedExecutor(factory, clock), PlatformRequalifier(), change,
                        state, evidence)
    profile = cProfile.Profile()
    load0 = os.getloadavg()
    c0, t0 = time.process_time(), time.perf_counter()
    profile.enable()
    try:
        outcome = orch.run()
    except KeyboardInterrupt:  # stopped by hand: what was measured so far
        wall = time.perf_counter() - t0
        print(f"interrupted after {wall:.1f} s: inside platform/executor calls "
              f"{clock.inside:.1f} s ({clock.calls} calls), the orchestrator's own "
              f"{wall - clock.inside:.2f} s = {(wall - clock.inside) / wall:.1%}")
        ours.send("stop")
        seen: list[Snapshot] = ours.recv()
        print(f"observer so far: {len(seen)} polls, safety violations: {len(check_safety(seen))}")
        return 1
    except Exception as exc:  # noqa: BLE001 - a refused plan's message names every VM
        print(f"run refused: {str(exc)[:600]}")
        ours.send("stop")
        ours.recv()
        return 1
    profile.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ours.send("stop")
    snapshots: list[Snapshot] = ours.recv()
    watcher.join(timeout=60)

    violations = check_safety(snapshots)
    with VspherePlatform(endpoint) as p:
        mark_counts = {h: sum(1 for e in read_host_mark(p, h) if e.split()[0] == change.change_id)
                       for h in hosts}
    own = wall - clock.inside
    bundle = outcome.bundle
    print(f"run: status={outcome.status} verdict={outcome.verdict} "
          f"committed={len(outcome.committed)}/{len(hosts)}")
    if outcome.deviation:
        print(f"  deviation: {str(outcome.deviation)[:600]}")
    print(f"observer: {len(snapshots)} polls ({sum(s.error is not None for s in snapshots)} "
          f"failed), safety violations: {len(violations)}")
    for v in violations[:5]:
        print(f"  VIOLATION {v}")
    print(f"patch marks per host: {sorted(set(mark_counts.values()))} (goal: every host exactly 1)")
    print(f"wall {wall:.1f} s; inside platform/executor calls {clock.inside:.1f} s "
          f"({clock.calls} calls); orchestrator's own {own:.2f} s = {own / wall:.1%} of the run "
          f"(goal < 10 %); its CPU {cpu:.2f} s")
    print("where the platform/executor time goes (calls, seconds summed over threads):")
    for name, (n, secs) in sorted(clock.by_name.items(), key=lambda kv: -kv[1][1])[:12]:
        print(f"  {name:24} {int(n):6d} calls {secs:9.1f} s  {secs / max(n, 1) * 1000:8.1f} ms/call")
    print(f"load average at start {' '.join(f'{x:.2f}' for x in load0)}, "
          f"at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if bundle:
        print(f"bundle: {verify_bundle(Path(bundle), load_trust(state)).status}")
    if args.profile:
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(args.profile)
    ok = (outcome.status == "done" and not violations and set(mark_counts.values()) == {1}
          and own / wall < 0.10)
    print(f"goals: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
