"""The WinRM stand-in (not Hyper-V) through pywinrm, as a Hyper-V adapter would use it: basic
authentication over HTTP, ``run_ps`` of the cmdlets it answers, JSON in the shape of
``ConvertTo-Json``, errors (never invented data) for anything else, and a clean lifecycle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import winrm
from winrm.exceptions import InvalidCredentialsError

from vqual_lab import manager
from vqual_lab.component import LabContext, processes_under, same_process
from vqual_lab.winrm_standin import WinRMStandIn

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def standin(lab: object) -> Iterator[tuple[LabContext, WinRMStandIn]]:
    ctx = manager.context()
    if "winrm" in manager.names():
        comp = manager.component("winrm")
        assert isinstance(comp, WinRMStandIn)
        started = False
    else:
        # Not (yet) one of the manager's components: bring it up for this module only.
        comp = WinRMStandIn()
        st = comp.up(ctx)
        assert st.state == "running", st
        started = True
    yield ctx, comp
    if started:
        comp.down(ctx)


@pytest.fixture(scope="module")
def session(standin: tuple[LabContext, WinRMStandIn]) -> winrm.Session:
    ctx, comp = standin
    return _session(comp.url, comp.read_credentials(ctx))


def _session(url: str, auth: tuple[str, str]) -> winrm.Session:
    # Plain HTTP has no certificate to validate; saying so explicitly keeps pywinrm from
    # reading a CA bundle from the environment (and warning about it).
    return winrm.Session(url, auth=auth, transport="basic", server_cert_validation="ignore")


def _ps(session: winrm.Session, script: str) -> Any:
    r = session.run_ps(script)
    assert r.status_code == 0, r.std_err
    assert r.std_err == b""
    return json.loads(r.std_out)


def test_get_vmhost_has_the_documented_migration_and_path_properties(
    session: winrm.Session,
) -> None:
    host = _ps(session, "Get-VMHost | ConvertTo-Json")
    assert isinstance(host, dict)  # one object: ConvertTo-Json writes it unwrapped
    assert host["VirtualMachineMigrationAuthenticationType"] == 1  # enum as number: Kerberos
    assert host["VirtualMachineMigrationPerformanceOption"] == 2  # SMB
    assert host["UseAnyNetworkForMigration"] is False
    assert host["EnableEnhancedSessionMode"] is False
    assert host["VirtualMachinePath"].startswith("C:\\ClusterStorage\\")
    assert isinstance(host["MemoryCapacity"], int)


def test_get_computerinfo_reports_server_core_and_build(session: winrm.Session) -> None:
    info = _ps(
        session, "$ProgressPreference = 'SilentlyContinue'; Get-ComputerInfo | ConvertTo-Json"
    )
    assert info["WindowsInstallationType"] == "Server Core"
    assert info["OsBuildNumber"] == "17763"
    assert info["CsModel"] == "PowerEdge R650"


def test_get_vm_lists_several_and_filters_by_name(session: winrm.Session) -> None:
    vms = _ps(session, "Get-VM | ConvertTo-Json -Compress")
    assert isinstance(vms, list) and len(vms) == 3
    assert {vm["Generation"] for vm in vms} == {2}
    assert {vm["State"] for vm in vms} == {2, 3}  # Running, Off (enum numbers)
    one = _ps(session, "Get-VM -Name gxp-db-01 | ConvertTo-Json")
    assert isinstance(one, dict) and one["Name"] == "gxp-db-01"
    two = _ps(session, "Get-VM gxp-* | ConvertTo-Json")
    assert [vm["Name"] for vm in two] == ["gxp-app-01", "gxp-db-01"]


def test_get_vmswitch_secure_boot_and_features(session: winrm.Session) -> None:
    switches = _ps(session, "Get-VMSwitch | ConvertTo-Json")
    assert {s["Name"]: s["AllowManagementOS"] for s in switches} == {
        "vSwitch-Production": False,
        "vSwitch-Management": True,
    }
    assert all(s["SwitchType"] == 2 for s in switches)  # External
    assert _ps(session, "Confirm-SecureBootUEFI | ConvertTo-Json") is True
    feature = _ps(session, "Get-WindowsFeature Hyper-V | ConvertTo-Json")
    assert feature["Name"] == "Hyper-V" and feature["Installed"] is True
    both = _ps(session, "Get-WindowsFeature -Name Hyper-V,Failover-Clustering | ConvertTo-Json")
    assert [f["Name"] for f in both] == ["Hyper-V", "Failover-Clustering"]


@pytest.mark.parametrize(
    "script",
    [
        "Get-VMHost",  # no ConvertTo-Json: the stand-in has no formatter output
        "Get-Tpm | ConvertTo-Json",  # a cmdlet it does not know
        "Get-VM | Select-Object Name | ConvertTo-Json",
        "Get-VMHost | ConvertTo-Json; Get-VM | ConvertTo-Json",
        "Get-VM -Name nothing-like-this | ConvertTo-Json",
    ],
)
def test_what_it_cannot_answer_is_an_error_not_data(session: winrm.Session, script: str) -> None:
    r = session.run_ps(script)
    assert r.status_code == 1
    assert r.std_out == b""
    assert r.std_err


def test_plain_commands_are_refused(session: winrm.Session) -> None:
    r = session.run_cmd("ipconfig", ["/all"])
    assert r.status_code == 1
    assert b"not recognized" in r.std_err


def test_wrong_password_is_refused(standin: tuple[LabContext, WinRMStandIn]) -> None:
    ctx, comp = standin
    user, _ = comp.read_credentials(ctx)
    bad = _session(comp.url, (user, "not-the-password"))
    with pytest.raises(InvalidCredentialsError):
        bad.run_ps("Get-VMHost | ConvertTo-Json")


def test_credentials_stay_private(standin: tuple[LabContext, WinRMStandIn]) -> None:
    ctx, comp = standin
    path = comp.credentials_file(ctx)
    assert path.stat().st_mode & 0o777 == 0o600
    _, password = comp.read_credentials(ctx)
    inventory = json.dumps(comp.inventory(ctx))
    assert password not in inventory
    assert "lookup('ansible.builtin.file'" in inventory
    assert password not in (ctx.run_dir / "winrm" / "winrm.log").read_text()
    pid = ctx.state()["winrm"]["pid"]
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        assert password.encode() not in fh.read()


def test_inventory_group_is_hyperv_hosts(standin: tuple[LabContext, WinRMStandIn]) -> None:
    ctx, comp = standin
    groups = comp.inventory(ctx)["groups"]
    assert list(groups) == ["hyperv_hosts"]
    hv = groups["hyperv_hosts"]["hosts"]["winrm-hv1"]
    assert hv["vqual_target_kinds"] == ["hyperv_host"]
    assert (hv["vqual_winrm_host"], hv["vqual_winrm_port"]) == (comp.address, comp.port)
    assert comp.url == f"http://{comp.address}:{comp.port}/wsman"
    assert "not Hyper-V" in hv["vqual_lab_simulator"]


def test_down_stops_it_by_pid_then_up_again(standin: tuple[LabContext, WinRMStandIn]) -> None:
    ctx, comp = standin
    rec = ctx.state()["winrm"]
    st = comp.down(ctx)
    assert st.state == "stopped", st
    assert not same_process(rec["pid"], rec["start"])
    assert processes_under([ctx.run_dir / "winrm"]) == []
    assert comp.status(ctx).state == "stopped"
    st = comp.up(ctx)
    assert st.state == "running", st
    s = _session(comp.url, comp.read_credentials(ctx))
    assert _ps(s, "Confirm-SecureBootUEFI | ConvertTo-Json") is True
