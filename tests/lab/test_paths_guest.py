"""Redundant paths (URS-CL-03, VQ-76) on a real bond and a real dm-multipath device.

This machine's kernel has neither, so the lab boots a throwaway TCG guest
(``vqual-tmp-paths``, lab/vqual_lab/paths_guest.py) whose Debian kernel has: two virtio NICs
bonded (active-backup) and one raw disk reached over two virtio-scsi controllers with one
serial and WWN, assembled by multipathd. ``vqual qualify`` with the shipped
``redundant-paths`` spec passes on it; then one bond member's link is set down through
libvirt (the guest sees carrier loss) and one SCSI path is set offline in the guest, and the
same run fails naming ``bond0/eth2`` and ``mpatha: sdb`` with the measured states. Every value
is the guest kernel's and multipathd's own output. It takes one guest of the VM budget.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, run_vqual

pytestmark = [pytest.mark.lab]

NAME = "vqual-tmp-paths"
SPEC = REPO / "ansible_collections" / "vqual" / "qualification" / "specs" / "redundant-paths.yaml"
EXPECTED = {"bond_mode": "active-backup", "bond_members": 2,
            "multipath_active_paths": {"min": 2}}
#: multipathd's checker runs every 2 s (polling_interval in the image's multipath.conf) and
#: the bond's MII monitor every 100 ms; 60 s is many times both under TCG on a busy machine.
DEGRADE_BOUND_S = 60.0


@pytest.fixture(scope="module")
def guest(lab: object) -> Iterator[tuple[Any, Any, dict[str, float]]]:
    from vqual_lab import manager, paths_guest

    ctx = manager.context()
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    image = paths_guest.build_paths_image(ctx.lab_dir, ctx.log)
    timings["image"] = time.monotonic() - t0
    address, port = paths_guest.forward()
    g = paths_guest.define(ctx, image, NAME, "kvm2", address, port)
    try:
        t0 = time.monotonic()
        paths_guest.start(ctx, g)
        timings["boot_and_setup"] = time.monotonic() - t0
        yield ctx, g, timings
    finally:
        paths_guest.remove(ctx, g)


def _results(bundle: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for line in (bundle / "records.jsonl").read_text().splitlines():
        record = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if record["kind"] == "check.result":
            out[record["data"]["test_id"]] = record["data"]
    return out


def _qualify(tmp: Path, state: Path, inventory: Path, change: str) -> tuple[int, dict[str, Any]]:
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(SPEC), "-c", change,
                     "--limit", NAME, "--evidence-dir", str(tmp / "evidence"), "--json",
                     state_dir=state)
    assert done.stdout.strip().startswith("{"), done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid" and summary["unreachable"] == [], summary
    return done.returncode, _results(Path(summary["bundle"]))


def _wait_degraded(ctx: Any, g: Any) -> str:
    from vqual_lab import paths_guest

    deadline = time.monotonic() + DEGRADE_BOUND_S
    while True:
        out = paths_guest.ssh(
            ctx, g, "grep -A1 'Slave Interface: eth2' /proc/net/bonding/bond0; "
            "multipathd show paths raw format '%d %t %o %T'")
        if "MII Status: down" in out and "sdb failed offline faulty" in out:
            return out
        assert time.monotonic() < deadline, f"not degraded after {DEGRADE_BOUND_S} s: {out}"
        time.sleep(0.5)


def test_bond_and_multipath_pass_healthy_and_fail_degraded_naming_what_failed(
    guest: tuple[Any, Any, dict[str, float]], executor_state: Path, tmp_path: Path
) -> None:
    from vqual_lab import paths_guest

    ctx, g, timings = guest
    inventory = tmp_path / "inventory.yml"
    host = {**paths_guest.inventory_host(ctx, g), "vqual_expected": EXPECTED}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {NAME: host}}}))

    t0 = time.monotonic()
    rc, healthy = _qualify(tmp_path / "healthy", executor_state, inventory, "CHG0007601")
    timings["healthy_run"] = time.monotonic() - t0
    assert {t: r["verdict"] for t, r in healthy.items()} == {
        f"IQ-RP-00{i}": "pass" for i in range(1, 6)}, healthy
    assert rc == 0
    assert healthy["IQ-RP-001"]["observed"] == "active-backup"
    assert healthy["IQ-RP-004"]["observed"] == 2

    paths_guest.set_link(g, 1, up=False)  # eth2: carrier lost, as a pulled cable
    paths_guest.ssh(ctx, g, "echo offline > /sys/block/sdb/device/state")
    _wait_degraded(ctx, g)
    t0 = time.monotonic()
    rc, degraded = _qualify(tmp_path / "degraded", executor_state, inventory, "CHG0007602")
    timings["degraded_run"] = time.monotonic() - t0
    print("paths guest timings (s):", {k: round(v, 1) for k, v in timings.items()})
    verdicts = {t: r["verdict"] for t, r in degraded.items()}
    assert verdicts == {"IQ-RP-001": "pass", "IQ-RP-002": "pass", "IQ-RP-003": "fail",
                        "IQ-RP-004": "fail", "IQ-RP-005": "fail"}, degraded
    assert rc != 0
    bond = degraded["IQ-RP-003"]
    assert bond["observed"] == ["bond0/eth2"]
    assert bond["measured"]["bond0"]["members"] == {"eth1": "up", "eth2": "down"}
    assert "bond0/eth2" in bond["reason"]
    paths = degraded["IQ-RP-005"]
    assert paths["observed"] == ["mpatha: sdb (failed/offline/faulty)"]
    assert paths["measured"]["mpatha"]["paths"] == {
        "sda": "active/running/ready", "sdb": "failed/offline/faulty"}
    assert degraded["IQ-RP-004"]["observed"] == 1
