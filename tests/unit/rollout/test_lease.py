"""The cluster lease: one run per cluster, heartbeat expiry, take-over only by --resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qualification.rollout.lease import LeaseManager, LeaseRefused, cluster_key


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_cluster_key_is_file_safe_and_distinct() -> None:
    assert cluster_key("DC0/C0").startswith("DC0_C0-")
    assert cluster_key("DC0/C0") != cluster_key("DC0_C0")


def test_a_second_run_is_refused_while_the_first_holds_a_live_lease(tmp_path: Path) -> None:
    first = LeaseManager(tmp_path, "C0")
    first.acquire("R1", "CHG0000001")
    second = LeaseManager(tmp_path, "C0")
    with pytest.raises(LeaseRefused, match="leased to run R1") as err:
        second.acquire("R2", "CHG0000002")
    assert err.value.exit_code == 2
    assert json.loads(first.path.read_text())["run_id"] == "R1"
    assert first.release() and not first.path.exists()
    second.acquire("R2", "CHG0000002")
    assert second.read() is not None and second.read().run_id == "R2"  # type: ignore[union-attr]


def test_other_clusters_are_not_affected(tmp_path: Path) -> None:
    LeaseManager(tmp_path, "C0").acquire("R1", "CHG0000001")
    LeaseManager(tmp_path, "C1").acquire("R2", "CHG0000001")


def _crashed_lease(tmp_path: Path, *, heartbeat_age_s: float, ttl_s: float = 120.0) -> LeaseManager:
    mgr = LeaseManager(tmp_path, "C0", ttl_s=ttl_s)
    mgr.acquire("R1", "CHG0000001")
    data = json.loads(mgr.path.read_text())
    data["pid"] = _dead_pid()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - heartbeat_age_s))
    data["heartbeat"] = stamp
    mgr.path.write_text(json.dumps(data))
    return mgr


def test_resume_takes_over_the_lease_of_its_crashed_run(tmp_path: Path) -> None:
    _crashed_lease(tmp_path, heartbeat_age_s=1)
    other = LeaseManager(tmp_path, "C0")
    with pytest.raises(LeaseRefused):
        other.acquire("R9", "CHG0000009")  # not its run, heartbeat still live
    got = LeaseManager(tmp_path, "C0").acquire("R2", "CHG0000001", resume_of="R1")
    assert got.took_over is not None and got.took_over.run_id == "R1"
    assert "process is gone" in (got.reason or "")
    assert got.lease.run_id == "R2" and got.lease.pid == os.getpid()


def test_resume_of_a_live_run_is_refused(tmp_path: Path) -> None:
    LeaseManager(tmp_path, "C0").acquire("R1", "CHG0000001")  # this process: alive
    with pytest.raises(LeaseRefused, match="process still runs"):
        LeaseManager(tmp_path, "C0").acquire("R2", "CHG0000001", resume_of="R1")


def test_an_expired_heartbeat_lets_another_run_take_the_lease(tmp_path: Path) -> None:
    _crashed_lease(tmp_path, heartbeat_age_s=600, ttl_s=120)
    got = LeaseManager(tmp_path, "C0").acquire("R3", "CHG0000003")
    assert got.took_over is not None and "heartbeat expired" in (got.reason or "")


def test_heartbeat_refreshes_and_never_overwrites_another_runs_lease(tmp_path: Path) -> None:
    mgr = LeaseManager(tmp_path, "C0")
    first = mgr.acquire("R1", "CHG0000001").lease
    time.sleep(0.01)
    mgr.heartbeat()
    beat = mgr.read()
    assert beat is not None and beat.heartbeat > first.heartbeat
    data = json.loads(mgr.path.read_text())
    data["run_id"] = "R2"
    mgr.path.write_text(json.dumps(data))
    mgr.heartbeat()
    assert json.loads(mgr.path.read_text())["run_id"] == "R2"
    assert not mgr.release()  # not ours any more: left alone
    assert mgr.path.exists()


def test_heartbeat_thread_keeps_the_lease_fresh(tmp_path: Path) -> None:
    mgr = LeaseManager(tmp_path, "C0", ttl_s=0.4)
    first = mgr.acquire("R1", "CHG0000001").lease
    mgr.start_heartbeat(interval_s=0.05)
    time.sleep(0.3)
    mgr.stop_heartbeat()
    current = mgr.read()
    assert current is not None and current.heartbeat > first.heartbeat
    mgr.release()
