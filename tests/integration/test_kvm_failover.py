"""The failover OQ on the lab (OQ-KVM-008/-009, URS-OPS-03, docs/ha.md): through
`vqual qualify`, the site's prepare command brings up a real pacemaker/corosync cluster on
the two KVM hosts with a VirtualDomain guest, the fail command kills the namespace of the
host running it (a power loss), the guest must answer on the other host with the marker
written before, and the restore command powers the failed host on again.

Afterwards the lab is as it was: the stack and its packages are gone from both hosts (their
package lists and user files are the base's again), the failed host runs, and a lab clone
that died with it is started again by the guests component's own `up`.

Marked slow: it took 82-205 s here at load 6-15 (two TCG guest boots, a package install
in both hosts, the cluster's DC election), and in the CI lab its teardown boots a lab clone
again. `scripts/run test-slow` runs it; CI keeps the redundant-paths guest as its
representative guest case, and the record and its not-executed path are covered without
the lab (tests/unit/platforms/test_libvirt_guest_failover.py).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import COLLECTION, run_vqual
from tests.integration.test_kvm_cluster import _records, wait_for_guest_slot

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SPEC = COLLECTION / "specs" / "kvm-cluster.yaml"
_FINGERPRINT = ("dpkg-query -W | sha256sum; cat /etc/passwd /etc/group /etc/shadow "
                "/etc/gshadow | sha256sum; ls /etc/corosync /etc/libqb 2>/dev/null | wc -l")


def _lab_command(*args: str) -> list[str]:
    """``vqual-lab ARGS`` for this lab, whatever environment the probe's process gets."""
    env = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("VQUAL_LAB")]
    return ["env", *env, sys.executable, "-m", "vqual_lab.cli", *args]


def _host_state(ctx: Any, kvm: Any) -> dict[str, str]:
    return {h.name: kvm.exec(ctx, h.name, ["sh", "-c", _FINGERPRINT]).stdout.decode()
            for h in kvm.hosts}


@pytest.fixture
def ha_lab(lab: object) -> Iterator[dict[str, Any]]:
    """The lab's hosts and guests as found; afterwards the same again (checked)."""
    from vqual_lab import guests, ha, manager

    ctx = manager.context()
    kvm = manager.component("kvm")
    wait_for_guest_slot()
    before = {"guests": guests.running_guests(), "hosts": _host_state(ctx, kvm)}
    try:
        yield {"ctx": ctx, "uris": guests.lab_hosts()}
    finally:
        for host in kvm.hosts:
            kvm.power_on(ctx, host.name)
        problems = ha.HaStack(ctx).down()
        lost = [n for n in before["guests"] if n not in guests.running_guests()]
        if lost:  # a lab clone that died with the failed host: the lab's own up restarts it
            manager.up(["guests"], ctx=ctx)
        assert not problems, problems
        assert _host_state(ctx, kvm) == before["hosts"]
        assert guests.running_guests() == before["guests"]


def _inventory(tmp_path: Path, uris: dict[str, str]) -> Path:
    from vqual_lab import ha, manager

    inv = tmp_path / "inventory"
    shutil.copytree(manager.inventory_dir(manager.context()), inv)
    (inv / "host_vars").mkdir(exist_ok=True)
    first, *others = sorted(uris)  # the probe runs on the first; the others are peers
    (inv / "host_vars" / f"{first}.yml").write_text(yaml.safe_dump({"vqual_libvirt_oq": {
        "failover": {
            "domain": ha.GUEST,
            "peers": [uris[h] for h in others],
            "prepare_command": _lab_command("ha", "up"),
            "fail_command": _lab_command("fail", "{host}"),
            "restore_command": _lab_command("power-on", "{host}"),
            "versions_command": _lab_command("ha", "versions", "{host}"),
            "bound_s": 240,
        },
    }}))
    return inv


def test_a_failed_host_s_guest_runs_again_on_the_other_host_with_its_data(
    executor_state: Path, ha_lab: dict[str, Any], tmp_path: Path
) -> None:
    uris = ha_lab["uris"]
    first = min(uris)
    started = time.monotonic()
    done = run_vqual("qualify", "-i", str(_inventory(tmp_path, uris)), "-s", str(SPEC),
                     "-c", "CHG0000818", "--limit", first, "--test", "OQ-KVM-008",
                     "--test", "OQ-KVM-009", "--evidence-dir", str(tmp_path / "ev"), "--json",
                     state_dir=executor_state, timeout=900)
    took = time.monotonic() - started
    assert done.returncode in (0, 1), done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid", summary
    verify = run_vqual("verify", summary["bundle"], state_dir=executor_state)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    records = _records(Path(summary["bundle"]))
    results = {r["data"]["test_id"]: r["data"] for r in records if r["kind"] == "check.result"}
    actions = [r["data"] for r in records if r["kind"] == "action"]
    # Each step an action record, in order, every one passed.
    assert [a["name"] for a in actions] == ["guest.marker_write", "host.fail",
                                            "vm.restart_elsewhere", "guest.marker_read",
                                            "host.restore"], actions
    assert all(a["verdict"] == "pass" for a in actions), actions
    run = results["OQ-KVM-008"]
    assert run["verdict"] == "pass", run
    m = run["measured"]
    print(f"failover: guest answering {m['located_s']} s after the prepare; "
          f"{m['failed_host']} -> {m['restarted_on']}, running after "
          f"{m['running_s']} s, answering after {m['restart_s']} s; prepare "
          f"{m['prepare']['seconds']} s; whole qualify {took:.0f} s")
    assert m["restarted_on"] != m["failed_host"] and {m["failed_host"], m["restarted_on"]} \
        <= set(uris)
    assert m["marker_read"] == m["marker_written"] and m["marker_written"].startswith(
        "vqual-failover ")
    assert 0 < m["running_s"] <= m["restart_s"] <= 240
    assert m["fail"]["exit"] == 0 and m["restore"]["exit"] == 0
    stack = m["stack"][m["restarted_on"]]
    assert stack["pacemaker"].startswith("2.") and stack["corosync"].startswith("3.")
    assert stack["libvirt"] and stack["qemu"]
    timing = results["OQ-KVM-009"]
    assert timing["verdict"] == "pass" and timing["observed"] == m["restart_s"], timing
