"""Fingerprinting and comparing a guest, against plain tools on the same data, in the same run.

The bench makes a directory tree standing in for a guest: ``--files`` files (default 2,000,
1-16 KiB each, under ``/etc`` and ``/usr/share``), a dpkg status file with ``--packages``
packages (default 500), passwd and group. Measured, median of ``--repeat`` runs:

1. fingerprint: the probe's ``fingerprint`` method on that root (every file digested, the
   package database parsed, users and groups read), then ``make_fingerprint`` (part digests,
   canonical JSON) on the controller;
2. compare: ``compare()`` of that fingerprint with one that differs in one package, one
   user and one file;
3. the baseline: ``sha256sum`` over the same files (one process, ``xargs``) plus
   ``dpkg-query -W`` over the same status file, parsed into a dict.

Run: ``.venv/bin/python bench/bench_fingerprint.py [--files 2000] [--packages 500]
[--repeat 5]``. Prints times and ratios only; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
sys.path.insert(0, str(REPO))


def _observations() -> Any:
    path = COLLECTION / "plugins" / "module_utils" / "host_observations.py"
    spec = importlib.util.spec_from_file_location("bench_host_observations", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_guest(root: Path, files: int, packages: int, seed: int = 7) -> list[str]:
    """The stand-in guest; returns the digested file paths (relative to the root)."""
    rng = random.Random(seed)
    made = []
    for i in range(files):
        top = "etc" if i % 4 == 0 else "usr/share"
        path = root / top / f"d{i % 40:02d}" / f"f{i:05d}.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(1024, 16384)))
        made.append(str(path.relative_to(root)))
    dpkg = root / "var" / "lib" / "dpkg"
    dpkg.mkdir(parents=True)
    stanzas = [
        f"Package: pkg{i:04d}\nStatus: install ok installed\nPriority: optional\n"
        f"Architecture: amd64\nVersion: 1.{i}.{rng.randint(0, 9)}-{rng.randint(1, 5)}\n"
        f"Description: package {i}\n"
        for i in range(packages)
    ]
    (dpkg / "status").write_text("\n".join(stanzas))
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        + "".join(f"u{i}:x:{1000 + i}:100::/home/u{i}:/bin/sh\n" for i in range(20))
    )
    (root / "etc" / "group").write_text("root:x:0:\nusers:x:100:\n")
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    return made


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--packages", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from qualification.baseline import compare, make_fingerprint

    ho = _observations()
    with tempfile.TemporaryDirectory(prefix="vqual-bench-fp-") as tmp:
        root = Path(tmp) / "guest"
        made = make_guest(root, args.files, args.packages)
        patterns = ["/etc/**", "/usr/share/**"]
        request = {"root": str(root), "files": patterns, "max_files": 10 * args.files}

        def fingerprint() -> Any:
            obs = ho.HostObserver().observe("fingerprint", request)
            assert obs["error"] is None, obs["error"]
            v = obs["value"]
            return make_fingerprint("guest", "vm", guest=v["guest"], identity=v["identity"],
                                    generalised=v["generalised"])

        def baseline() -> dict[str, str]:
            listing = "\0".join(str(root / p) for p in made)
            done = subprocess.run(["xargs", "-0", "sha256sum"], input=listing.encode(),
                                  capture_output=True, check=True)
            assert done.stdout.count(b"\n") == len(made)
            query = subprocess.run(
                ["dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W",
                 "-f", "${Package}\t${Version}\n"],
                capture_output=True, check=True, text=True,
            )
            packages = dict(line.split("\t", 1) for line in query.stdout.splitlines())
            assert len(packages) == args.packages
            return packages

        # One unmeasured run of each warms the page cache for both sides alike.
        base_fp = fingerprint()
        baseline()
        t_fp, live_fp = median_time(fingerprint, args.repeat)
        t_base, _ = median_time(baseline, args.repeat)

        guest = dict(base_fp.guest or {})
        changed_pkgs = dict(guest["packages"], pkg0001="9.9-9")
        changed_files = dict(guest["files"])
        first = min(p for p, e in changed_files.items() if e["type"] == "file")
        changed_files[first] = dict(changed_files[first], sha256="0" * 64)
        users = list(guest["users"]) + [{"name": "eve", "uid": 1999, "gid": 100,
                                        "home": "/", "shell": "/bin/sh"}]
        other = make_fingerprint("clone", "vm", guest=dict(guest, packages=changed_pkgs,
                                                          files=changed_files, users=users),
                                 identity={"hostname": "clone"})
        t_cmp, found = median_time(lambda: compare(live_fp, other), args.repeat)
        assert [d.what for d in found] == ["file", "package", "user"], found
        t_same, none = median_time(lambda: compare(base_fp, live_fp), args.repeat)
        assert none == []

    n_files = len((live_fp.guest or {})["files"])
    print(f"guest stand-in: {n_files} paths digested ({args.files} files plus directories), "
          f"{args.packages} packages; median of {args.repeat}; {os.cpu_count()} cores")
    print(f"baseline  sha256sum (xargs) + dpkg-query -W parse   {t_base * 1000:8.1f} ms")
    print(f"vqual     fingerprint (probe + digests)             {t_fp * 1000:8.1f} ms"
          f"   x{t_fp / t_base:.2f} of baseline")
    print(f"vqual     compare, 3 differences                    {t_cmp * 1000:8.1f} ms"
          f"   x{t_cmp / t_base:.3f} of baseline")
    print(f"vqual     compare, identical                        {t_same * 1000:8.1f} ms")
    print(f"fingerprint + compare                               {(t_fp + t_cmp) * 1000:8.1f} ms"
          f"   x{(t_fp + t_cmp) / t_base:.2f} of baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
