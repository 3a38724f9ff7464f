"""Guest OS support (URS-HV-01) end to end: `vqual qualify` with the shipped libvirt-guest-os
spec on libvirt's test driver, its support list sealed in the bundle as a data file."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import yaml

from tests.conftest import COLLECTION, REPO, run_vqual

SPEC = COLLECTION / "specs" / "libvirt-guest-os.yaml"
NODE = REPO / "tests" / "fixtures" / "libvirt" / "guest-os-node.xml"


def test_an_unsupported_guest_fails_naming_it_and_the_list_is_sealed(
    executor_state: Path, tmp_path: Path
) -> None:
    host = {"ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "vqual_target_kinds": ["libvirt_hypervisor"], "vqual_libvirt_uri": f"test://{NODE}"}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"hv1": host}}}))
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(SPEC), "-c", "CHG0000811",
                     "--evidence-dir", str(tmp_path / "evidence"), "--json",
                     state_dir=executor_state)
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid"
    bundle = Path(summary["bundle"])
    records = [json.loads(base64.b64decode(json.loads(line)["payload"]))
               for line in (bundle / "records.jsonl").read_text().splitlines()]
    (result,) = [r["data"] for r in records if r["kind"] == "check.result"]
    assert result["test_id"] == "IQ-GOS-001" and result["verdict"] == "fail"
    assert result["observed"] == [
        "vm-debian10: debian 10 is not supported by TEST 0.0.2 (listed: debian 12)"
    ]
    assert (bundle / "data" / "guest_os").read_bytes() == (
        COLLECTION / "specs" / "data" / "guest-os-example.yaml").read_bytes()
