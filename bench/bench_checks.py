"""300 checks on one host, three ways, measured in the same run.

1. vqual: ``vqual qualify`` (ansible-runner, one probe round trip, evaluation and signed
   evidence), with 300 checks and with 0 checks, so fixed start-up and the marginal cost per
   check are reported apart;
2. the naive baseline: a playbook with one task per check (stat / slurp / command);
3. the floor: the same observations in one shell script over the same connection (one
   command per observation), with 300 and with 0 observations.

Run: ``.venv/bin/python bench/bench_checks.py [--checks 300] [--repeat 1] [--naive-once]``.
Goals (issue 2): vqual at least 20x faster than the naive playbook end to end; vqual's
marginal cost per check within 2x the floor's. Issue 19, at 1,000 checks: at least 100x the
naive playbook, at most 0.5 ms per check. Each command's CPU time (its process tree) is
printed beside its wall time, and a run with one check, whose marginal excludes the one probe
round trip a run with no checks never makes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))

# A throwaway pinned trust root, as the tests use: it sets VQUAL_TRUST_ROOT for the vqual
# subprocesses, and pin_state signs the bench's trust store with it.
from trustroot_testlib import pin_state


def _observations(n: int) -> list[tuple[str, str]]:
    """n observations on this machine: file modes, sysctl values, package versions."""
    files = sorted(str(p) for p in Path("/etc").iterdir() if p.is_file() and not p.is_symlink())
    sysctls = sorted(
        str(p.relative_to("/proc/sys")).replace("/", ".")
        for p in Path("/proc/sys/kernel").iterdir()
        if p.is_file() and os.access(p, os.R_OK)
    ) + sorted(
        str(p.relative_to("/proc/sys")).replace("/", ".")
        for p in Path("/proc/sys/vm").iterdir()
        if p.is_file() and os.access(p, os.R_OK)
    )
    packages = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\n"], capture_output=True, text=True, check=True
    ).stdout.split()
    pools = [("file", f) for f in files], [("sysctl", s) for s in sysctls], [
        ("package", p) for p in sorted(packages)
    ]
    out: list[tuple[str, str]] = []
    i = 0
    while len(out) < n:
        pool = pools[i % 3]
        idx = i // 3
        if idx < len(pool):
            out.append(pool[idx])
        i += 1
        if i > 30 * n:
            raise SystemExit("not enough files, sysctls and packages on this machine")
    return out


def _spec(obs: list[tuple[str, str]], path: Path) -> None:
    tests = []
    for i, (kind, name) in enumerate(obs):
        check, params = {
            "file": ("file_mode", {"path": name}),
            "sysctl": ("sysctl", {"key": name}),
            "package": ("package_version", {"name": name}),
        }[kind]
        tests.append({
            "id": f"IQ-BENCH-{i + 1:04d}", "title": f"{check} {name}", "protocol": "IQ",
            "requirements": ["URS-HV-02"], "applies_to": ["linux_host"],
            "risk": ["high", "medium", "low"], "check": check, "params": params,
            "expect": {"op": "regex", "value": ".*"}, "acceptance": "observed",
        })
    if not tests:  # a spec with one test that applies to nothing: 0 checks run
        tests.append({
            "id": "IQ-BENCH-0000", "title": "applies to no target", "protocol": "IQ",
            "requirements": ["URS-HV-02"], "applies_to": ["esxi"],
            "risk": ["high", "medium", "low"], "check": "file_exists",
            "params": {"path": "/etc/passwd"}, "expect": {"op": "equals", "value": True},
            "acceptance": "-",
        })
    path.write_text(yaml.safe_dump({
        "apiVersion": "vqual/v1", "kind": "Protocol",
        "metadata": {"name": "bench", "title": "bench", "version": "1.0"},
        "requirements": ["URS-HV-02"], "tests": tests,
    }))


def _naive_playbook(obs: list[tuple[str, str]], path: Path) -> None:
    tasks = []
    for kind, name in obs:
        if kind == "file":
            tasks.append({"name": f"stat {name}", "ansible.builtin.stat": {"path": name}})
        elif kind == "sysctl":
            tasks.append({"name": f"sysctl {name}", "ansible.builtin.slurp": {
                "src": "/proc/sys/" + name.replace(".", "/")}})
        else:
            tasks.append({"name": f"version {name}", "ansible.builtin.command": {
                "argv": ["dpkg-query", "-W", "-f=${Version}", name]}, "changed_when": False})
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))


def _floor_script(obs: list[tuple[str, str]]) -> str:
    lines = []
    for kind, name in obs:
        if kind == "file":
            lines.append(f"stat -c '%a %U:%G' {shlex.quote(name)}")
        elif kind == "sysctl":
            lines.append(f"cat {shlex.quote('/proc/sys/' + name.replace('.', '/'))}")
        else:
            lines.append(f"dpkg-query -W -f='${{Version}}\\n' {shlex.quote(name)}")
    return "\n".join(lines) + "\ntrue\n"


#: CPU seconds (user + system) of the last command's process tree, by label; on a machine
#: shared with other work, CPU time moves far less than wall time.
CPU: dict[str, list[float]] = {}


def _timed(argv: list[str], env: dict[str, str], cwd: Path, label: str = "") -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{argv[:3]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    CPU.setdefault(label, []).append(
        after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=1, help="repeat each measurement, take the median")
    parser.add_argument("--skip-naive", action="store_true",
                        help="leave the naive playbook out: the marginal cost per check only")
    parser.add_argument("--naive-once", action="store_true",
                        help="run the naive playbook (minutes at 1,000 checks) in the first round only")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vqual-bench-"))
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VQUAL_STATE_DIR"] = str(work / "state")
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO)
    env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
    subprocess.run([str(BIN / "vqual"), "keys", "create", "--name", "bench", "--role", "executor",
                    "--service", "--throwaway"], env=env, check=True, capture_output=True)
    pin_state(work / "state")
    inv = work / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "vqual_target_kinds": ["linux_host"]}}}}))
    obs = _observations(args.checks)
    _spec(obs, work / "spec300.yaml")
    _spec([], work / "spec0.yaml")
    _spec(obs[:1], work / "spec1.yaml")
    _naive_playbook(obs, work / "naive.yml")
    (work / "floor300.sh").write_text(_floor_script(obs))
    (work / "floor0.sh").write_text(_floor_script([]))

    def vqual(spec: str, run: int) -> list[str]:
        return [str(BIN / "vqual"), "qualify", "-i", str(inv), "-s", str(work / spec), "-c",
                "CHG0000100", "--evidence-dir", str(work / "evidence"), "--run-id",
                f"bench-{spec[:-5]}-{run}", "--allow-empty"]

    def floor(script: str) -> list[str]:
        # One shell over the same (local) connection, through Ansible like the others.
        return [str(BIN / "ansible"), "localhost", "-i", str(inv), "-m", "ansible.builtin.script",
                "-a", str(work / script)]

    def median(make: object, n: int) -> float:
        return statistics.median(make(i) for i in range(n))  # type: ignore[operator]

    r = args.repeat
    # interleaved per round, so load from other work on the machine hits every variant alike
    t: dict[str, list[float]] = {}
    runs = {
        "vq_n": lambda i: vqual("spec300.yaml", i), "vq_0": lambda i: vqual("spec0.yaml", i),
        "vq_1": lambda i: vqual("spec1.yaml", i), "fl_n": lambda i: floor("floor300.sh"),
        "fl_0": lambda i: floor("floor0.sh"),
        "naive": lambda i: [str(BIN / "ansible-playbook"), "-i", str(inv), str(work / "naive.yml")],
    }
    if args.skip_naive:
        del runs["naive"]
    for i in range(r):
        for label, make in runs.items():
            if label == "naive" and args.naive_once and i:
                continue
            t.setdefault(label, []).append(_timed(make(i), env, REPO, label))
    med = {k: statistics.median(v) for k, v in t.items()}
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    t_vq300, t_vq0, t_vq1 = med["vq_n"], med["vq_0"], med["vq_1"]
    t_fl300, t_fl0 = med["fl_n"], med["fl_0"]
    t_naive = med.get("naive", float("nan"))
    n = args.checks
    vq_marginal = (t_vq300 - t_vq0) / n
    vq_marginal1 = (t_vq300 - t_vq1) / (n - 1)
    fl_marginal = (t_fl300 - t_fl0) / n
    print(f"checks: {n} on localhost (local connection); median of {r}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if "naive" in med:
        print(f"  naive playbook, one task per check : {t_naive:8.2f} s  "
              f"({t_naive / n * 1000:.1f} ms/check)  CPU {cpu['naive']:.2f} s")
    print(f"  vqual qualify, {n} checks           : {t_vq300:8.2f} s  CPU {cpu['vq_n']:.2f} s")
    print(f"  vqual qualify, 1 check (+1 probe)   : {t_vq1:8.2f} s  CPU {cpu['vq_1']:.2f} s")
    print(f"  vqual qualify, 0 checks (start-up)  : {t_vq0:8.2f} s  CPU {cpu['vq_0']:.2f} s")
    print(f"  floor: one shell script, {n} obs    : {t_fl300:8.2f} s  CPU {cpu['fl_n']:.2f} s")
    print(f"  floor: one shell script, 0 obs      : {t_fl0:8.2f} s  CPU {cpu['fl_0']:.2f} s")
    print(f"  marginal per check: vqual {vq_marginal * 1000:.3f} ms over 0 checks, "
          f"{vq_marginal1 * 1000:.3f} ms over 1 check (CPU "
          f"{(cpu['vq_n'] - cpu['vq_1']) / (n - 1) * 1000:.3f} ms); floor {fl_marginal * 1000:.3f} ms")
    print(f"ratio naive / vqual (end to end)     : {t_naive / t_vq300:6.1f}x   (goal >= 100x)")
    print(f"ratio vqual / floor (marginal/check) : {vq_marginal / fl_marginal if fl_marginal > 0 else float('inf'):6.2f}x   (goal <= 2x)")
    print(f"marginal per check over 0 checks     : {vq_marginal * 1000:6.3f} ms  (goal <= 0.5 ms)")

if __name__ == "__main__":
    main()
