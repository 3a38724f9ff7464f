"""The lab's VMware simulator seen through pyVmomi, as the vSphere adapter will see it:
vCenter 6.5 with a 4-host cluster and a template, a standalone ESXi, the provoked BIOS
difference, the simulator's STIG-failing defaults, the patch mark, the patched Fetch, and
maintenance mode."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from vqual_lab import manager, vcsim
from vqual_lab.component import LabContext

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def ctx(lab: object) -> LabContext:
    return manager.context()


@pytest.fixture(scope="module")
def comp(lab: object) -> vcsim.VcsimComponent:
    c = manager.component("vcsim")
    assert isinstance(c, vcsim.VcsimComponent)
    return c


@contextlib.contextmanager
def _session(ctx: LabContext, comp: vcsim.VcsimComponent, key: str) -> Iterator[Any]:
    """A second, independent login (what another API client would see)."""
    si = vcsim.connect(ctx, comp.instance(key))
    try:
        yield si
    finally:
        vcsim.disconnect(si)


@pytest.fixture(scope="module")
def vc(ctx: LabContext, comp: vcsim.VcsimComponent) -> Iterator[Any]:
    with _session(ctx, comp, "vcenter") as si:
        yield si


@pytest.fixture(scope="module")
def esx(ctx: LabContext, comp: vcsim.VcsimComponent) -> Iterator[Any]:
    with _session(ctx, comp, "esxi") as si:
        yield si


def _all(si: Any, kind: Any) -> list[Any]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        return list(view.view)
    finally:
        view.Destroy()


def _hosts(si: Any) -> dict[str, Any]:
    return {h.name: h for h in _all(si, vim.HostSystem)}


def test_vcenter_reports_vcenter_65(vc: Any) -> None:
    about = vc.RetrieveContent().about
    assert about.apiType == "VirtualCenter"
    assert about.productLineId == "vpx"
    assert about.version.startswith("6.5")


def test_esxi_reports_a_standalone_esxi_host(esx: Any) -> None:
    content = esx.RetrieveContent()
    assert content.about.apiType == "HostAgent"
    assert content.about.name == "VMware ESXi"
    hosts = _all(esx, vim.HostSystem)
    assert len(hosts) == 1
    assert hosts[0].config.product.version.startswith("6.5")
    # A standalone host has no cluster and no custom attributes manager.
    assert _all(esx, vim.ClusterComputeResource) == []
    assert content.customFieldsManager is None


def test_vcenter_has_one_datacenter_one_cluster_of_four_hosts_vms_and_a_template(
    vc: Any,
) -> None:
    assert [dc.name for dc in _all(vc, vim.Datacenter)] == ["DC0"]
    (cluster,) = _all(vc, vim.ClusterComputeResource)
    assert cluster.name == "DC0_C0"
    assert len(cluster.host) >= 4
    assert all(h.runtime.connectionState == "connected" for h in cluster.host)
    vms = _all(vc, vim.VirtualMachine)
    templates = [vm for vm in vms if vm.config.template]
    running = [vm for vm in vms if not vm.config.template]
    assert len(templates) == 1
    assert templates[0].runtime.powerState == "poweredOff"
    assert len(running) >= 3
    assert all(vm.runtime.powerState == "poweredOn" for vm in running)


def test_bios_difference_on_one_host_is_visible(vc: Any) -> None:
    bios = {
        name: (h.hardware.biosInfo.vendor, h.hardware.biosInfo.biosVersion)
        for name, h in _hosts(vc).items()
    }
    assert bios["DC0_C0_H3"] == ("Dell Inc.", "2.17.0")
    others = {v for n, v in bios.items() if n != "DC0_C0_H3"}
    assert others == {("Dell Inc.", "2.19.1")}
    h3 = _hosts(vc)["DC0_C0_H3"]
    assert h3.hardware.biosInfo.releaseDate.date().isoformat() == "2022-11-02"


def test_standalone_esxi_reports_the_cluster_baseline_bios(esx: Any) -> None:
    (host,) = _hosts(esx).values()
    assert (host.hardware.biosInfo.vendor, host.hardware.biosInfo.biosVersion) == (
        "Dell Inc.",
        "2.19.1",
    )


def test_hcl_relevant_vendor_and_model_are_set_on_every_host(vc: Any, esx: Any) -> None:
    for si in (vc, esx):
        for h in _hosts(si).values():
            assert h.hardware.systemInfo.vendor == "Dell Inc."
            assert h.hardware.systemInfo.model == "PowerEdge R650"
            assert h.summary.hardware.model == "PowerEdge R650"


@pytest.mark.parametrize("which", ["vcenter", "esxi"])
def test_simulator_defaults_fail_the_stig_checks(which: str, vc: Any, esx: Any) -> None:
    si = vc if which == "vcenter" else esx
    for h in _hosts(si).values():
        assert h.config.lockdownMode == "lockdownDisabled"  # ESX-02 expects normal/strict
        vswitches = h.config.network.vswitch
        assert vswitches, h.name
        for sw in vswitches:
            sec = sw.spec.policy.security
            assert (sec.macChanges, sec.forgedTransmits) == (True, True), sw.name  # ESX-13
        policies = {s.key: s.policy for s in h.config.service.service}
        assert policies["snmpd"] == "on" and policies["sfcbd-watchdog"] == "on"  # ESX-15


def test_patch_mark_written_on_one_connection_is_read_on_another(
    ctx: LabContext, comp: vcsim.VcsimComponent, vc: Any
) -> None:
    host = "DC0_C0_H1"
    try:
        assert vcsim.add_patch_mark(vc, host, "CHG-1 libvirt=9.0.0-4") == ["CHG-1 libvirt=9.0.0-4"]
        with _session(ctx, comp, "vcenter") as reader:
            assert vcsim.read_patch_mark(reader, host) == ["CHG-1 libvirt=9.0.0-4"]
            # The mark is a real custom attribute: any API client sees it on the host.
            field = next(
                f
                for f in reader.RetrieveContent().customFieldsManager.field
                if f.name == vcsim.PATCH_MARK_FIELD
            )
            values = [v for v in _hosts(reader)[host].customValue if v.key == field.key]
            assert [json.loads(v.value) for v in values] == [["CHG-1 libvirt=9.0.0-4"]]
            assert vcsim.read_patch_mark(reader, "DC0_C0_H2") == []
        # A second patch of the same host is visible as a second entry, under one value
        # (the lab's SetField patch replaces instead of adding a duplicate value).
        vcsim.add_patch_mark(vc, host, "CHG-2 libvirt=9.0.0-5")
        with _session(ctx, comp, "vcenter") as reader:
            assert vcsim.read_patch_mark(reader, host) == [
                "CHG-1 libvirt=9.0.0-4",
                "CHG-2 libvirt=9.0.0-5",
            ]
            h = _hosts(reader)[host]
            assert len({v.key for v in h.customValue}) == len(h.customValue)
    finally:
        vcsim.clear_patch_mark(vc, host)
    assert vcsim.read_patch_mark(vc, host) == []


def test_patch_mark_on_standalone_esxi_is_an_advanced_option(
    ctx: LabContext, comp: vcsim.VcsimComponent, esx: Any
) -> None:
    (host,) = _hosts(esx)
    try:
        vcsim.add_patch_mark(esx, host, "CHG-3 esx-base=6.5.0-1")
        with _session(ctx, comp, "esxi") as reader:
            h = _hosts(reader)[host]
            (opt,) = h.configManager.advancedOption.QueryOptions(vcsim.PATCH_MARK_OPTION)
            assert json.loads(opt.value) == ["CHG-3 esx-base=6.5.0-1"]
    finally:
        vcsim.clear_patch_mark(esx, host)
    assert vcsim.read_patch_mark(esx, host) == []


def test_unset_properties_answer_instead_of_panicking(vc: Any) -> None:
    # Unpatched, each of these reads panics PropertyCollector.Fetch and the server drops
    # the connection (http.client.RemoteDisconnected).
    content = vc.RetrieveContent()
    assert content.eventManager.latestEvent is None
    vm = next(v for v in _all(vc, vim.VirtualMachine) if not v.config.template)
    assert vm.snapshot is None
    assert vm.parentVApp is None
    # The connection is still usable afterwards.
    assert content.about.apiType == "VirtualCenter"


def test_enter_and_exit_maintenance_mode(
    ctx: LabContext, comp: vcsim.VcsimComponent, vc: Any
) -> None:
    host = _hosts(vc)["DC0_C0_H2"]
    assert host.runtime.inMaintenanceMode is False
    try:
        assert WaitForTask(host.EnterMaintenanceMode_Task(timeout=0)) == "success"
        with _session(ctx, comp, "vcenter") as reader:
            assert _hosts(reader)["DC0_C0_H2"].runtime.inMaintenanceMode is True
            assert _hosts(reader)["DC0_C0_H1"].runtime.inMaintenanceMode is False
    finally:
        WaitForTask(host.ExitMaintenanceMode_Task(timeout=0))
    assert host.runtime.inMaintenanceMode is False


def test_wrong_password_is_refused(ctx: LabContext, comp: vcsim.VcsimComponent) -> None:
    import ssl

    from pyVmomi import SoapStubAdapter

    inst = comp.instance("vcenter")
    user, _ = vcsim.read_credentials(ctx, inst)
    stub = SoapStubAdapter(
        host=inst.address,
        port=inst.port,
        version="vim.version.version11",
        sslContext=ssl._create_unverified_context(),
    )
    try:
        sm = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent().sessionManager
        with pytest.raises(vim.fault.InvalidLogin):
            sm.Login(user, "not-the-password")
    finally:
        stub.DropConnections()
