"""vSphere on VMware's simulator: the adapter, `vqual qualify` with specs/vsphere-cluster.yaml
(IQ, and the OQ protocol on throwaway VMs), and `vqual cleanup` after a killed run.

These tests need only the simulator, so this module brings up its own pair of simulated
vCenters and one ESXi (own lab directory, own addresses 127.0.0.145-147) instead of the whole
lab: one vCenter as the lab's default, one with variations (a host whose server model is not
on the HCL, a host with another BIOS and memory size). Marked ``lab``: they run with
``VQUAL_LAB=1``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from vqual_lab import vcsim
from vqual_lab.component import LabContext

from qualification.errors import NotSupported, PlatformError
from qualification.platforms import registry
from qualification.platforms.base import RUNNING, STOPPED, HypervisorPlatform
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.endpoint import Endpoint
from tests.conftest import COLLECTION, REPO, run_vqual

pytestmark = pytest.mark.lab

SPEC = COLLECTION / "specs" / "vsphere-cluster.yaml"
LAB_BIN = Path("/var/lib/vqual-lab/vcsim/bin")

DEFAULT_VC = dataclasses.replace(
    vcsim.DEFAULT_VCENTER, key="vcdefault", inventory_host="vc-default",
    address="127.0.0.145", port=28643,
)
VARIANT_VC = dataclasses.replace(
    vcsim.DEFAULT_VCENTER, key="vcvariant", inventory_host="vc-variant",
    address="127.0.0.146", port=28644,
    hardware={
        **vcsim.DEFAULT_VCENTER.hardware,
        # not on specs/data/hcl-example.yaml
        "DC0_C0_H1": vcsim.HostHardware(system_model="PowerEdge R660"),
    },
)
ESXI = dataclasses.replace(
    vcsim.DEFAULT_ESXI, key="esxsa", inventory_host="esx-standalone",
    address="127.0.0.147", port=28645,
)
OQ_TEMPLATES = {"vcenter": "DC0_C0_RP0_VM3", "esxi": "ha-host_VM1"}
EXPECTED = {
    "vcenter_version": "6.5.0",
    "vcenter_build": "5973321",
    "esxi_version": "6.5.0",
    "esxi_build": "5969303",
    "ntp_servers": ["ntp1.example.org", "ntp2.example.org"],
    "dns_servers": ["8.8.8.8"],
    "dns_domain": "localdomain",
}


@dataclasses.dataclass
class VsphereLab:
    ctx: LabContext
    inventory: dict[str, Any]

    def endpoint(self, inst: vcsim.VcsimInstance, **kw: Any) -> Endpoint:
        user, pwd = vcsim.read_credentials(self.ctx, inst)
        return Endpoint(inst.address, user, pwd, port=inst.port, validate_certs=False, **kw)

    def password(self, inst: vcsim.VcsimInstance) -> str:
        return vcsim.read_credentials(self.ctx, inst)[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VsphereLab]:
    """This module's own simulators (overrides the session lab: nothing else is needed)."""
    if os.environ.get("VQUAL_LAB") != "1":
        pytest.skip("the lab is not enabled (VQUAL_LAB=1; `scripts/run test` sets it)")
    lab_dir = tmp_path_factory.mktemp("vsphere-lab")
    if LAB_BIN.is_dir():  # the lab's build of the same source: a cache hit instead of a build
        shutil.copytree(LAB_BIN, lab_dir / "vcsim" / "bin")
    ctx = LabContext(lab_dir=lab_dir, run_dir=lab_dir / "run", repo_root=None, log=lambda _m: None)
    component = vcsim.VcsimComponent((DEFAULT_VC, VARIANT_VC, ESXI))
    status = component.up(ctx)
    try:
        assert status.state == "running", status
        groups = component.inventory(ctx)["groups"]
        for group in groups.values():
            group["vars"] = {"vqual_risk": "high", "vqual_expected": EXPECTED}
        # The OQ's template (site fact): the simulated vCenter's template; the simulated ESXi
        # has no template, so one of its VMs is cloned there.
        for host in groups["vcenter"]["hosts"].values():
            host["vqual_vsphere_oq"] = {"template": OQ_TEMPLATES["vcenter"]}
        for host in groups["esxi"]["hosts"].values():
            host["vqual_vsphere_oq"] = {"template": OQ_TEMPLATES["esxi"]}
        yield VsphereLab(ctx, {"all": {"children": groups}})
    finally:
        component.down(ctx)


def _write_inventory(path: Path, inventory: dict[str, Any]) -> Path:
    # A JSON round trip copies shared values, so the YAML has no anchors and aliases.
    path.write_text(yaml.safe_dump(json.loads(json.dumps(inventory)), sort_keys=False))
    return path


def _records(bundle: Path) -> list[dict[str, Any]]:
    return [
        json.loads(base64.b64decode(json.loads(line)["payload"]))
        for line in (bundle / "records.jsonl").read_text().splitlines()
    ]


def _results(bundle: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r["data"]["target"], r["data"]["test_id"]): r["data"]
        for r in _records(bundle)
        if r["kind"] == "check.result"
    }


def _no_secret_under(root: Path, secret: str) -> list[Path]:
    return [
        p for p in root.rglob("*")
        if p.is_file() and secret.encode() in p.read_bytes()
    ]


# -- the adapter ---------------------------------------------------------------------------


def test_adapter_reads_about_hosts_and_vms(lab: VsphereLab) -> None:
    with VspherePlatform(lab.endpoint(DEFAULT_VC, datacenter="DC0", cluster="DC0_C0")) as vc:
        platform: HypervisorPlatform = vc  # the Protocol, checked by mypy and at run time
        assert isinstance(platform, HypervisorPlatform)
        about = vc.about()
        assert (about.platform, about.product, about.version) == (
            "vsphere", "VMware vCenter Server", "6.5.0")
        hosts = vc.hosts()
        assert [h.name for h in hosts] == ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2", "DC0_C0_H3"]
        assert {h.firmware["version"] for h in hosts} == {"2.19.1", "2.17.0"}
        assert all(h.cluster == "DC0_C0" and h.hardware["model"] == "PowerEdge R650" for h in hosts)
        assert [c.name for c in vc.clusters()] == ["DC0_C0"]
        assert "LocalDS_0" in [d.name for d in vc.datastores()]
        vm = vc.vm("DC0_C0_RP0_VM0")
        assert vm.power_state == RUNNING and vm.host.startswith("DC0_C0_H")
    with VspherePlatform(lab.endpoint(ESXI)) as esx:
        assert esx.about().product == "VMware ESXi"
        assert esx.host().name == "localhost.localdomain"  # the only host, no name needed


def test_tls_is_verified_unless_opted_out(lab: VsphereLab, tmp_path: Path) -> None:
    ep = dataclasses.replace(lab.endpoint(DEFAULT_VC), validate_certs=True)
    with pytest.raises(PlatformError, match="certificate not trusted"):
        VspherePlatform(ep)
    # Trusting the simulator's own certificate (the lab writes it out) verifies for real.
    cert = lab.ctx.run_dir / "vcsim" / f"{DEFAULT_VC.key}.crt"
    with VspherePlatform(dataclasses.replace(ep, ca_file=str(cert))) as vc:
        assert vc.about().product == "VMware vCenter Server"
    with pytest.raises(PlatformError, match="cannot load CA file"):
        VspherePlatform(dataclasses.replace(ep, ca_file=str(tmp_path / "missing.pem")))


def test_platform_errors_are_one_line_without_the_password(lab: VsphereLab) -> None:
    good = lab.endpoint(DEFAULT_VC)
    cases = {
        "login failed": dataclasses.replace(good, password="wrong-" + good.password),
        "connect failed": dataclasses.replace(good, port=1),
    }
    for expected, ep in cases.items():
        with pytest.raises(PlatformError) as info:
            VspherePlatform(ep)
        text = info.value.one_line()
        assert expected in text and "\n" not in text
        assert good.password not in text and ep.password not in text
        assert info.value.exit_code == 4
    with VspherePlatform(good) as vc, pytest.raises(PlatformError, match="vm 'nope' not found"):
        vc.vm("nope")
    assert good.password not in repr(good)


def test_vm_operations_round_trip(lab: VsphereLab) -> None:
    with VspherePlatform(lab.endpoint(DEFAULT_VC, datacenter="DC0", cluster="DC0_C0")) as vc:
        clone = vc.clone_vm("DC0_C0_RP0_VM1", "vq-clone")
        try:
            assert clone.power_state == STOPPED and clone.uuid != vc.vm("DC0_C0_RP0_VM1").uuid
            assert vc.power_on("vq-clone").power_state == RUNNING
            other = next(h.name for h in vc.hosts() if h.name != vc.vm("vq-clone").host)
            assert vc.migrate_vm("vq-clone", other).host == other
            snap = vc.snapshot_create("vq-clone", "s1")
            assert snap.power_state == RUNNING and snap.current
            assert [s.name for s in vc.snapshots("vq-clone")] == ["s1"]
            vc.snapshot_delete("vq-clone", "s1")
            assert vc.snapshots("vq-clone") == []
            assert vc.power_off("vq-clone").power_state == STOPPED
        finally:
            if vc.vm_exists("vq-clone"):
                vc.power_off("vq-clone")
                vc.delete_vm("vq-clone", delete_storage=True)
        assert not vc.vm_exists("vq-clone")
        assert vc.enter_maintenance("DC0_C0_H2").in_maintenance
        assert not vc.exit_maintenance("DC0_C0_H2").in_maintenance
        with pytest.raises(NotSupported):
            vc.placement("DC0_C0_RP0_VM0")


def test_probe_answers_errors_and_not_executed(lab: VsphereLab) -> None:
    user, pwd = vcsim.read_credentials(lab.ctx, ESXI)
    host_vars = {
        "vqual_vsphere_host": ESXI.address, "vqual_vsphere_port": ESXI.port,
        "vqual_vsphere_username": user, "vqual_vsphere_password": pwd,
        "vqual_vsphere_validate_certs": False,
    }
    requests = [
        {"key": "t", "method": "time", "args": {}},
        {"key": "v", "method": "vm", "args": {"name": "no-such-vm"}},
        {"key": "h", "method": "hcl", "args": {"hcl": "hcl"}},
        {"key": "x", "method": "nonsense", "args": {}},
    ]
    obs = registry.get("vsphere").answer(requests, host_vars=host_vars)
    assert "config.dateTimeInfo" in obs["t"]["not_executed"]
    assert "vm 'no-such-vm' not found" in obs["v"]["error"]
    assert "declares no data file 'hcl'" in obs["h"]["error"]
    assert "unknown vsphere probe method" in obs["x"]["error"]
    wrong = registry.get("vsphere").answer(requests[:1], host_vars={**host_vars, "vqual_vsphere_password": "x" + pwd})
    assert "login failed" in wrong["t"]["error"] and pwd not in json.dumps(wrong)
    missing = registry.get("vsphere").answer(requests[:1], host_vars={"vqual_vsphere_host": "h"})
    assert missing["t"]["error"] == "no vqual_vsphere_username set for this target"


# -- vqual qualify end to end ---------------------------------------------------------------


@pytest.fixture(scope="module")
def qualified(lab: VsphereLab, executor_state: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[dict[str, Any], Path]:
    """One run of specs/vsphere-cluster.yaml over both vCenters and the ESXi."""
    tmp = tmp_path_factory.mktemp("vsphere-run")
    inventory = _write_inventory(tmp / "hosts.yml", lab.inventory)
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(SPEC), "-c", "CHG0000501",
                     "--evidence-dir", str(tmp / "evidence"), "--json", state_dir=executor_state)
    assert done.returncode == 1, done.stdout + done.stderr  # the simulator fails STIG items
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    for inst in (DEFAULT_VC, VARIANT_VC, ESXI):
        assert lab.password(inst) not in done.stdout + done.stderr
    return summary, Path(summary["bundle"])


def test_qualify_vcenter_and_esxi_writes_a_bundle_that_verifies(
    qualified: tuple[dict[str, Any], Path], executor_state: Path
) -> None:
    summary, bundle = qualified
    assert summary["verification"] == "valid"
    assert summary["executed"] == summary["planned"]
    assert summary["counts"]["error"] == 0
    verify = run_vqual("verify", str(bundle), state_dir=executor_state)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    results = _results(bundle)
    targets = {t for t, _ in results}
    assert targets == {"vc-default", "vc-variant", "esx-standalone"}
    for key in (("vc-default", "IQ-VS-005"), ("esx-standalone", "IQ-VS-005"),
                ("vc-default", "IQ-VS-001"), ("vc-default", "IQ-VS-010")):
        assert results[key]["verdict"] == "pass", results[key]


def test_simulator_defaults_fail_their_security_checks(qualified: tuple[dict[str, Any], Path]) -> None:
    results = _results(qualified[1])
    for target in ("vc-default", "esx-standalone"):
        lockdown = results[(target, "IQ-VS-050")]
        assert (lockdown["verdict"], lockdown["observed"]) == ("fail", "lockdownDisabled")
        vswitch = results[(target, "IQ-VS-056")]
        assert vswitch["verdict"] == "fail"
        assert any("vSwitch 'vSwitch0': macChanges is true" in f for f in vswitch["observed"])
        assert any("forgedTransmits is true" in f for f in vswitch["observed"])
        assert not any("allowPromiscuous" in f for f in vswitch["observed"])  # false by default
        assert results[(target, "IQ-VS-054")]["observed"] == "on"  # snmpd policy
        assert results[(target, "IQ-VS-051")]["verdict"] == "pass"  # TSM-SSH stopped
    # HA is off in the simulator's cluster; DRS is on.
    assert results[("vc-default", "IQ-VS-025")]["observed"] is False
    assert results[("vc-default", "IQ-VS-025")]["verdict"] == "fail"
    assert results[("vc-default", "IQ-VS-027")]["verdict"] == "pass"


def test_what_the_simulator_does_not_report_is_not_executed(
    qualified: tuple[dict[str, Any], Path],
) -> None:
    results = _results(qualified[1])
    ntp = results[("vc-default", "IQ-VS-040")]
    assert ntp["verdict"] == "not-executed"
    assert "does not report config.dateTimeInfo" in ntp["reason"]
    # The simulator's distributed port groups have no security policy in their default
    # config (and its uplink port group is not marked as one, so it is listed too).
    dvpg = results[("vc-default", "IQ-VS-057")]
    assert dvpg["verdict"] == "not-executed"
    assert dvpg["reason"].startswith("the endpoint reports no security policy for DC0_DVPG0")
    # The simulator knows one advanced option (Config.HostAgent.log.level) and no other.
    assert results[("esx-standalone", "IQ-VS-060")]["verdict"] == "pass"
    for test_id in ("IQ-VS-061", "IQ-VS-062", "IQ-VS-063", "IQ-VS-064"):
        skipped = results[("esx-standalone", test_id)]
        assert skipped["verdict"] == "not-executed" and skipped["observed"] is None
        assert skipped["reason"].startswith("no host has the advanced option ")


def test_homogeneity_finding_names_the_host_and_both_values(
    qualified: tuple[dict[str, Any], Path],
) -> None:
    results = _results(qualified[1])
    firmware = results[("vc-default", "IQ-VS-021")]
    assert firmware["verdict"] == "fail"
    assert ('bios_version differs: DC0_C0_H3 has "2.17.0"; DC0_C0_H0, DC0_C0_H1, DC0_C0_H2 '
            'have "2.19.1"') in firmware["observed"]
    assert results[("vc-default", "IQ-VS-020")]["verdict"] == "pass"
    hardware = results[("vc-variant", "IQ-VS-020")]
    assert hardware["verdict"] == "fail"
    assert ('system_model differs: DC0_C0_H1 has "PowerEdge R660"; DC0_C0_H0, DC0_C0_H2, '
            'DC0_C0_H3 have "PowerEdge R650"') in hardware["observed"]


def test_hcl_finding_names_the_host_and_its_hardware(qualified: tuple[dict[str, Any], Path]) -> None:
    results = _results(qualified[1])
    hcl = results[("vc-variant", "IQ-VS-010")]
    assert hcl["verdict"] == "fail"
    assert hcl["observed"] == [
        (
            "DC0_C0_H1: server 'Dell Inc.' 'PowerEdge R660' is not on the HCL (listed: Dell Inc. "
            "PowerEdge R650; HPE ProLiant DL360 Gen10 Plus)"
        )
    ]
    # The lab's standalone ESXi runs the listed model and the cluster's baseline BIOS.
    esx = results[("esx-standalone", "IQ-VS-010")]
    assert (esx["verdict"], esx["observed"]) == ("pass", [])


def test_the_hcl_file_is_part_of_the_bundle(qualified: tuple[dict[str, Any], Path]) -> None:
    bundle = qualified[1]
    start = next(r for r in _records(bundle) if r["kind"] == "run.start")
    # the HCL, and the requirements file every shipped spec names (its traceability)
    assert [d["name"] for d in start["data"]["data_files"]] == ["hcl", "urs"]
    assert (bundle / "data" / "hcl").read_bytes() == (COLLECTION / "specs" / "data" / "hcl-example.yaml").read_bytes()


def test_no_password_in_the_bundle(lab: VsphereLab, qualified: tuple[dict[str, Any], Path]) -> None:
    for inst in (DEFAULT_VC, VARIANT_VC, ESXI):
        assert _no_secret_under(qualified[1], lab.password(inst)) == []


def test_platform_errors_give_error_verdicts_and_one_line(
    lab: VsphereLab, executor_state: Path, tmp_path: Path
) -> None:
    """Wrong password, unreachable endpoint and a missing VM: `error` verdicts, exit 4."""
    inventory = json.loads(json.dumps(lab.inventory))
    hosts = inventory["all"]["children"]["vcenter"]["hosts"]
    wrong = hosts["vc-default"]
    wrong["vqual_vsphere_password"] = "not-the-password"
    hosts["vc-variant"]["vqual_vsphere_port"] = 1  # nothing listens there
    inventory["all"]["children"]["esxi"]["hosts"]["esx-standalone"]["vqual_target_kinds"] = ["esxi"]
    spec = yaml.safe_load(SPEC.read_text())
    spec["tests"] = [t for t in spec["tests"] if t["id"] in ("IQ-VS-005", "IQ-VS-030")] + [{
        "id": "IQ-VS-900", "title": "A VM that does not exist", "protocol": "IQ",
        "requirements": ["URS-HV-02"], "applies_to": ["esxi"], "risk": ["high"],
        "check": "vsphere_vm", "params": {"vm": "no-such-vm", "field": "vcpus"},
        "expect": {"op": "equals", "value": 1}, "acceptance": "the VM has one vCPU",
    }]
    del spec["data_files"]  # no HCL test here
    del spec["requirements_file"]  # with its data file: this run is about platform errors
    spec_path = tmp_path / "errors.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = run_vqual("qualify", "-i", str(_write_inventory(tmp_path / "hosts.yml", inventory)),
                     "-s", str(spec_path), "-c", "CHG0000502", "--evidence-dir",
                     str(tmp_path / "evidence"), "--json", state_dir=executor_state)
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid"
    assert done.returncode == 4, done.stderr
    results = _results(Path(summary["bundle"]))
    assert results[("vc-default", "IQ-VS-005")]["verdict"] == "error"
    assert "login failed" in results[("vc-default", "IQ-VS-005")]["reason"]
    assert "connect failed" in results[("vc-variant", "IQ-VS-030")]["reason"]
    missing = results[("esx-standalone", "IQ-VS-900")]
    assert (missing["verdict"], missing["observed"]) == ("error", None)
    assert "vm 'no-such-vm' not found" in missing["reason"]
    assert results[("esx-standalone", "IQ-VS-005")]["verdict"] == "pass"
    for r in results.values():
        assert "\n" not in (r["reason"] or "")
    for inst in (DEFAULT_VC, VARIANT_VC, ESXI):
        assert _no_secret_under(tmp_path, lab.password(inst)) == []
        assert lab.password(inst) not in done.stdout + done.stderr
    # A password written into the inventory itself is redacted from the inventory snapshot.
    assert _no_secret_under(tmp_path / "evidence", "not-the-password") == []


def test_no_password_in_the_ansible_run_artifacts(
    lab: VsphereLab, executor_state: Path, tmp_path: Path
) -> None:
    """The runner's artifacts (Ansible's stdout, the command line, the environment it was
    given) hold no password either."""
    from qualification.execution.runner import PlaybookRun, run_playbook
    from qualification.timeutil import new_run_id, utc_now

    inventory = _write_inventory(tmp_path / "hosts.yml", lab.inventory)
    artifacts = tmp_path / "artifacts"
    outcome = run_playbook(PlaybookRun(
        playbook="qualify.yml", inventory=inventory,
        extravars={"vqual_spec": str(SPEC), "vqual_change_id": "CHG0000503",
                   "vqual_run_id": new_run_id(utc_now())},
        key_file=executor_state / "keys" / "executor.pem", evidence_dir=tmp_path / "evidence",
        state_dir=executor_state, initiator="test", keep_artifacts=artifacts,
    ))
    assert outcome.rc == 0 and outcome.failed == {}, outcome
    stdout = [p for p in artifacts.rglob("stdout") if p.is_file()]
    assert stdout and b"vc-default" in stdout[0].read_bytes()
    for inst in (DEFAULT_VC, VARIANT_VC, ESXI):
        assert _no_secret_under(tmp_path, lab.password(inst)) == []


def test_oq_lifecycle_on_a_throwaway_vm(lab: VsphereLab) -> None:
    """Every step runs and is recorded; the simulator's revert only moves the current-snapshot
    pointer (the VM stays stopped), so that step fails there instead of passing."""
    from qualification.platforms.vsphere.observations import probe

    ep = lab.endpoint(DEFAULT_VC, datacenter="DC0", cluster="DC0_C0")
    observations, changed = probe(
        ep, [{"key": "oq", "method": "oq_lifecycle", "args": {}}], run_id="20260101T000000Z-abc123"
    )
    oq = observations["oq"]
    assert changed and oq["error"] is None
    steps = oq["value"]["steps"]
    for step in ("define", "start", "snapshot_create", "stop", "snapshot_delete", "undefine"):
        assert steps[step]["verdict"] == "pass", (step, steps[step])
    assert steps["snapshot_revert"]["verdict"] == "fail"
    assert "stopped after revert" in steps["snapshot_revert"]["reason"]
    assert [a["name"] for a in oq["actions"]][:2] == ["vm.define", "vm.start"]
    assert oq["value"]["cleanup"]["verdict"] == "pass"
    with VspherePlatform(ep) as vc:
        assert not vc.vm_exists("vqual-oq-20260101T000000Z-abc123")
    checked, _ = probe(ep, [{"key": "oq", "method": "oq_lifecycle", "args": {}}], check_mode=True)
    assert checked["oq"]["not_executed"] == "check mode"


# -- OQ on throwaway VMs (specs/vsphere-cluster.yaml OQ-VS-*) ---------------------------------


def _oq_actions(bundle: Path) -> list[dict[str, Any]]:
    return [r["data"] for r in _records(bundle) if r["kind"] == "action"]


def _throwaways(lab: VsphereLab, inst: vcsim.VcsimInstance) -> list[str]:
    with VspherePlatform(lab.endpoint(inst)) as p:
        return [v.name for v in p.vms() if v.name.startswith("vqual-")]


def test_oq_on_vcenter_runs_every_step_on_throwaway_vms(
    lab: VsphereLab, qualified: tuple[dict[str, Any], Path]
) -> None:
    bundle = qualified[1]
    results = _results(bundle)
    run_id = bundle.name
    verdicts = {t: results[("vc-default", t)]["verdict"] for t in (
        "OQ-VS-001", "OQ-VS-002", "OQ-VS-003", "OQ-VS-004", "OQ-VS-005", "OQ-VS-006",
        "OQ-VS-007", "OQ-VS-008")}
    assert verdicts == {
        "OQ-VS-001": "pass", "OQ-VS-004": "pass", "OQ-VS-005": "pass", "OQ-VS-007": "pass",
        # the simulator's revert only moves the current-snapshot pointer: the VM stays off
        "OQ-VS-002": "fail",
        "OQ-VS-003": "not-executed", "OQ-VS-006": "not-executed", "OQ-VS-008": "not-executed",
    }
    snapshot = results[("vc-default", "OQ-VS-002")]
    assert snapshot["observed"] == [(
        "vm.snapshot_revert: power state is stopped after revert, not the snapshot's running "
        "(the state was not restored)")]
    assert "VMware Tools guest operations" in results[("vc-default", "OQ-VS-003")]["reason"]
    interruption = results[("vc-default", "OQ-VS-006")]
    assert interruption["observed"] is None and "heartbeat in the guest" in interruption["reason"]
    assert "no backup and restore API" in results[("vc-default", "OQ-VS-008")]["reason"]
    assert results[("vc-default", "OQ-VS-004")]["observed"] == []
    # The VMs made were the run's throwaways, and none is left.
    actions = _oq_actions(bundle)
    vm_targets = {a["target"] for a in actions if a["name"].startswith("vm.")}
    assert vm_targets == {f"vqual-tmp-{run_id}-oq", f"vqual-tmp-{run_id}-clone"}
    for inst in (DEFAULT_VC, VARIANT_VC, ESXI):
        assert _throwaways(lab, inst) == []


def test_oq_action_records_carry_state_before_and_after(
    qualified: tuple[dict[str, Any], Path],
) -> None:
    bundle = qualified[1]
    run_id = bundle.name
    vm = f"vqual-tmp-{run_id}-oq"
    actions = _oq_actions(bundle)
    for action in actions:
        assert set(action) >= {"name", "target", "before", "after", "verdict", "reason",
                               "started", "finished"}
        assert isinstance(action["before"], dict) and isinstance(action["after"], dict)
    mine = [a for a in actions if a["target"] == vm]
    create = next(a for a in mine if a["name"] == "vm.create")
    assert create["before"] == {"exists": False}
    assert create["after"]["power_state"] == "stopped"
    assert create["after"]["tag"]["extra_config"] == run_id
    # vCenter: the custom attribute too; standalone ESXi has none (not-executed, said so).
    tags = [a for a in mine if a["name"] == "vm.tag"]
    assert {a["verdict"] for a in tags} == {"pass", "not-executed"}
    assert any(a["after"]["tag"]["attribute"] == run_id for a in tags)
    migrate = [a for a in mine if a["name"] == "vm.migrate"]
    assert migrate and all(a["before"]["host"] != a["after"]["host"] for a in migrate)
    enter = [a for a in actions if a["name"] == "host.enter_maintenance"]
    assert enter and all(
        a["before"]["in_maintenance"] is False and a["after"]["in_maintenance"] is True
        and a["after"]["powered_on_vms"] == [] for a in enter)
    leave = [a for a in actions if a["name"] == "host.exit_maintenance"]
    assert len(leave) == len(enter) and all(a["after"]["in_maintenance"] is False for a in leave)
    revert = [a for a in mine if a["name"] == "vm.snapshot_revert"]
    assert revert and all(a["after"]["current_snapshot"] == "vqual-oq-snapshot" for a in revert)
    cleanup = [a for a in mine if a["name"] == "vm.cleanup"]
    assert cleanup and all(a["after"] == {"exists": False} for a in cleanup)


def test_oq_on_standalone_esxi_cannot_migrate_or_evacuate(
    qualified: tuple[dict[str, Any], Path],
) -> None:
    results = _results(qualified[1])
    for test_id in ("OQ-VS-005", "OQ-VS-007"):
        result = results[("esx-standalone", test_id)]
        assert result["verdict"] == "not-executed"
        assert result["reason"].startswith("a standalone ESXi has one host")
    for test_id in ("OQ-VS-001", "OQ-VS-004"):
        assert results[("esx-standalone", test_id)]["verdict"] == "pass"
    assert results[("esx-standalone", "OQ-VS-002")]["verdict"] == "fail"


def test_oq_platform_errors_are_error_verdicts(
    lab: VsphereLab, executor_state: Path, tmp_path: Path
) -> None:
    """A template that does not exist is refused before anything is made; a wrong password
    gives every OQ test `error`; neither leaves a VM behind or prints a traceback."""
    inventory = json.loads(json.dumps(lab.inventory))
    vcenters = inventory["all"]["children"]["vcenter"]["hosts"]
    vcenters["vc-default"]["vqual_vsphere_oq"] = {"template": "no-such-template"}
    vcenters["vc-variant"]["vqual_vsphere_password"] = "not-the-password"
    inventory["all"]["children"]["esxi"]["hosts"]["esx-standalone"]["vqual_vsphere_oq"] = {
        "template": "ha-host_VM1", "destination": "no-such-host"}
    done = run_vqual("qualify", "-i", str(_write_inventory(tmp_path / "hosts.yml", inventory)),
                     "-s", str(SPEC), "-c", "CHG0000504", "--test", "OQ-VS-001",
                     "--test", "OQ-VS-004", "--evidence-dir", str(tmp_path / "evidence"),
                     "--json", state_dir=executor_state)
    assert "Traceback" not in done.stderr
    assert done.returncode == 4, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid"
    results = _results(Path(summary["bundle"]))
    assert {r["verdict"] for r in results.values()} == {"error"}
    assert "template 'no-such-template' not found" in results[("vc-default", "OQ-VS-004")]["reason"]
    assert "login failed" in results[("vc-variant", "OQ-VS-001")]["reason"]
    assert "destination host 'no-such-host' not found" in results[
        ("esx-standalone", "OQ-VS-001")]["reason"]
    for r in results.values():
        assert "\n" not in r["reason"]
    assert _oq_actions(Path(summary["bundle"])) == []
    for inst in (DEFAULT_VC, VARIANT_VC, ESXI):
        assert _throwaways(lab, inst) == []
        assert lab.password(inst) not in done.stdout + done.stderr


def _process_tree(pid: int) -> set[int]:
    """``pid`` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, []))
    return found


def _kill_tree(pid: int) -> set[int]:
    """SIGKILL ``pid``'s process group and every process below it: ansible-runner starts
    ansible-playbook in a session of its own, outside the group. The tree is stopped first,
    so nothing forks or finishes its work between listing and killing."""
    stopped: set[int] = set()
    while True:
        tree = _process_tree(pid) - stopped
        if not tree:
            break
        for member in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGSTOP)
        stopped |= tree
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    for member in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    return stopped


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_cleanup_removes_the_throwaway_of_a_killed_qualify(
    lab: VsphereLab, executor_state: Path, tmp_path: Path
) -> None:
    """`vqual qualify` of the OQ tests is killed (its process group and every process below
    it) once its throwaway VM exists; the bundle is incomplete; `vqual cleanup` removes the run's VM and nothing else:
    another run's tagged VM, an untagged VM with the run's name prefix and the simulator's
    own VMs stay."""
    from qualification.platforms.base import VmConfig
    from qualification.platforms.vsphere.oq import TAG_KEY, is_run_throwaway
    from qualification.timeutil import new_run_id, utc_now
    from tests.conftest import VENV_BIN, vqual_env

    run_id, other_run = new_run_id(utc_now()), new_run_id(utc_now())
    assert run_id != other_run
    inventory = json.loads(json.dumps(lab.inventory))
    del inventory["all"]["children"]["vcenter"]["hosts"]["vc-variant"]
    inv_path = _write_inventory(tmp_path / "hosts.yml", inventory)
    ep = lab.endpoint(DEFAULT_VC, datacenter="DC0", cluster="DC0_C0")
    other = f"vqual-tmp-{other_run}-oq"
    untagged = f"vqual-tmp-{run_id}-untagged"
    with VspherePlatform(ep) as vc:
        before = sorted(v.name for v in vc.vms())
        vc.create_vm(VmConfig(name=other), extra_config={TAG_KEY: other_run})
        vc.set_vm_attribute(other, TAG_KEY, other_run)
        vc.create_vm(VmConfig(name=untagged))
    evidence = tmp_path / "evidence"
    proc = subprocess.Popen(
        [str(VENV_BIN / "vqual"), "qualify", "-i", str(inv_path), "-s", str(SPEC), "-c",
         "CHG0000505", "--run-id", run_id, "--limit", "vc-default", "--evidence-dir",
         str(evidence), *[a for t in ("OQ-VS-001", "OQ-VS-002", "OQ-VS-007") for a in ("--test", t)]],
        cwd=REPO, env=vqual_env(executor_state), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with VspherePlatform(ep) as vc:
            deadline = time.monotonic() + 180
            while not any(is_run_throwaway(v, run_id) for v in vc.vm_tags(TAG_KEY)):
                assert proc.poll() is None, "the run ended before its throwaway VM existed"
                assert time.monotonic() < deadline, "no throwaway VM appeared"
                time.sleep(0.05)
    finally:
        killed = _kill_tree(proc.pid)
        proc.wait()
    bundle = evidence / "CHG0000505" / run_id
    verify = run_vqual("verify", str(bundle), state_dir=executor_state)
    assert verify.returncode == 3, verify.stdout + verify.stderr
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in killed):  # nothing of the run may finish its work
        assert time.monotonic() < deadline, "a process of the killed run is still alive"
        time.sleep(0.1)
    assert len(killed) > 2  # vqual, ansible-playbook and its workers
    with VspherePlatform(ep) as vc:
        left = [v["name"] for v in vc.vm_tags(TAG_KEY) if is_run_throwaway(v, run_id)]
    assert left == [f"vqual-tmp-{run_id}-oq"]

    done = run_vqual("cleanup", run_id, "-i", str(inv_path), "--json", state_dir=executor_state)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["removed"] == left
    assert lab.password(DEFAULT_VC) not in done.stdout + done.stderr
    try:
        with VspherePlatform(ep) as vc:
            names = sorted(v.name for v in vc.vms())
            assert names == sorted([*before, other, untagged])
            # A killed run may leave a host in maintenance: cleanup removes VMs only.
            for host in vc.hosts():
                if host.in_maintenance:
                    vc.exit_maintenance(host.name)
        again = run_vqual("cleanup", run_id, "-i", str(inv_path), "--json", state_dir=executor_state)
        assert again.returncode == 0 and json.loads(again.stdout)["removed"] == []
    finally:
        with VspherePlatform(ep) as vc:
            for name in (other, untagged):
                if vc.vm_exists(name):
                    vc.delete_vm(name, delete_storage=True)
