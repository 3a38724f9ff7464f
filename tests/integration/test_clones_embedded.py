"""`vqual clone` end to end without the lab: libvirt's test driver holds a master and clones.

A test driver node file (``test:///<file>``) defines the master domain and two clones, so
every process (the master's run, the clone run, ansible-runner's workers) sees the same
domains. The master is qualified with ``vqual qualify`` (its VM fingerprint recorded), then
``vqual clone`` qualifies the clones against that bundle by difference: one clone inside the
allowed sizing range passes, one outside fails naming vCPUs; the refusals come first.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import run_vqual

CHANGE = "CHG0004242"


def domain(name: str, uuid_tail: str, vcpus: int, mac_tail: str) -> str:
    return f"""
  <domain type="test">
    <name>{name}</name>
    <uuid>6695eb01-f6a4-8304-79aa-97f2502e{uuid_tail}</uuid>
    <memory>393216</memory>
    <vcpu>{vcpus}</vcpu>
    <os><type arch="x86_64">hvm</type></os>
    <devices>
      <disk type="file" device="disk">
        <source file="/guests/{name}-vda.qcow2"/><target dev="vda" bus="virtio"/>
      </disk>
      <interface type="network">
        <mac address="52:54:00:00:00:{mac_tail}"/><source network="default"/><model type="virtio"/>
      </interface>
    </devices>
  </domain>"""


def records(bundle: Path) -> list[dict[str, Any]]:
    return [
        json.loads(base64.b64decode(json.loads(line)["payload"]))
        for line in (bundle / "records.jsonl").read_text().splitlines()
    ]


def spec_doc(require_approval: bool) -> dict[str, Any]:
    common = {"protocol": "IQ", "requirements": ["URS-VM-01"], "risk": ["high", "medium", "low"]}
    return {
        "apiVersion": "vqual/v1",
        "kind": "Protocol",
        "metadata": {"name": "master-vm-td", "title": "Master-VM on the test driver", "version": "1.0"},
        "requirements": ["URS-VM-01"],
        "tests": [
            {
                "id": "IQ-MVM-001", "title": "Virtual hardware fingerprint", **common,
                "applies_to": ["master_vm"], "scope": ["master", "clone"],
                "check": "vm_fingerprint", "params": {"field": "vm.vcpus"},
                "expect": {"op": "range", "min": 1}, "acceptance": "fingerprint recorded",
            },
            {
                "id": "IQ-MVM-002", "title": "Master memory", **common,
                "applies_to": ["master_vm"],
                "check": "vm_fingerprint", "params": {"field": "vm.memory_mib"},
                "expect": {"op": "equals", "value": 384}, "acceptance": "384 MiB",
            },
            {
                "id": "IQ-CLN-001", "title": "Clone hardware as the master's", **common,
                "applies_to": ["master_vm"], "scope": ["clone"],
                "check": "clone_fingerprint", "params": {"part": "vm"},
                "expect": {"op": "absent"},
                "acceptance": "no difference outside identity and the sizing ranges",
            },
        ],
        "clone": {
            "sizing": {"vcpus": {"min": 1, "max": 2}},
            "master": {"require_approval": require_approval},
        },
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clones-td")
    node = root / "node.xml"
    node.write_text(
        "<node>"
        + domain("tmaster", "193f", 1, "01")
        + domain("tclone1", "1940", 2, "02")
        + domain("tclone2", "1941", 4, "03")
        + "\n</node>\n"
    )
    local = {"ansible_connection": "local", "vqual_libvirt_uri": f"test://{node}"}
    inventory = {
        "all": {
            "children": {
                "master_vm": {
                    "hosts": {"tmaster": {"vqual_libvirt_domain": "tmaster"}},
                    "vars": {**local, "vqual_target_kinds": ["master_vm"]},
                },
                "clones": {
                    "hosts": {
                        "tclone1": {"vqual_libvirt_domain": "tclone1"},
                        "tclone2": {"vqual_libvirt_domain": "tclone2"},
                    },
                    "vars": {**local, "vqual_target_kinds": ["clone"]},
                },
            }
        }
    }
    inv = root / "hosts.yml"
    inv.write_text(yaml.safe_dump(inventory))
    spec = root / "master-vm.yaml"
    spec.write_text(yaml.safe_dump(spec_doc(require_approval=False), sort_keys=False))
    strict = root / "master-vm-approved.yaml"
    strict.write_text(yaml.safe_dump(spec_doc(require_approval=True), sort_keys=False))
    return {"root": root, "inventory": inv, "spec": spec, "strict": strict}


@pytest.fixture(scope="module")
def master_bundle(site: dict[str, Path], executor_state: Path) -> Path:
    done = run_vqual(
        "qualify", "-i", str(site["inventory"]), "-s", str(site["spec"]), "-c", "CHG0004241",
        "--limit", "tmaster", "--evidence-dir", str(site["root"] / "evidence"), "--json",
        state_dir=executor_state,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    bundle = Path(json.loads(done.stdout)["bundle"])
    fingerprints = [r for r in records(bundle) if r["kind"] == "fingerprint"]
    assert [f["data"]["subject"] for f in fingerprints] == ["tmaster"]
    return bundle


def clone_run(site: dict[str, Path], state: Path, *args: str) -> Any:
    return run_vqual(
        "clone", "-i", str(site["inventory"]), "-c", CHANGE,
        "--evidence-dir", str(site["root"] / "evidence"), "--json", *args, state_dir=state,
    )


def test_clones_are_qualified_by_difference_and_cite_the_master(
    site: dict[str, Path], master_bundle: Path, executor_state: Path
) -> None:
    done = clone_run(
        site, executor_state, "-s", str(site["spec"]), "--master-bundle", str(master_bundle),
        "--clones", "tclone1,tclone2",
    )
    assert done.returncode == 1, done.stdout + done.stderr  # tclone2 is outside the range
    out = json.loads(done.stdout)
    assert out["verification"] == "valid"
    bundle = Path(out["bundle"])
    recs = records(bundle)
    start = recs[0]["data"]
    master_seal = json.loads(run_vqual("verify", str(master_bundle), "--json",
                                       state_dir=executor_state).stdout)["seal"]
    assert start["mode"] == "clone"
    assert start["clone"]["master_seal"] == master_seal == out["master"]["seal"]
    assert start["clone"]["master_bundle"] == str(master_bundle.resolve())
    assert start["clone"]["master_fingerprint"]["subject"] == "tmaster"
    # the reduced set: the master-only test IQ-MVM-002 is not planned on clones
    assert sorted((p["target"], p["test_id"]) for p in start["planned"]) == [
        ("tclone1", "IQ-CLN-001"), ("tclone1", "IQ-MVM-001"),
        ("tclone2", "IQ-CLN-001"), ("tclone2", "IQ-MVM-001"),
    ]
    results = {(r["data"]["target"], r["data"]["test_id"]): r["data"] for r in recs
               if r["kind"] == "check.result"}
    ok = results[("tclone1", "IQ-CLN-001")]
    assert (ok["verdict"], ok["observed"]) == ("pass", [])  # 2 vCPUs: inside [1, 2]; name, UUID, MAC allowed
    bad = results[("tclone2", "IQ-CLN-001")]
    assert bad["verdict"] == "fail"
    assert bad["observed"] == [{"what": "vm.vcpus", "where": "vcpus", "master": 1, "clone": 4,
                                "detail": "outside the allowed range [1, 2]"}]
    # each clone's own fingerprint is in its bundle too
    assert sorted(r["data"]["subject"] for r in recs if r["kind"] == "fingerprint") == [
        "tclone1", "tclone2"
    ]


def test_an_unapproved_master_is_refused_before_anything_runs(
    site: dict[str, Path], master_bundle: Path, executor_state: Path
) -> None:
    before = sorted((site["root"] / "evidence" / CHANGE).glob("*")) if (
        site["root"] / "evidence" / CHANGE).exists() else []
    done = clone_run(
        site, executor_state, "-s", str(site["strict"]), "--master-bundle", str(master_bundle),
        "--clones", "tclone1",
    )
    assert done.returncode == 2
    assert "is not approved" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    after = sorted((site["root"] / "evidence" / CHANGE).glob("*")) if (
        site["root"] / "evidence" / CHANGE).exists() else []
    assert after == before  # no bundle was written


def test_a_tampered_master_is_refused_with_exit_1(
    site: dict[str, Path], master_bundle: Path, executor_state: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "master-copy"
    shutil.copytree(master_bundle, copy)
    (copy / "spec.yaml").write_bytes((copy / "spec.yaml").read_bytes() + b"# edited\n")
    done = clone_run(
        site, executor_state, "-s", str(site["spec"]), "--master-bundle", str(copy),
        "--clones", "tclone1",
    )
    assert done.returncode == 1
    assert "does not verify: spec.yaml" in done.stderr


def test_a_clone_run_refuses_a_host_that_is_not_a_clone(
    site: dict[str, Path], master_bundle: Path, executor_state: Path
) -> None:
    done = clone_run(
        site, executor_state, "-s", str(site["spec"]), "--master-bundle", str(master_bundle),
        "--clones", "tmaster,tclone1",
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "a clone run qualifies clones only: tmaster has no kind clone" in done.stderr
