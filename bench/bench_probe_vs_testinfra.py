"""Observation strategies, measured in the same run: vqual's batched probe vs testinfra.

The same N observations (file modes, sysctl values, package versions) are made
1. by vqual's batched probe module ``vqual.qualification.host_probe`` in ONE module call
   (through Ansible, as ``vqual qualify`` does), and
2. by testinfra over one persistent connection (``local://``, or ``ssh://`` with a
   ControlMaster connection when ``--ssh-host`` is given), one testinfra call per observation.

Run: ``.venv/bin/python bench/bench_probe_vs_testinfra.py [--n 300] [--ssh-host kvm1 --ssh-config inventories/lab/ssh_config]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_checks import _observations  # noqa: E402

from qualification.checks import get_check  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHECK_OF = {"file": ("file_mode", "path"), "sysctl": ("sysctl", "key"), "package": ("package_version", "name")}


def probe_requests(obs: list[tuple[str, str]]) -> list[dict[str, object]]:
    reqs = {}
    for kind, name in obs:
        check, param = CHECK_OF[kind]
        request = get_check(check).request({param: name})
        reqs[request.key()] = request.to_json()
    return list(reqs.values())


def run_probe(obs: list[tuple[str, str]], inventory: Path, host: str) -> float:
    args = json.dumps({"requests": probe_requests(obs)})
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO),
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    t0 = time.perf_counter()
    done = subprocess.run([str(BIN / "ansible"), host, "-i", str(inventory), "-m",
                           "vqual.qualification.host_probe", "-a", args, "-o"],
                          env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    return elapsed


def remote_observations(n: int, url: str, ssh_config: str | None) -> list[tuple[str, str]]:
    """n observations that exist on the remote host: its /etc files, sysctls, packages."""
    host = testinfra.get_host(url, ssh_config=ssh_config)
    files = host.check_output("find /etc -maxdepth 1 -type f | sort").split()
    sysctls = [p[len("/proc/sys/"):].replace("/", ".") for p in host.check_output(
        "find /proc/sys/kernel /proc/sys/vm -maxdepth 1 -type f -readable | sort").split()]
    packages = host.check_output("dpkg-query -W -f='${Package}\\n' | sort").split()
    pools = ([("file", f) for f in files], [("sysctl", k) for k in sysctls],
             [("package", p) for p in packages])
    out: list[tuple[str, str]] = []
    i = 0
    while len(out) < n and i < 30 * n:
        pool = pools[i % 3]
        if i // 3 < len(pool):
            out.append(pool[i // 3])
        i += 1
    return out


def run_testinfra(obs: list[tuple[str, str]], url: str, ssh_config: str | None) -> float:
    host = testinfra.get_host(url, ssh_config=ssh_config) if ssh_config else testinfra.get_host(url)
    host.run("true")  # open the persistent connection before timing
    t0 = time.perf_counter()
    for kind, name in obs:
        if kind == "file":
            _ = host.file(name).mode
        elif kind == "sysctl":
            _ = host.sysctl(name)
        else:
            _ = host.package(name).version
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--ssh-host", default=None)
    parser.add_argument("--ssh-config", default=None)
    parser.add_argument("--inventory", default=None, help="inventory holding --ssh-host")
    args = parser.parse_args()
    obs = (remote_observations(args.n, f"ssh://{args.ssh_host}", args.ssh_config)
           if args.ssh_host else _observations(args.n))
    if args.ssh_host:
        inv = Path(args.inventory or REPO / "inventories" / "lab")
        host, url = args.ssh_host, f"ssh://{args.ssh_host}"
    else:
        inv = Path(tempfile.mkdtemp()) / "inv.yml"
        inv.write_text(f"all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                       f"      ansible_python_interpreter: {sys.executable}\n")
        host, url = "localhost", "local://"
    t_probe = run_probe(obs, inv, host)
    t_empty = run_probe([], inv, host)
    t_ti = run_testinfra(obs, url, args.ssh_config)
    print(f"{args.n} observations on {host}")
    print(f"  vqual host_probe, one module call (incl. Ansible start-up): {t_probe:7.2f} s")
    print(f"  vqual host_probe, 0 observations (Ansible start-up only):   {t_empty:7.2f} s")
    print(f"  testinfra, one call per observation, persistent connection: {t_ti:7.2f} s")
    print(f"ratio testinfra / probe (observations only): {t_ti / max(t_probe - t_empty, 1e-3):6.1f}x")
    print(f"ratio testinfra / probe (probe incl. start-up): {t_ti / t_probe:6.1f}x")


if __name__ == "__main__":
    main()
