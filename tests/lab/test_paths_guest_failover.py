"""Redundant paths (VQ-76) degraded the other ways, on the lab's paths guest (slow: its own
guest boot, about 70 s; the representative case in CI is tests/lab/test_paths_guest.py).

The *active* bond member loses its link: the kernel fails over to the other member, and the
run names the member down and measures the new active member. One SCSI path is hot-unplugged
through libvirt (a pulled cable, not an offline state): the guest kernel removes ``sdb``,
multipathd drops it from ``mpatha``, and the map fails the minimum of active paths with one
path left, although no path is *failed*: only the count shows a detached path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.test_paths_guest import EXPECTED, NAME, _qualify, guest  # noqa: F401

pytestmark = [pytest.mark.lab, pytest.mark.slow]

#: As in test_paths_guest.py: the MII monitor (100 ms) and multipathd's events and checker
#: (2 s) many times over under TCG on a busy machine.
BOUND_S = 60.0


def _until(ctx: Any, g: Any, command: str, want: str) -> str:
    from vqual_lab import paths_guest

    deadline = time.monotonic() + BOUND_S
    while True:
        out = paths_guest.ssh(ctx, g, command)
        if want in out:
            return out
        assert time.monotonic() < deadline, f"{want!r} not seen after {BOUND_S} s: {out}"
        time.sleep(0.5)


def test_active_member_down_fails_over_and_a_detached_path_fails_the_minimum(
    guest: tuple[Any, Any, dict[str, float]], executor_state: Path, tmp_path: Path  # noqa: F811
) -> None:
    from vqual_lab import paths_guest

    ctx, g, _timings = guest
    inventory = tmp_path / "inventory.yml"
    host = {**paths_guest.inventory_host(ctx, g), "vqual_expected": EXPECTED}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {NAME: host}}}))

    paths_guest.set_link(g, 0, up=False)  # eth1, the active member
    paths_guest.detach_path(g, 1)  # sdb
    _until(ctx, g, "cat /proc/net/bonding/bond0", "Currently Active Slave: eth2")
    _until(ctx, g, "ls /sys/block; multipathd show paths raw format '%d %t'",
           "sda active")
    _until(ctx, g, "ls /sys/block | tr '\\n' ' '", "dm-0 sda vda")
    rc, results = _qualify(tmp_path / "run", executor_state, inventory, "CHG0007603")
    verdicts = {t: r["verdict"] for t, r in results.items()}
    assert verdicts == {"IQ-RP-001": "pass", "IQ-RP-002": "pass", "IQ-RP-003": "fail",
                        "IQ-RP-004": "fail", "IQ-RP-005": "pass"}, results
    assert rc != 0
    bond = results["IQ-RP-003"]
    assert bond["observed"] == ["bond0/eth1"]
    assert bond["measured"]["bond0"] == {"mode": "active-backup", "active_member": "eth2",
                                         "members": {"eth1": "down", "eth2": "up"}}
    paths = results["IQ-RP-004"]
    assert paths["observed"] == 1
    assert paths["measured"]["mpatha"]["paths"] == {"sda": "active/running/ready"}
