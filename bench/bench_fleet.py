"""Qualification of 10, 50 and 200 SSH hosts against Ansible's own floors, in the same run.

Starts a fleet of sshd endpoints on loopback addresses (bench/fleet.py; every endpoint serves
this machine, so target-side work lands on the controller's cores too) and, for each size,
runs in turn, ``--repeat`` times, under the same Ansible settings (forks, pipelining,
ControlPersist, facts off, a cold SSH master per run):

- floor (a): ``ansible-playbook`` with one task, ``command: /bin/true``;
- floor (b): ``ansible-playbook`` running only ``vqual.qualification.host_probe`` with the
  observations the host spec (specs/linux-virt-host.yaml) asks of each host;
- ``vqual qualify`` with the host spec: plan, probe, evaluate, compare, evidence, seal, verify.

It prints the medians, the ratios vqual/(a) and vqual/(b) (goal at 200 hosts: at most 1.3x
(b)), and the controller's peak memory (PSS of its own process tree, without sshd and target
processes) per host. For the largest size it then measures the bundle: its size, ``vqual
verify``'s time, the report rendered in headless Chromium and the JUnit read back.

    .venv/bin/python bench/bench_fleet.py [--sizes 10,50,200] [--repeat 3] [--forks N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet import Fleet
from bench.fleetlib import (
    BIN,
    HOST_SPEC,
    Controller,
    ansible_env,
    become_subreaper,
    group_vars,
    load_average,
    make_state,
    median,
    work_dir,
)

GOAL_B = 1.3
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def probe_requests(hostvars: dict[str, Any]) -> list[dict[str, Any]]:
    """The host probe's requests for one fleet host, as the qualify action makes them."""
    from qualification.execution.evaluation import requests_for
    from qualification.spec.inventory import InventoryModel
    from qualification.spec.loader import load_spec
    from qualification.spec.plan import build_plan

    plan = build_plan(
        load_spec(HOST_SPEC),
        InventoryModel.from_hostvars({"h": hostvars}, {"linux_hosts": ["h"]}),
    )
    tests = [{"test_id": t.test_id, "check": t.check, "params": t.params, "expect": {}}
             for t in plan.targets[0].tests]
    return requests_for(tests).by_probe["host"]


def write_playbooks(work: Path, requests: list[dict[str, Any]]) -> tuple[Path, Path]:
    true = work / "floor_true.yml"
    true.write_text(yaml.safe_dump([{
        "name": "floor: one task", "hosts": "all", "gather_facts": False,
        "tasks": [{"name": "true", "ansible.builtin.command": "/bin/true", "changed_when": False}],
    }], sort_keys=False))
    probe = work / "floor_probe.yml"
    probe.write_text(yaml.safe_dump([{
        "name": "floor: the host probe only", "hosts": "all", "gather_facts": False,
        "tasks": [{"name": "probe", "vqual.qualification.host_probe": {"requests": requests}}],
    }], sort_keys=False))
    return true, probe


def render_seconds(html: Path, shots: Path) -> tuple[float, float]:
    """Headless Chromium: load, lay out and paint ``html`` (a screenshot of a tall window),
    and the same for an empty page (Chromium's own start-up), in that order."""
    blank = shots / "blank.html"
    blank.write_text("<!doctype html><title>blank</title>")
    times = []
    for page in (html, blank):
        started = time.perf_counter()
        done = Controller().run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                                 "--window-size=1280,4000", f"--screenshot={shots / 'shot.png'}",
                                 page.as_uri()], {"HOME": str(shots), "PATH": "/usr/bin:/bin"})
        times.append(time.perf_counter() - started if done.returncode == 0 else float("nan"))
    return times[0], times[1]


def junit_seconds(junit: Path) -> tuple[float, int]:
    started = time.perf_counter()
    cases = sum(1 for _ in ET.parse(junit).getroot().iter("testcase"))
    return time.perf_counter() - started, cases


def bundle_figures(bundle: Path, env: dict[str, str], work: Path) -> None:
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    verify = Controller().run([str(BIN / "vqual"), "verify", str(bundle)], env)
    shots = work / "chromium"
    shots.mkdir(exist_ok=True)
    page, blank = render_seconds(bundle / "report.html", shots)
    parse, cases = junit_seconds(bundle / "junit.xml")
    print(f"bundle: {size / 1e6:.1f} MB ({(bundle / 'records.jsonl').stat().st_size / 1e6:.1f} MB "
          f"records, report {(bundle / 'report.html').stat().st_size / 1e6:.1f} MB, junit "
          f"{(bundle / 'junit.xml').stat().st_size / 1e6:.1f} MB)")
    print(f"  vqual verify      : {verify.seconds:6.2f} s (exit {verify.returncode})")
    print(f"  Chromium render   : {page:6.2f} s (empty page {blank:.2f} s; goal < 5 s)")
    print(f"  JUnit read back   : {parse:6.2f} s ({cases} testcases, xml.etree)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,50,200")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--forks", type=int, default=None,
                        help="forks for every run (default: vqual's choice for this machine)")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    from qualification.execution.runner import choose_forks

    forks = args.forks or choose_forks(None)
    work = work_dir("vqual-bench-fleet-")
    base_env = make_state(work)
    become_subreaper()
    gv = group_vars()
    true_pb, probe_pb = write_playbooks(work, probe_requests({**gv, "vqual_cluster": "c"}))
    print(f"forks {forks}; pipelining, ControlPersist; median of {args.repeat}; "
          f"load average at start {load_average()}")
    t0 = time.perf_counter()
    with Fleet(max(sizes)) as fleet:
        print(f"fleet: {max(sizes)} sshd endpoints up in {time.perf_counter() - t0:.2f} s")
        ctl = Controller(exclude=[e.pid for e in fleet.endpoints])
        last_bundle = None
        print(f"{'hosts':>5} {'(a) true':>9} {'(b) probe':>9} {'vqual':>8} {'x(a)':>6} {'x(b)':>6}"
              f" {'s/host':>7} {'MB peak':>8} {'MB/host':>8}  load")
        for n in sizes:
            inv = fleet.write_inventory("linux_hosts", group_vars=gv, cluster_size=10, count=n)
            runs: dict[str, list[float]] = {"a": [], "b": [], "v": []}
            peaks: list[float] = []
            for r in range(args.repeat):
                env = ansible_env(base_env, work / f"cp-{n}-{r}")
                floor = [str(BIN / "ansible-playbook"), "-i", str(inv), "--forks", str(forks)]
                runs["a"].append(ctl.run([*floor, str(true_pb)], env).seconds)
                runs["b"].append(ctl.run([*floor, str(probe_pb)], env).seconds)
                run_id = f"fleet-{n}-{r}"
                done = ctl.run([str(BIN / "vqual"), "qualify", "-i", str(inv), "-s", str(HOST_SPEC),
                                "-c", "CHG0000190", "--evidence-dir", str(work / "evidence"),
                                "--run-id", run_id, "--forks", str(forks)], env, ok=(0, 1))
                runs["v"].append(done.seconds)
                peaks.append(done.peak_mb)
                print(f"  run {r + 1}: (a) {runs['a'][-1]:.2f} s, (b) {runs['b'][-1]:.2f} s, "
                      f"vqual {done.seconds:.2f} s ({done.seconds / runs['b'][-1]:.2f}x (b)), "
                      f"peak {done.peak_mb:.0f} MB; load {load_average()}", flush=True)
                last_bundle = work / "evidence" / "CHG0000190" / run_id
            a, b, v, peak = (median(runs["a"]), median(runs["b"]), median(runs["v"]),
                             median(peaks))
            print(f"{n:>5} {a:>8.2f}s {b:>8.2f}s {v:>7.2f}s {v / a:>5.2f}x {v / b:>5.2f}x"
                  f" {v / n:>7.3f} {peak:>8.0f} {peak / n:>8.2f}  {load_average()}", flush=True)
        if last_bundle is not None:
            bundle_figures(last_bundle, ansible_env(base_env, work / "cp-verify"), work)
    print(f"goal: vqual <= {GOAL_B}x floor (b) at {max(sizes)} hosts")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
