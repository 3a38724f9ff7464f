"""What ``check: testinfra`` costs: a site's suite run by vqual vs by plain pytest, same run.

The same testinfra suite (the example in tests/fixtures/testinfra plus N generated tests of
host.file / host.package / host.run, each with a ``urs`` marker) is run against localhost
1. by plain ``pytest --hosts=local://`` (what the site runs today),
2. by vqual's runner (``qualification.execution.testinfra.run_testinfra``: the same pytest
   with the reporting plug-in, one observation per test function), and
3. by ``vqual qualify`` end to end (ansible-runner, planning, the runner, evaluation, signed
   evidence, JUnit and report), with the runner's own time inside the run read back from the
   bundle (the ``duration_ms`` of the target's observation, the same for each of its results).

The three are interleaved, ``--repeat`` times each, medians (and minima) compared, and for 1
and 2 also the CPU time of the pytest process (children's rusage), which a machine busy with
other work does not distort as it does wall time. The goal of the issue
(within 10 %) is for 2 against 1, and for the runner's time inside 3 against 1; the whole of 3
adds a fixed cost per run (Ansible, signing), printed as an absolute figure.

Run: ``.venv/bin/python bench/bench_testinfra_check.py [--n 100] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from qualification.checks.testinfra import TESTINFRA, expand
from qualification.execution.testinfra import run_testinfra

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXAMPLE = REPO / "tests" / "fixtures" / "testinfra"
BODIES = (
    'assert host.file("/etc/passwd").mode & 0o022 == 0',
    'assert host.package("coreutils").is_installed',
    'assert host.run("true").rc == 0',
    'assert host.file("/etc").is_directory',
)


def generated_suite(n: int) -> str:
    lines = ["import pytest", ""]
    for i in range(n):
        lines += ["", '@pytest.mark.urs("URS-HV-02")', f"def test_generated_{i:04d}(host):",
                  f"    {BODIES[i % len(BODIES)]}", ""]
    return "\n".join(lines)


def make_site(root: Path, n: int) -> Path:
    """The example spec and suite, with a second module of ``n`` generated tests."""
    shutil.copytree(EXAMPLE, root / "site")
    spec_path = root / "site" / "testinfra-example.yaml"
    if n <= 0:
        return spec_path
    (root / "site" / "suite" / "test_generated.py").write_text(generated_suite(n))
    spec = yaml.safe_load(spec_path.read_text())
    spec["tests"].append(dict(spec["tests"][0], id="IQ-TI-002", title="Generated",
                              params={"module": "suite/test_generated.py"}))
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return spec_path


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plain_pytest(suite: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", os.devnull, "--rootdir", str(suite), "-q",
         "-p", "no:cacheprovider", "--hosts=local://", str(suite)],
        cwd=suite, capture_output=True, text=True, check=False,
    )
    elapsed = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    return elapsed


def vqual_runner(suite: Path) -> float:
    requests = []
    for module in sorted(suite.glob("test_*.py")):
        requests += [TESTINFRA.request(e.params).to_json()
                     for e in expand({"module": module.name}, suite)]
    t0 = time.perf_counter()
    answers = run_testinfra(requests, {"ansible_connection": "local"}, target="localhost")
    elapsed = time.perf_counter() - t0
    errors = [a["error"] for a in answers.values() if "error" in a]
    if errors or len(answers) != len(requests):
        raise SystemExit(f"runner: {len(errors)} errors, e.g. {errors[:1]}")
    return elapsed


def vqual_qualify(spec: Path, state: Path, evidence: Path, env: dict[str, str]) -> tuple[float, float]:
    """The whole run's wall time and the runner's own time inside it (seconds)."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "vqual"), "qualify", "-i", str(REPO / "inventories" / "local"), "-s", str(spec),
         "-c", "CHG0000900", "--limit", "localhost", "--evidence-dir", str(evidence), "--json"],
        env=env, capture_output=True, text=True, check=False,
    )
    elapsed = time.perf_counter() - t0
    summary = json.loads(done.stdout)
    if summary["verification"] != "valid" or summary["counts"]["error"]:
        raise SystemExit(f"qualify: {summary}")
    inside = 0.0
    for line in (Path(summary["bundle"]) / "records.jsonl").read_text().splitlines():
        record = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if record["kind"] == "check.result":
            inside = max(inside, record["data"]["duration_ms"] / 1000)
    return elapsed, inside


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100, help="generated tests besides the example")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vqual-bench-testinfra-") as tmp:
        root = Path(tmp)
        spec = make_site(root, args.n)
        suite = spec.parent / "suite"
        state = root / "state"
        env = dict(os.environ, VQUAL_STATE_DIR=str(state), ANSIBLE_COLLECTIONS_PATH=str(REPO),
                   PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        subprocess.run([str(BIN / "vqual"), "keys", "create", "--name", "Bench executor",
                        "--role", "executor", "--service", "--throwaway"],
                       env=env, capture_output=True, check=True)
        plain_pytest(suite)  # warm the caches of both, once
        vqual_runner(suite)
        plain, runner, whole, inside = [], [], [], []
        plain_cpu, runner_cpu = [], []
        for _ in range(args.repeat):
            c0 = _child_cpu()
            plain.append(plain_pytest(suite))
            c1 = _child_cpu()
            runner.append(vqual_runner(suite))
            c2 = _child_cpu()
            plain_cpu.append(c1 - c0)
            runner_cpu.append(c2 - c1)
            w, i = vqual_qualify(spec, state, root / "evidence", env)
            whole.append(w)
            inside.append(i)
    tests = max(args.n, 0) + 5
    print(f"suite: {tests} tests, local://, {args.repeat} interleaved runs each; "
          "median (min) in seconds, ratio to plain pytest")
    p, p_min = statistics.median(plain), min(plain)
    for label, times in (
        ("plain pytest --hosts=local://", plain),
        ("vqual runner (run_testinfra)", runner),
        ("vqual qualify, runner inside it", inside),
        ("vqual qualify, whole run", whole),
    ):
        m, low = statistics.median(times), min(times)
        print(f"  {label:34} {m:7.3f} ({low:6.3f})   ratio {m / p:5.3f} ({low / p_min:5.3f})")
    pc, rc = statistics.median(plain_cpu), statistics.median(runner_cpu)
    # CPU time of the pytest processes: what a busy machine's scheduling does not distort.
    print(f"  CPU s of the pytest process: plain {pc:.3f}, vqual runner {rc:.3f}, "
          f"ratio {rc / pc:5.3f}")
    print(f"  the whole run adds {statistics.median(whole) - p:.3f} s: Ansible, planning, "
          "signed evidence, JUnit, report")


if __name__ == "__main__":
    main()
