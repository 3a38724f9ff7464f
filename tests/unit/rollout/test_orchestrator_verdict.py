"""A whole rolling-patch run on libvirt's test driver: the outcome's word, its exit code and the
sealed bundle's verdict agree (docs/formats.md, "Exit codes").

The platform is real libvirt (the in-process test driver, one host from a node file with one
powered-off VM), and so are the journal, the lease, the signing key, the bundle and its
verification. The one stand-in is the patch executor (:class:`MemoryExecutor`): this machine
has no hypervisor host whose packages could be upgraded, so it keeps each host's packages in a
dict; the vCenter simulator and the lab's KVM hosts run the real executors
(tests/integration/test_rolling_patch_*.py).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from qualification.evidence.verify import verify_bundle
from qualification.execution.keys import create_trusted_key
from qualification.execution.recorder import open_signer, records_as_dicts
from qualification.platforms.base import HypervisorPlatform
from qualification.platforms.libvirt.cluster import LibvirtCluster
from qualification.review.signed import load_trust
from qualification.rollout.change import RolloutChange, load_change
from qualification.rollout.evidence import PatchEvidence
from qualification.rollout.orchestrator import Orchestrator, PatchOutcome
from qualification.rollout.requalify import PlatformRequalifier

KVM_SPEC = (Path(__file__).resolve().parents[3] / "ansible_collections" / "vqual" / "qualification"
            / "specs" / "kvm-cluster.yaml")

NODE = """\
<node>
  <cpu>
    <nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads>
    <active>4</active><mhz>2000</mhz><model>x86_64</model>
  </cpu>
  <memory>8388608</memory>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>idle1</name>
    <memory>524288</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <test:runstate>5</test:runstate>
  </domain>
</node>
"""

CHANGE = """\
apiVersion: vqual.change/v1
change_id: CHG0000777
title: agent 1.1 on the test driver
risk: {risk}
cluster: c1
target:
  packages:
    agent: "1.1"
window:
  start: "2020-01-01T00:00:00Z"
  end: "2099-01-01T00:00:00Z"
migration_timeout_s: 30
step_timeout_s: 30
"""


class MemoryExecutor:
    """Stand-in for a host's package manager (none here to upgrade): packages in a dict."""

    name = "memory-stand-in"
    stand_in = True

    def __init__(self, packages: dict[str, dict[str, str]]) -> None:
        self.packages = packages

    def installed(self, host: str) -> dict[str, str]:
        return dict(self.packages[host])

    def apply(self, host: str, change: RolloutChange) -> dict[str, Any]:
        before = dict(self.packages[host])
        self.packages[host].update(change.target.packages)
        return {"before": before, "after": dict(self.packages[host])}

    def reboot(self, host: str, timeout_s: float) -> float:
        return 0.0

    def health(self, host: str) -> dict[str, Any]:
        return {"ok": True}


class Run:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        create_trusted_key(self.state / "keys" / "executor.pem", self.state, name="CI",
                           identity="ci@example.org", roles=["executor"], passphrase=None,
                           throwaway=True, valid_days=1)
        node = tmp_path / "node.xml"
        node.write_text(NODE)
        self.hostvars = {"h1": {"vqual_libvirt_uri": f"test://{node}", "vqual_cluster": "c1"}}

    def platform(self) -> HypervisorPlatform:
        return LibvirtCluster.from_hostvars(self.hostvars, "c1", state_dir=self.state)

    def change(self, risk: str, extra: str = "") -> RolloutChange:
        path = self.tmp / "change.yaml"
        path.write_text(CHANGE.format(risk=risk) + textwrap.dedent(extra))
        return load_change(path)

    def run(self, change: RolloutChange, agent: str = "1.0") -> PatchOutcome:
        signer = open_signer(self.state / "keys" / "executor.pem")
        evidence = PatchEvidence(self.tmp / "evidence", signer, "pipeline", state_dir=self.state)
        executor = MemoryExecutor({"h1": {"agent": agent}})
        orch = Orchestrator(self.platform, executor, PlatformRequalifier(), change, self.state,
                            evidence)
        return orch.run()

    def bundle_verdict(self, outcome: PatchOutcome) -> str | None:
        assert outcome.bundle is not None
        result = verify_bundle(outcome.bundle, load_trust(self.state))
        assert result.status == "valid", result.problems
        return result.verdict

    def results(self, outcome: PatchOutcome) -> dict[str, dict[str, Any]]:
        assert outcome.bundle is not None
        return {r["data"]["test_id"]: r["data"] for r in records_as_dicts(outcome.bundle)
                if r["kind"] == "check.result"}


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def test_a_run_whose_canary_test_was_not_executed_says_so_and_exits_3(run: Run) -> None:
    outcome = run.run(run.change("medium"))
    assert outcome.status == "done" and outcome.committed == ["h1"]
    # The word, the exit code and the sealed bundle agree: not "DONE" and 0.
    assert run.bundle_verdict(outcome) == outcome.verdict == "not-executed"
    assert outcome.exit_code == 3
    results = run.results(outcome)
    assert results["RP-OQ-01"]["verdict"] == "not-executed"
    assert results["RP-OQ-01"]["reason"] == "the change names no requalify.canary_vm"
    assert {t: r["verdict"] for t, r in results.items() if t != "RP-OQ-01"} == {
        "RP-IQ-01": "pass", "RP-IQ-02": "pass", "RP-IQ-03": "pass"}
    assert outcome.counts == {"pass": 3, "fail": 0, "error": 0, "not-executed": 1, "waived": 0}
    summary = outcome.to_text("vqual patch -i inv --change change.yaml")
    first = summary.splitlines()[0]
    assert first == (f"vqual: CHG0000777 run {outcome.run_id}: NOT-EXECUTED (run done; pass 3, "
                     "fail 0, error 0, not-executed 1, waived 0)")
    assert "DONE" not in summary
    assert "  not run:  1 planned test(s) not executed" in summary
    data = outcome.to_json()
    assert (data["verdict"], data["exit_code"], data["status"]) == ("not-executed", 3, "done")


def test_a_waived_canary_is_recorded_with_its_reason_and_still_not_executed(run: Run) -> None:
    change = run.change("high", """\
        canary_waiver:
          reason: the test driver has one host, so no canary can visit it
        """)
    outcome = run.run(change)
    assert (outcome.status, outcome.verdict, outcome.exit_code) == ("done", "not-executed", 3)
    assert run.bundle_verdict(outcome) == "not-executed"
    assert outcome.bundle is not None
    start = records_as_dicts(outcome.bundle)[0]["data"]
    assert start["patch"]["change"]["risk"] == "high"
    assert start["patch"]["change"]["canary_vm"] is None
    assert start["patch"]["change"]["canary_waiver"] == {
        "reason": "the test driver has one host, so no canary can visit it"}
    assert run.results(outcome)["RP-OQ-01"]["reason"] == (
        "the change waives the OQ canary: the test driver has one host, so no canary can visit it")
    assert outcome.to_text().startswith(f"vqual: CHG0000777 run {outcome.run_id}: NOT-EXECUTED")


def test_a_halted_run_says_fail_and_exits_1_as_its_bundle(run: Run) -> None:
    # The canary is on the only host: no other host to move it to, RP-OQ-01 is an error and
    # the requalification halts the run; the halt makes the bundle's verdict fail.
    change = run.change("high", f"""\
        requalify:
          spec: {KVM_SPEC}
          canary_vm: idle1
        """)
    outcome = run.run(change)
    assert outcome.status == "halted"
    assert outcome.deviation is not None and outcome.deviation["step"] == "requalify"
    assert run.results(outcome)["RP-OQ-01"]["verdict"] == "error"
    assert run.bundle_verdict(outcome) == outcome.verdict == "fail"
    assert outcome.exit_code == 1
    summary = outcome.to_text("vqual patch -i inv --change change.yaml")
    assert summary.splitlines()[0].startswith(f"vqual: CHG0000777 run {outcome.run_id}: FAIL "
                                              "(run halted; ")
    assert "  halted:   h1 requalify: RP-OQ-01 error: no other host in service" in summary
    assert f"  resume:   vqual patch -i inv --change change.yaml --resume {outcome.run_id}" in (
        summary)
    with run.platform() as platform:  # the host stays in maintenance, as the policy says
        platform.exit_maintenance("h1")


def test_a_run_with_nothing_to_patch_passes_and_exits_0(run: Run) -> None:
    outcome = run.run(run.change("medium"), agent="1.1")
    assert outcome.status == "done" and outcome.committed == []
    assert outcome.skipped and outcome.skipped[0]["host"] == "h1"
    assert run.bundle_verdict(outcome) == outcome.verdict == "pass"
    assert outcome.exit_code == 0
    assert outcome.to_text().startswith(f"vqual: CHG0000777 run {outcome.run_id}: PASS (run done")
