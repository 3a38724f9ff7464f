"""`check: testinfra` on the lab's KVM hosts: the repository's example suite runs, unchanged,
as part of a spec through testinfra's ssh backend, with the lab inventory's own connection
settings (ansible_host, ansible_user, ansible_ssh_private_key_file, ansible_ssh_common_args),
and the matrix shows its URS ids for each host."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from qualification.execution.recorder import records_as_dicts
from qualification.reports.matrix import traceability
from tests.conftest import REPO, run_vqual

pytestmark = pytest.mark.lab

LAB_INV = REPO / "inventories" / "lab"
EXAMPLE = REPO / "tests" / "fixtures" / "testinfra"
HOSTS = ("kvm1", "kvm2")
#: A test only the lab can decide: the backend reached the host the inventory names.
OWN_HOST = b'''import pytest


@pytest.mark.urs("URS-HV-02")
def test_reaches_the_host_the_inventory_names(host):
    assert host.check_output("hostname") == host.backend.get_hostname()
'''


def _results(bundle: Path) -> dict[tuple[str, str], dict]:
    out = {}
    for line in (bundle / "records.jsonl").read_text().splitlines():
        record = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if record["kind"] == "check.result":
            data = record["data"]
            out[(data["target"], data["test_id"])] = data
    return out


@pytest.fixture
def site(tmp_path: Path, lab: object) -> tuple[Path, Path]:
    """The lab inventory with an application on the KVM hosts (so risk selects every test),
    and the example spec with a second spec test for :data:`OWN_HOST`."""
    inv = tmp_path / "inventory"
    shutil.copytree(LAB_INV, inv)
    (inv / "group_vars" / "kvm_hosts.yml").write_text(yaml.safe_dump({
        "vqual_applications": [{"name": "LIMS", "risk": "high", "vm": "clone1"}],
    }))
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLE, specs)
    (specs / "suite" / "test_own_host.py").write_bytes(OWN_HOST)
    spec = yaml.safe_load((specs / "testinfra-example.yaml").read_text())
    own = dict(spec["tests"][0], id="IQ-TI-002", title="The backend reaches its own host",
               params={"module": "suite/test_own_host.py"})
    spec["tests"].append(own)
    path = specs / "testinfra-example.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return inv, path


def test_the_example_suite_runs_over_ssh_on_both_kvm_hosts(
    executor_state: Path, site: tuple[Path, Path], tmp_path: Path
) -> None:
    inventory, spec = site
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(spec), "-c", "CHG0000311",
                     "--limit", "kvm_hosts", "--evidence-dir", str(tmp_path / "ev"), "--json",
                     state_dir=executor_state)
    assert done.returncode in (0, 3), done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid" and summary["unreachable"] == []
    bundle = Path(summary["bundle"])
    results = _results(bundle)
    assert {target for target, _ in results} == set(HOSTS)
    for name in HOSTS:
        own = results[(name, "IQ-TI-002::test_reaches_the_host_the_inventory_names")]
        assert own["verdict"] == "pass", own
        assert own["method"].endswith(f"[ssh://{name}]")
        for test in ("test_passwd_is_owned_by_root_and_not_writable_by_others",
                     "test_shadow_is_not_readable_by_others", "test_coreutils_is_installed",
                     "test_the_kernel_is_linux"):
            result = results[(name, f"IQ-TI-001::{test}")]
            assert result["verdict"] == "pass", result
            assert result["observation_ms"] > 0
    # The connection settings reach testinfra, not the evidence: no key path in any result.
    keys = set(re.findall(r'"ansible_ssh_private_key_file": "([^"]+)"',
                          json.dumps(yaml.safe_load((inventory / "hosts.yml").read_text()))))
    assert keys, "the lab inventory names the hosts' key"
    text = json.dumps(list(results.values()))
    assert not [k for k in keys if k in text]
    rows = {row.requirement: row for row in traceability(
        records_as_dicts(bundle), ["URS-HV-02", "URS-SEC-01", "URS-SEC-03"])}
    assert {(t.target, t.verdict) for t in rows["URS-SEC-01"].tests} == {
        (name, "pass") for name in HOSTS}
    assert rows["URS-SEC-01"].status == "covered"
    assert {t.target for t in rows["URS-SEC-03"].tests} == set(HOSTS)
    verify = run_vqual("verify", str(bundle), state_dir=executor_state)
    assert verify.returncode == 0, verify.stdout
