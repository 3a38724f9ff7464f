"""The lab's Master-VM and clones on the KVM hosts, reached over SSH and the guest agent,
and the VM budget refusing a fourth running guest."""

from __future__ import annotations

import re

import pytest

from vqual_lab import guests, manager
from vqual_lab.component import LabContext
from vqual_lab.guests import VM_BUDGET, GuestSpec, VmBudgetError

pytestmark = pytest.mark.lab

CLONES = [g for g in VM_BUDGET.guests if g.role == "clone"]


@pytest.fixture(scope="module")
def ctx(lab: object) -> LabContext:
    """The lab with its guests up (the session's ``lab`` fixture starts every component;
    ``up`` again is idempotent and fails here with the guests' own log lines)."""
    context = manager.context()
    status = manager.component("guests").up(context)
    assert status.state == "running", f"{status.detail}\n" + "\n".join(status.log_tail)
    return context


def test_clones_answer_ssh_with_their_own_hostname(ctx: LabContext) -> None:
    for clone in CLONES:
        name = guests.ssh_run(ctx.lab_dir, clone.ssh_address, clone.ssh_port, "hostname").strip()
        assert name == clone.name
        assert name not in ("master", "vqual-template")


def test_clone_over_the_guest_agent(ctx: LabContext) -> None:
    clone = CLONES[0]
    agent = guests.agent(clone.name)
    agent.ping()
    result = agent.exec(["/bin/cat", "/etc/hostname"])
    assert (result.exitcode, result.stdout.decode().strip()) == (0, clone.name)
    assert agent.osinfo()["id"] == "debian"
    agent.write_file("/tmp/vqual-agent-probe", b"written through the agent\n")
    over_ssh = guests.ssh_run(
        ctx.lab_dir, clone.ssh_address, clone.ssh_port, "cat /tmp/vqual-agent-probe"
    )
    assert over_ssh == "written through the agent\n"
    assert agent.read_file("/etc/hostname") == f"{clone.name}\n".encode()


def test_clones_have_distinct_machine_ids_and_host_keys(ctx: LabContext) -> None:
    ids, keys = set(), set()
    for clone in CLONES:
        agent = guests.agent(clone.name)
        machine_id = agent.read_file("/etc/machine-id").decode().strip()
        assert re.fullmatch(r"[0-9a-f]{32}", machine_id)
        ids.add(machine_id)
        keys.add(agent.read_file("/etc/ssh/ssh_host_ed25519_key.pub").split()[1])
    assert len(ids) == len(CLONES)
    assert len(keys) == len(CLONES)


def test_clones_run_on_the_lab_kvm_hosts_and_the_master_does_not(ctx: LabContext) -> None:
    running = guests.running_guests()
    for clone in CLONES:
        # On its own host after a fresh `lab up`; a migration may have moved it since.
        assert running.get(clone.name) in guests.lab_hosts()
    assert "master" not in running


def test_inventory_fragment_names_forwards_and_domains(ctx: LabContext) -> None:
    groups = manager.component("guests").inventory(ctx)["groups"]
    assert set(groups["master_vm"]["hosts"]) == {"master"}
    assert groups["master_vm"]["vars"]["vqual_target_kinds"] == ["master_vm"]
    assert groups["clones"]["vars"]["vqual_target_kinds"] == ["clone"]
    assert groups["clones"]["vars"]["ansible_user"] == "root"
    for clone in CLONES:
        hvars = groups["clones"]["hosts"][clone.name]
        assert (hvars["ansible_host"], hvars["ansible_port"]) == (clone.ssh_address, clone.ssh_port)
        assert hvars["vqual_libvirt_domain"] == clone.name
        where = guests.running_guests()[clone.name]
        assert hvars["vqual_libvirt_uri"] == guests.lab_hosts()[where]


def test_clone_live_migrates_and_keeps_its_forward(ctx: LabContext) -> None:
    clone = CLONES[-1]
    running = guests.running_guests()
    home = running[clone.name]
    other = next(h for h in guests.lab_hosts() if h != home)
    machine_id = guests.agent(clone.name).read_file("/etc/machine-id").decode().strip()
    try:
        guests.migrate_guest(clone.name, home, other)
        assert guests.running_guests()[clone.name] == other
        out = guests.ssh_run(
            ctx.lab_dir, clone.ssh_address, clone.ssh_port, "hostname; cat /etc/machine-id"
        )
        assert out.split() == [clone.name, machine_id]  # the same guest, still running
        hvars = manager.component("guests").inventory(ctx)["groups"]["clones"]["hosts"]
        assert hvars[clone.name]["vqual_libvirt_uri"] == guests.lab_hosts()[other]
    finally:
        if guests.running_guests().get(clone.name) == other:
            guests.migrate_guest(clone.name, other, home)
    assert guests.running_guests()[clone.name] == home
    assert guests.agent(clone.name).exec(["/bin/hostname"]).stdout.decode().strip() == clone.name


def test_master_refuses_to_start_while_clones_use_its_disk(ctx: LabContext) -> None:
    master = next(g for g in VM_BUDGET.guests if g.role == "master")
    with pytest.raises(VmBudgetError, match="overlays use its disk"):
        guests.start_guest(ctx.lab_dir, master.name, master.host)
    assert master.name not in guests.running_guests()


def test_budget_refuses_a_fourth_running_guest(ctx: LabContext) -> None:
    throwaway = [
        GuestSpec(
            f"vqual-tmp-{i}", "clone", f"kvm{i % 2 + 1}", f"127.0.0.6{i}", 2260 + i, autostart=False
        )
        for i in (5, 6, 7)
    ]
    running = guests.running_guests()
    assert {c.name for c in CLONES} <= set(running)
    # Fill the budget with throwaway guests (other running domains count too), then one more.
    fill = throwaway[: max(0, VM_BUDGET.max_running - len(running))]
    extra = throwaway[len(fill)]
    try:
        for spec in fill:
            guests.define_guest(ctx, spec)
            guests.start_guest(ctx.lab_dir, spec.name, spec.host)
            assert guests.running_guests().get(spec.name) == spec.host
        assert len(guests.running_guests()) == VM_BUDGET.max_running
        guests.define_guest(ctx, extra)
        with pytest.raises(VmBudgetError, match="at most 3 may run at once"):
            guests.start_guest(ctx.lab_dir, extra.name, extra.host)
        assert extra.name not in guests.running_guests()
    finally:
        for spec in throwaway:
            guests.remove_guest(ctx, spec.name, spec.host)
    assert not any(n.startswith("vqual-tmp-") for n in guests.running_guests())


def test_unknown_guest_names_cannot_be_defined(ctx: LabContext) -> None:
    spec = GuestSpec("scratch", "clone", "kvm1", "127.0.0.68", 2268, autostart=False)
    with pytest.raises(VmBudgetError, match="not in the VM budget"):
        guests.define_guest(ctx, spec)
