"""A fleet smoke test: five sshd endpoints (bench/fleet.py) qualified over SSH.

The large fleet runs are benchmarks (bench/bench_fleet.py, docs/performance.md); this one
keeps the path they measure working in CI: real sshd, real SSH with pipelining and
ControlPersist, the host spec, a bundle that verifies, and ``--forks`` honoured.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bench.fleet import Fleet
from tests.conftest import COLLECTION, REPO, run_vqual

HOSTS = 5
FORKS = 2


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet(HOSTS, prefix="smoke") as started:
        yield started


def _results(bundle: Path) -> list[dict]:
    out = []
    for line in (bundle / "records.jsonl").read_text().splitlines():
        record = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if record["kind"] == "check.result":
            out.append(record["data"])
    return out


def _most_at_once(windows: list[tuple[str, str]]) -> int:
    """The most windows open at one instant; one that ends as another starts does not overlap
    it (times are UTC text of one format, so they sort as text)."""
    edges = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows],
                   key=lambda edge: (edge[0], edge[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_five_ssh_endpoints_qualify_verify_and_keep_to_the_forks(
    fleet: Fleet, executor_state: Path, tmp_path: Path
) -> None:
    expected = yaml.safe_load((REPO / "inventories/local/host_vars/localhost.yml").read_text())
    inventory = fleet.write_inventory("linux_hosts", group_vars=expected, cluster_size=HOSTS)
    done = run_vqual("qualify", "-i", str(inventory), "-s", "linux-virt-host", "-c", "CHG0000195",
                     "--run-id", "fleet-smoke", "--forks", str(FORKS),
                     "--evidence-dir", str(tmp_path / "evidence"), "--json",
                     state_dir=executor_state, timeout=120)
    # This machine is not the committed Debian KVM host: fails are honest, not errors of SSH.
    assert done.returncode in (0, 1), done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid"
    assert summary["unreachable"] == []
    bundle = tmp_path / "evidence" / "CHG0000195" / "fleet-smoke"
    results = _results(bundle)
    targets = {r["target"] for r in results}
    assert targets == {e.name for e in fleet.endpoints}
    # Every host was reached over SSH: its observations came back (not all "error").
    for name in targets:
        assert any(r["verdict"] != "error" for r in results if r["target"] == name), name
    # Each host's window (probe sent to results back) is one worker's: never more than
    # --forks of them at once. (Cross-host results are the compare task's, run once.)
    windows = {(r["target"], r["started"], r["finished"]) for r in results
               if (r.get("expected") or {}).get("op") != "same_across_hosts"}
    assert len(windows) == HOSTS
    assert _most_at_once([(s, f) for _, s, f in windows]) <= FORKS
    verify = run_vqual("verify", str(bundle), state_dir=executor_state)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert (COLLECTION / "specs" / "linux-virt-host.yaml").is_file()
