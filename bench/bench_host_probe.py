"""The host probe: one batched call against one call per observation, measured in the same run.

Uses the requests of the shipped Linux host protocol (``specs/linux-virt-host.yaml``) for the
local host, deduplicated by key as the controller does. Three ways:

1. batched in-process: one ``HostObserver.observe_all`` for every request (shared sources read
   once), against a fresh observer per request (every source read again);
2. batched module: one run of ``plugins/modules/host_probe.py`` as Ansible runs it (its own
   Python process, arguments in a file), against one module run per request.

Run: ``.venv/bin/python bench/bench_host_probe.py [--repeat 5]``. Prints times and ratios only;
nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
COLLECTIONS = REPO
MODULE = COLLECTION / "plugins" / "modules" / "host_probe.py"
# host_observations imports its sibling module_utils as ansible_collections.vqual...
sys.path.insert(0, str(COLLECTIONS))


def _requests() -> list[dict[str, Any]]:
    from qualification.checks import get_check
    from qualification.spec.inventory import InventoryModel
    from qualification.spec.loader import load_spec
    from qualification.spec.plan import build_plan

    hostvars = yaml.safe_load((REPO / "inventories/local/host_vars/localhost.yml").read_text())
    plan = build_plan(
        load_spec(COLLECTION / "specs" / "linux-virt-host.yaml"),
        InventoryModel.from_hostvars({"localhost": hostvars}, {"linux_hosts": ["localhost"]}),
    )
    unique: dict[str, dict[str, Any]] = {}
    for test in plan.targets[0].tests:
        request = get_check(test.check).request(test.params)
        unique[request.key()] = request.to_json()
    return list(unique.values())


def _observer_class() -> Any:
    path = COLLECTION / "plugins" / "module_utils" / "host_observations.py"
    spec = importlib.util.spec_from_file_location("bench_host_observations", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.HostObserver


def _run_module(requests: list[dict[str, Any]], workdir: Path) -> None:
    args = workdir / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"requests": requests}}))
    done = subprocess.run(
        [sys.executable, str(MODULE), str(args)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(COLLECTIONS)},
    )
    json.loads(done.stdout)


def _time(fn: Callable[[], None], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    requests = _requests()
    observer = _observer_class()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = [
            (
                "in-process",
                _time(lambda: observer().observe_all(requests), repeat),
                _time(lambda: [observer().observe_all([r]) for r in requests], repeat),
            ),
            (
                "module",
                _time(lambda: _run_module(requests, workdir), repeat),
                _time(lambda: [_run_module([r], workdir) for r in requests], max(1, repeat // 3)),
            ),
        ]
    print(f"{len(requests)} distinct requests from specs/linux-virt-host.yaml, median of {repeat}")
    print(f"{'way':<12}{'batched s':>12}{'one per request s':>20}{'ratio':>9}")
    for name, batched, single in rows:
        print(f"{name:<12}{batched:>12.3f}{single:>20.3f}{single / batched:>8.1f}x")


if __name__ == "__main__":
    main()
