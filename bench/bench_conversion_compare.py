"""A conversion's comparison against plain tools on the same data, in the same run.

The stand-in guest of ``bench_fingerprint.py`` (``--files`` files, default 2,000, 1-16 KiB,
and a dpkg status file of ``--packages`` packages, default 500), with every file named as
application data (``vqual_app_data``). Measured, median of ``--repeat`` runs:

1. observe: the probe's ``fingerprint`` method on that root with the data paths added as the
   ``qualify`` action adds them (every file digested, packages parsed), the data split into
   ``guest.data``, the fingerprint made on the controller;
2. judge: the source fingerprint against a target that differs as a V2V does (disk format,
   bus and device name, NIC model: allowed by the shipped spec's rules) plus one changed,
   one removed and one added data file (not allowed), ``qualification.baseline.conversion.judge``;
3. the baseline: ``sha256sum`` over the same files (one process, ``xargs``) plus
   ``dpkg-query -W`` over the same status file.

Run: ``.venv/bin/python bench/bench_conversion_compare.py [--files 2000] [--packages 500]
[--repeat 5]``. Prints times and the ratio only; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_fingerprint import COLLECTION, _observations, make_guest, median_time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--packages", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from qualification.baseline.conversion import ConversionRules, judge
    from qualification.checks.app_data import split_data, with_app_data
    from qualification.checks.fingerprint_model import make_fingerprint

    spec = yaml.safe_load((COLLECTION / "specs" / "conversion.yaml").read_text())
    rules = ConversionRules.from_json(spec["conversion"])
    ho = _observations()
    vm = {"vcpus": 1, "memory_mib": 384, "machine": "pc-i440fx-7.2",
          "disks": [{"target": "vda", "device": "disk", "bus": "virtio", "format": "qcow2",
                     "capacity": 2 << 30, "readonly": False}],
          "nics": [{"model": "virtio-net-pci", "network": "user", "kind": "qemu-commandline"}],
          "devices": ["serial"]}
    with tempfile.TemporaryDirectory(prefix="vqual-bench-conv-") as tmp:
        root = Path(tmp) / "guest"
        made = make_guest(root, args.files, args.packages)
        data = ["/etc", "/usr/share"]  # every generated file is application data
        (request,) = with_app_data(
            [{"key": "k", "method": "fingerprint",
              "args": {"root": str(root), "files": ["/etc/os-release"],
                       "max_files": 10 * args.files}}], data)

        def observe() -> Any:
            obs = ho.HostObserver().observe("fingerprint", request["args"])
            assert obs["error"] is None, obs["error"]
            v = split_data(obs["value"], data)
            return make_fingerprint("src", "vm", vm=vm, guest=v["guest"], identity=v["identity"])

        def baseline() -> None:
            listing = "\0".join(str(root / p) for p in made)
            done = subprocess.run(["xargs", "-0", "sha256sum"], input=listing.encode(),
                                  capture_output=True, check=True)
            assert done.stdout.count(b"\n") == len(made)
            query = subprocess.run(
                ["dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W",
                 "-f", "${Package}\t${Version}\n"], capture_output=True, check=True, text=True)
            assert len(query.stdout.splitlines()) == args.packages

        observe()
        baseline()  # one unmeasured run of each warms the page cache for both alike
        t_obs, source = median_time(observe, args.repeat)
        t_base, _ = median_time(baseline, args.repeat)

        guest = dict(source.guest or {})
        files = sorted(p for p, e in guest["data"].items() if e["type"] == "file")
        changed = dict(guest["data"])
        changed[files[0]] = dict(changed[files[0]], sha256="0" * 64)
        del changed[files[1]]
        changed["/usr/share/added.dat"] = {"type": "file", "sha256": "1" * 64}
        target_vm = dict(vm, disks=[dict(vm["disks"][0], target="sda", bus="sata", format="raw")],
                         nics=[dict(vm["nics"][0], model="e1000")])
        target = make_fingerprint("dst", "vm", vm=target_vm, guest=dict(guest, data=changed),
                                  identity=source.identity)
        t_judge, judged = median_time(lambda: judge(source, target, rules), args.repeat)
        got = sorted((j.difference.what, j.allowed) for j in judged)
        assert got == [("data", False)] * 3 + [("vm.disk", True), ("vm.nic", True)], got

    n = len((source.guest or {})["data"])
    print(f"guest stand-in: {n} data paths digested ({args.files} files plus directories), "
          f"{args.packages} packages; median of {args.repeat}; {os.cpu_count()} cores")
    print(f"baseline  sha256sum (xargs) + dpkg-query -W           {t_base * 1000:8.1f} ms")
    print(f"vqual     observe (probe, data split, fingerprint)    {t_obs * 1000:8.1f} ms"
          f"   x{t_obs / t_base:.2f} of baseline")
    print(f"vqual     judge: 3 data differences, 2 allowed         {t_judge * 1000:8.1f} ms"
          f"   x{t_judge / t_base:.3f} of baseline")
    print(f"conversion comparison (observe + judge)               {(t_obs + t_judge) * 1000:8.1f} ms"
          f"   ratio x{(t_obs + t_judge) / t_base:.2f} of sha256sum")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
