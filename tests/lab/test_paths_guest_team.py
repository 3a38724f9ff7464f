"""Teamed NICs (teamd, libteam; VQ-76) on the lab's paths guest, judged as bonds are.

The paths guest booted as its team variant (``paths_guest.start(..., team=True)``): the same
two virtio NICs made ``team0`` by teamd (activebackup runner, ethtool link watch) instead of
the kernel bond. ``vqual qualify`` with the shipped ``redundant-paths`` spec passes (the team's
runner is the site's ``active-backup`` mode, two members); then ``eth2``'s link is set down
through libvirt and the same run fails IQ-RP-003 naming ``team0/eth2``, with each port's link
and the runner measured. Every value is teamd's own ``teamdctl team0 state dump``. Slow: its
own guest boot (the representative bond case in CI is tests/lab/test_paths_guest.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.test_paths_guest import DEGRADE_BOUND_S, EXPECTED, NAME, _qualify

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def team_guest(lab: object) -> Iterator[tuple[Any, Any, dict[str, float]]]:
    from vqual_lab import manager, paths_guest

    ctx = manager.context()
    timings: dict[str, float] = {}
    image = paths_guest.build_paths_image(ctx.lab_dir, ctx.log)
    address, port = paths_guest.forward()
    g = paths_guest.define(ctx, image, NAME, "kvm2", address, port)
    try:
        t0 = time.monotonic()
        paths_guest.start(ctx, g, team=True)
        timings["boot_and_setup"] = time.monotonic() - t0
        yield ctx, g, timings
    finally:
        paths_guest.remove(ctx, g)


def _wait_port_down(ctx: Any, g: Any, port: str) -> None:
    import json

    from vqual_lab import paths_guest

    deadline = time.monotonic() + DEGRADE_BOUND_S
    while True:
        state = json.loads(paths_guest.ssh(ctx, g, "teamdctl team0 state dump"))
        if state["ports"][port]["link"]["up"] is False:
            return
        assert time.monotonic() < deadline, f"{port} still up after {DEGRADE_BOUND_S} s"
        time.sleep(0.5)


def test_a_team_passes_as_a_bond_and_fails_naming_the_port_whose_link_is_down(
    team_guest: tuple[Any, Any, dict[str, float]], executor_state: Path, tmp_path: Path
) -> None:
    from vqual_lab import paths_guest

    ctx, g, timings = team_guest
    inventory = tmp_path / "inventory.yml"
    host = {**paths_guest.inventory_host(ctx, g), "vqual_expected": EXPECTED}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {NAME: host}}}))

    t0 = time.monotonic()
    rc, healthy = _qualify(tmp_path / "healthy", executor_state, inventory, "CHG0007604")
    timings["healthy_run"] = time.monotonic() - t0
    assert {t: r["verdict"] for t, r in healthy.items()} == {
        f"IQ-RP-00{i}": "pass" for i in range(1, 6)}, healthy
    assert rc == 0
    assert healthy["IQ-RP-001"]["observed"] == "active-backup"
    assert healthy["IQ-RP-001"]["measured"]["team0"]["runner"] == "activebackup"
    assert healthy["IQ-RP-002"]["observed"] == 2

    paths_guest.set_link(g, 1, up=False)  # eth2: carrier lost, teamd's ethtool watch sees it
    _wait_port_down(ctx, g, "eth2")
    t0 = time.monotonic()
    rc, degraded = _qualify(tmp_path / "degraded", executor_state, inventory, "CHG0007605")
    timings["degraded_run"] = time.monotonic() - t0
    print("team guest timings (s):", {k: round(v, 1) for k, v in timings.items()})
    verdicts = {t: r["verdict"] for t, r in degraded.items()}
    assert verdicts == {"IQ-RP-001": "pass", "IQ-RP-002": "pass", "IQ-RP-003": "fail",
                        "IQ-RP-004": "pass", "IQ-RP-005": "pass"}, degraded
    assert rc != 0
    team = degraded["IQ-RP-003"]
    assert team["observed"] == ["team0/eth2"]
    assert "team0/eth2" in team["reason"]
    assert team["measured"]["team0"] == {
        "mode": "active-backup", "runner": "activebackup", "active_member": "eth1",
        "members": {"eth1": "up", "eth2": "down"}}
