"""`vqual convert` end to end without the lab: real Ansible, real evidence, real targets.

This machine (local connection) is the guest of both the source and the target; libvirt's
test driver (a node file, so every process sees the same domains) holds the source domain
and the converted one, whose disk format and bus and NIC model differ as a V2V makes them
differ. A directory made by the test is the application data (``vqual_app_data``).
The baseline is taken, the target compared: the virtual hardware shows as allowed
differences; then one data file changed, one removed and one added fails naming each.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, run_vqual

SPEC = REPO / "ansible_collections" / "vqual" / "qualification" / "specs" / "conversion.yaml"


def domain(name: str, uuid_tail: str, *, fmt: str, bus: str, dev: str, nic: str) -> str:
    return f"""
  <domain type="test">
    <name>{name}</name>
    <uuid>6695eb01-f6a4-8304-79aa-97f2502e{uuid_tail}</uuid>
    <memory>393216</memory>
    <vcpu>1</vcpu>
    <os><type arch="x86_64">hvm</type></os>
    <devices>
      <disk type="file" device="disk">
        <driver name="qemu" type="{fmt}"/>
        <source file="/guests/{name}-disk.{fmt}"/><target dev="{dev}" bus="{bus}"/>
      </disk>
      <interface type="network">
        <mac address="52:54:00:00:00:{uuid_tail[-2:]}"/><source network="default"/>
        <model type="{nic}"/>
      </interface>
    </devices>
  </domain>"""


def records(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(base64.b64decode(json.loads(line)["payload"]))
            for line in (bundle / "records.jsonl").read_text().splitlines()]


def seal_of(bundle: Path) -> str:
    for line in (bundle / "records.jsonl").read_bytes().splitlines():
        if json.loads(base64.b64decode(json.loads(line)["payload"]))["kind"] == "run.end":
            return hashlib.sha256(line).hexdigest()
    raise AssertionError(f"{bundle} has no run.end")


def bundle_of(stdout: str) -> Path:
    for line in stdout.splitlines():
        if line.strip().startswith("evidence:"):
            return Path(line.split(":", 1)[1].strip().split(" ")[0])
    raise AssertionError(f"no evidence line in {stdout!r}")


@pytest.fixture()
def site(tmp_path: Path) -> dict[str, Path]:
    node = tmp_path / "node.xml"
    node.write_text(
        "<node>"
        + domain("src", "0001", fmt="qcow2", bus="virtio", dev="vda", nic="virtio")
        # The same disk target name: a V2V onto another bus keeps the guest's disk order.
        + domain("dst", "0002", fmt="raw", bus="sata", dev="vda", nic="e1000")
        + "</node>"
    )
    data = tmp_path / "app"
    (data / "db").mkdir(parents=True)
    (data / "db" / "orders.dat").write_text("order 1\norder 2\n")
    (data / "db" / "customers.dat").write_text("alice\nbob\n")
    (data / "app.conf").write_text("threads = 4\n")
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "vqual_target_kinds": ["clone"],
        "vqual_libvirt_uri": f"test://{node}",
        "vqual_app_data": [str(data)],
    }
    inventory = tmp_path / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        "app-src": {**common, "vqual_libvirt_domain": "src"},
        "app-dst": {**common, "vqual_libvirt_domain": "dst"},
    }}}))
    return {"inventory": inventory, "data": data, "evidence": tmp_path / "evidence"}


def convert(state: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    done = run_vqual("convert", *args, "--json", state_dir=state)
    payload = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return done.returncode, payload, done.stderr


def test_v2v_differences_show_as_allowed_and_data_changes_fail_by_name(
    executor_state: Path, site: dict[str, Path]
) -> None:
    inv, evidence, data = str(site["inventory"]), str(site["evidence"]), site["data"]
    code, base, err = convert(executor_state, "baseline", "-i", inv, "--limit", "app-src",
                              "-s", str(SPEC), "-c", "CHG0007101", "--evidence-dir", evidence)
    assert code == 0, err
    baseline = Path(base["bundle"])
    fps = [r["data"] for r in records(baseline) if r["kind"] == "fingerprint"]
    assert [f["subject"] for f in fps] == ["app-src"]
    assert sorted(fps[0]["guest"]["data"]) == [
        str(data), str(data / "app.conf"), str(data / "db"),
        str(data / "db" / "customers.dat"), str(data / "db" / "orders.dat")]
    assert str(data / "app.conf") not in fps[0]["guest"]["files"]  # data, not a key file

    # The converted VM: other disk format and bus, other NIC model, other name and UUID.
    code, out, err = convert(executor_state, "qualify", "--baseline", str(baseline), "-i", inv,
                             "--limit", "app-dst", "-c", "CHG0007101", "--evidence-dir", evidence)
    assert code == 0, err + json.dumps(out, indent=1)
    assert out["verdict"] == "pass" and out["differences"] == []
    # the SATA bus brings its controller: a device class of the new platform, allowed too
    assert sorted((d["what"], d["where"]) for d in out["allowed"]) == [
        ("vm.device", "controller"), ("vm.disk", "vda"), ("vm.nic", "nic0")]
    assert all("allowed:" in d["reason"] for d in out["allowed"])
    bundle = Path(out["bundle"])
    start = records(bundle)[0]["data"]
    assert start["mode"] == "conversion"
    assert start["conversion"]["baseline_seal"] == seal_of(baseline)
    assert start["conversion"]["source"]["subject"] == "app-src"
    assert run_vqual("verify", str(bundle), state_dir=executor_state).returncode == 0

    (data / "db" / "orders.dat").write_text("order 1\norder 2 changed\n")
    (data / "db" / "customers.dat").unlink()
    (data / "db" / "new.dat").write_text("new\n")
    code, out, err = convert(executor_state, "qualify", "--baseline", str(baseline), "-i", inv,
                             "--limit", "app-dst", "-c", "CHG0007101", "--evidence-dir", evidence)
    assert code == 1, err
    assert [(d["what"], d["where"]) for d in out["differences"]] == [
        ("data", str(data / "db" / "customers.dat")),
        ("data", str(data / "db" / "new.dat")),
        ("data", str(data / "db" / "orders.dat")),
    ]
    reasons = [d["reason"] for d in out["differences"]]
    assert "(removed)" in reasons[0] and "(added)" in reasons[1] and "(changed)" in reasons[2]
    assert len(out["allowed"]) == 3  # the hardware is still allowed, and still shown
    assert run_vqual("verify", out["bundle"], state_dir=executor_state).returncode == 0


def test_convert_refuses_a_baseline_that_does_not_verify_or_has_several_sources(
    executor_state: Path, site: dict[str, Path]
) -> None:
    inv, evidence = str(site["inventory"]), str(site["evidence"])
    # Both hosts in one run: two fingerprints, no single source.
    done = run_vqual("qualify", "-i", inv, "-s", str(SPEC), "-c", "CHG0007102",
                     "--evidence-dir", evidence, state_dir=executor_state)
    assert done.returncode == 0, done.stdout + done.stderr
    both = bundle_of(done.stdout)
    code, _, err = convert(executor_state, "qualify", "--baseline", str(both), "-i", inv,
                           "--limit", "app-dst", "-c", "CHG0007102", "--evidence-dir", evidence)
    assert code == 2 and "exactly one source" in err and "Traceback" not in err

    spec_copy = both / "spec.yaml"
    spec_copy.write_bytes(spec_copy.read_bytes() + b"# edited\n")
    code, _, err = convert(executor_state, "qualify", "--baseline", str(both), "-i", inv,
                           "--limit", "app-dst", "-c", "CHG0007103", "--evidence-dir", evidence)
    assert code == 1 and "spec.yaml" in err
    assert not (Path(evidence) / "CHG0007103").exists()  # nothing ran
