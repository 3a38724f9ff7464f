"""libvirt probe: one connection per module call against one per request, measured in one run.

1. in-process: the libvirt-embedded spec's requests answered by ``probe()`` on one
   connection, against the baseline of one ``probe()`` (one connection) per request;
2. as Ansible runs modules: one ``libvirt_probe`` module process for all requests, against
   one module process per request (what a task per check would cost);
3. the OQ lifecycle (7 steps on a throwaway domain) alone, for scale.

Run: ``.venv/bin/python bench/bench_libvirt_probe.py [--uri test:///default] [--repeat 20]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qualification.checks import get_check
from qualification.platforms.libvirt.observations import probe
from qualification.spec.loader import load_spec

REPO = Path(__file__).resolve().parents[1]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
MODULE = COLLECTION / "plugins" / "modules" / "libvirt_probe.py"


def spec_requests() -> list[dict[str, Any]]:
    spec = load_spec(COLLECTION / "specs" / "libvirt-embedded.yaml")
    unique: dict[str, dict[str, Any]] = {}
    for test in spec.tests:
        request = get_check(test.check).request(test.params)
        unique[request.key()] = request.to_json()
    return list(unique.values())


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` runs."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def run_module(requests: list[dict[str, Any]], uri: str, workdir: Path) -> None:
    args = workdir / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"uri": uri, "requests": requests}}))
    # The module reaches vqual through the collection's module_utils, as AnsiballZ packs it.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run(
        [sys.executable, str(MODULE), str(args)], capture_output=True, text=True, check=False,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"module failed: {done.stdout or done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default="test:///default")
    parser.add_argument("--repeat", type=int, default=20)
    opts = parser.parse_args()
    requests = spec_requests()
    iq = [r for r in requests if not r["method"].startswith("oq_")]
    print(f"{len(requests)} distinct requests ({len(iq)} IQ) for the libvirt-embedded spec")

    one = timed(lambda: probe(opts.uri, requests), opts.repeat)
    each = timed(lambda: [probe(opts.uri, [r]) for r in requests], opts.repeat)
    print(f"in-process, one connection:          {one * 1000:8.1f} ms")
    print(f"in-process, one connection/request:  {each * 1000:8.1f} ms  ratio {each / one:5.2f}x")

    lifecycle = [r for r in requests if r["method"] == "oq_lifecycle"]
    oq = timed(lambda: probe(opts.uri, lifecycle), opts.repeat)
    print(f"OQ lifecycle alone (7 steps):        {oq * 1000:8.1f} ms")

    module_repeat = max(1, opts.repeat // 5)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mod_one = timed(lambda: run_module(requests, opts.uri, work), module_repeat)
        mod_each = timed(lambda: [run_module([r], opts.uri, work) for r in requests], module_repeat)
    print(f"module, one process:                 {mod_one * 1000:8.1f} ms")
    print(
        f"module, one process/request:         {mod_each * 1000:8.1f} ms  "
        f"ratio {mod_each / mod_one:5.2f}x"
    )


if __name__ == "__main__":
    main()
