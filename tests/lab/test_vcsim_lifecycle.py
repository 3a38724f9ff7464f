"""The simulator component's lifecycle and secrets: idempotent up, credentials only in 0600
files (resolved by Ansible through the file lookup, absent from the inventory, the argv and
the logs), and a down that stops both processes by PID and leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vqual_lab import manager, vcsim
from vqual_lab.component import processes_under, same_process

pytestmark = pytest.mark.lab

VENV_BIN = Path(sys.executable).parent


def _comp() -> vcsim.VcsimComponent:
    c = manager.component("vcsim")
    assert isinstance(c, vcsim.VcsimComponent)
    return c


def test_up_again_is_a_no_op_and_status_is_running(lab: object) -> None:
    ctx = manager.context()
    comp = _comp()
    before = ctx.state()["vcsim"]["processes"]
    again = comp.up(ctx)
    assert again.state == "running", again
    assert again.detail.startswith("already running")
    assert ctx.state()["vcsim"]["processes"] == before
    st = comp.status(ctx)
    assert st.state == "running"
    for inst in comp.instances:
        assert inst.url in st.detail


def test_credentials_are_private_and_appear_nowhere_else(lab: object) -> None:
    ctx = manager.context()
    comp = _comp()
    records = ctx.state()["vcsim"]["processes"]
    inventory_text = yaml.safe_dump(comp.inventory(ctx))
    for inst in comp.instances:
        path = vcsim.credentials_file(ctx, inst)
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o077 == 0
        user, password = vcsim.read_credentials(ctx, inst)
        assert len(password) >= 20
        assert password not in inventory_text and user not in inventory_text
        cmdline = Path(f"/proc/{records[inst.key]['pid']}/cmdline").read_bytes().decode()
        assert password not in cmdline
        log = (ctx.run_dir / "vcsim" / f"{inst.key}.log").read_text()
        assert password not in log
        assert password not in ctx.state_file.read_text()
    written = manager.inventory_dir(ctx)
    if written.is_dir():
        for f in written.rglob("*"):
            if f.is_file():
                text = f.read_text(errors="replace")
                for inst in comp.instances:
                    assert vcsim.read_credentials(ctx, inst)[1] not in text, f


def test_ansible_resolves_the_credentials_from_the_inventory(lab: object, tmp_path: Path) -> None:
    ctx = manager.context()
    comp = _comp()
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": comp.inventory(ctx)["groups"]}}))
    playbook = tmp_path / "play.yml"
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "vcenter:esxi",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "ansible.builtin.copy": {
                                "content": "{{ {'u': vqual_vsphere_username, "
                                "'p': vqual_vsphere_password, "
                                "'validate': vqual_vsphere_validate_certs, "
                                "'kinds': vqual_target_kinds} | to_json }}",
                                "dest": f"{out}/{{{{ inventory_hostname }}}}.json",
                                "mode": "0600",
                            },
                            "no_log": True,
                        }
                    ],
                }
            ]
        )
    )
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for inst in comp.instances:
        got = json.loads((out / f"{inst.inventory_host}.json").read_text())
        assert (got["u"], got["p"]) == vcsim.read_credentials(ctx, inst)
        assert got["validate"] is False
        assert got["kinds"] == [{"vcenter": "vcenter", "esx": "esxi"}[inst.mode]]
        assert vcsim.read_credentials(ctx, inst)[1] not in done.stdout


def test_down_stops_both_by_pid_and_up_brings_new_credentials(lab: object) -> None:
    ctx = manager.context()
    comp = _comp()
    records = ctx.state()["vcsim"]["processes"]
    old = {i.key: vcsim.read_credentials(ctx, i) for i in comp.instances}
    st = comp.down(ctx)
    assert st.state == "stopped", st
    assert not any(same_process(r["pid"], r["start"]) for r in records.values())
    assert processes_under([ctx.lab_dir / "vcsim" / "bin", ctx.run_dir / "vcsim"]) == []
    assert "vcsim" not in ctx.state()
    assert not (ctx.run_dir / "vcsim").exists()
    assert comp.status(ctx).state == "stopped"
    assert not vcsim._sdk_answers(comp.instance("vcenter"), timeout=1.0)

    st = comp.up(ctx)  # leave it running for the tests after this one
    assert st.state == "running", st
    assert "cached binary" in st.detail
    new = {i.key: vcsim.read_credentials(ctx, i) for i in comp.instances}
    assert all(new[k][1] != old[k][1] for k in new)
    si = vcsim.connect(ctx, comp.instance("vcenter"))
    try:
        assert si.RetrieveContent().about.apiType == "VirtualCenter"
    finally:
        vcsim.disconnect(si)


def test_a_stalled_simulator_is_reported_partial_with_its_log(lab: object) -> None:
    ctx = manager.context()
    comp = _comp()
    pid = ctx.state()["vcsim"]["processes"]["esxi"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        st = comp.status(ctx)
        assert st.state == "partial", st
        assert "esxi" in st.detail
        assert any("vqual-vcsim ready mode=esx" in line for line in st.log_tail)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert comp.status(ctx).state == "running"


def test_a_port_in_use_fails_that_instance_and_the_next_up_recovers(lab: object) -> None:
    ctx = manager.context()
    comp = _comp()
    esxi = comp.instance("esxi")
    assert comp.down(ctx).state == "stopped"
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        squatter.bind((esxi.address, esxi.port))
        squatter.listen(1)
        st = comp.up(ctx)
        assert st.state == "partial", st
        assert st.detail.startswith("esxi did not answer")
        assert any("address already in use" in line for line in st.log_tail), st.log_tail
        assert vcsim._sdk_answers(comp.instance("vcenter"))
    finally:
        squatter.close()
    st = comp.up(ctx)  # half up: restarts both cleanly
    assert st.state == "running", st
    assert comp.status(ctx).state == "running"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-bios-version", "DC0_C0_H9=1.0"], 'no host named "DC0_C0_H9"'),
        (["-bios-date", "*=10/05/2023"], "-bios-date"),
        (["-mode", "hyperv"], "-mode must be vcenter or esx"),
    ],
)
def test_main_go_refuses_bad_flags_before_serving(
    lab: object, tmp_path: Path, extra: list[str], message: str
) -> None:
    built = vcsim.build(manager.context().lab_dir)
    cred = tmp_path / "cred.json"
    cred.write_text(json.dumps({"username": "u", "password": "p"}))
    done = subprocess.run(
        [
            str(built.binary),
            "-mode",
            "vcenter",
            "-listen",
            "127.0.0.45:18446",
            "-credentials",
            str(cred),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "ready" not in done.stdout


def test_main_go_needs_a_credentials_file(lab: object, tmp_path: Path) -> None:
    built = vcsim.build(manager.context().lab_dir)
    done = subprocess.run(
        [str(built.binary), "-listen", "127.0.0.45:18446"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "-credentials is required" in done.stderr


def test_a_refused_start_leaves_no_datastore_directory(lab: object, tmp_path: Path) -> None:
    built = vcsim.build(manager.context().lab_dir)
    cred = tmp_path / "cred.json"
    cred.write_text(json.dumps({"username": "u", "password": "p"}))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        [
            str(built.binary),
            "-listen",
            "127.0.0.45:18446",
            "-credentials",
            str(cred),
            "-bios-version",
            "nosuchhost=1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert done.returncode == 2
    # The model was created (its datastore directories) before the flag was checked.
    assert list(scratch.iterdir()) == []
