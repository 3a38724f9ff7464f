"""Decommissioning a lab guest with evidence (`vqual decommission`).

A throwaway guest ``vqual-tmp-decom`` is defined on kvm1 (a qcow2 overlay of the master disk;
it need not run to be removed) and qualified (its VM fingerprint, a bundle in the evidence
directory). A cold backup of its disk goes into a backup store with its SHA-256 recorded.
Then ``vqual decommission``:

- is refused while another host declares it depends on the guest (exit 2), while a bundle of
  it does not verify (exit 1), and while its backup does not match its recorded digest
  (exit 2): each time nothing changed (the domain and its disk are still there);
- otherwise removes it through libvirt: the run passes, its bundle verifies and cites the
  bundle's seal and the backup's digest, and the domain and its disk are gone as libvirt on
  kvm1 sees them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import run_vqual

pytestmark = [pytest.mark.lab]

NAME = "vqual-tmp-decom"
CHANGE = "CHG0007301"


def records(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(base64.b64decode(json.loads(line)["payload"]))
            for line in (bundle / "records.jsonl").read_text().splitlines()]


def exists(uri: str) -> bool:
    import libvirt

    conn = libvirt.open(uri)
    try:
        return NAME in [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()


@pytest.fixture()
def site(lab: object, tmp_path: Path) -> Iterator[dict[str, Any]]:
    from vqual_lab import guests, manager

    ctx = manager.context()
    state = tmp_path / "state"
    done = run_vqual("keys", "create", "--name", "Test executor", "--role", "executor",
                     "--service", "--throwaway", state_dir=state)
    assert done.returncode == 0, done.stderr
    from tests.conftest import pin_state

    pin_state(state)
    spec = guests.GuestSpec(NAME, "clone", "kvm1", "127.0.0.64", 2264, False)
    guests.define_guest(ctx, spec)
    files = Path(ctx.state()["guests"]["files"])
    disk = files / f"{NAME}.qcow2"
    uri = guests.lab_hosts()["kvm1"]
    store = tmp_path / "backups"
    (store / NAME).mkdir(parents=True)
    backup = store / NAME / "full-1.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-O", "qcow2", str(disk), str(backup)], check=True)
    digest = hashlib.sha256(backup.read_bytes()).hexdigest()
    (store / NAME / "full-1.qcow2.sha256").write_text(f"{digest}  full-1.qcow2\n")
    target = {"vqual_target_kinds": ["clone"], "vqual_libvirt_uri": uri,
              "vqual_libvirt_domain": NAME, "vqual_backup_store": str(store),
              "vqual_backup_policy": {"min_backups": 1}}
    frontend = {"ansible_connection": "local", "vqual_target_kinds": ["linux_host"],
                "vqual_depends_on": [NAME]}
    inventory = tmp_path / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {NAME: target, "app-frontend": frontend}}}))
    qspec = tmp_path / "fp.yaml"
    qspec.write_text(yaml.safe_dump({
        "apiVersion": "vqual/v1", "kind": "Protocol",
        "metadata": {"name": "decom-fp", "title": "VM fingerprint", "version": "1.0"},
        "requirements": ["URS-MVM-01"],
        "tests": [{"id": "IQ-FP-002", "title": "VM fingerprint", "protocol": "IQ",
                   "requirements": ["URS-MVM-01"], "applies_to": ["clone"],
                   "risk": ["high", "medium", "low"], "scope": ["master", "clone"],
                   "check": "vm_fingerprint", "params": {"field": "vm.vcpus"},
                   "expect": {"op": "range", "min": 1}, "acceptance": "observed"}],
    }))
    evidence = tmp_path / "evidence"
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(qspec), "-c", "CHG0007300",
                     "--limit", NAME, "--evidence-dir", str(evidence), "--json", state_dir=state)
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        yield {"state": state, "inventory": inventory, "evidence": evidence, "uri": uri,
               "disk": disk, "backup": backup, "digest": digest,
               "bundle": Path(json.loads(done.stdout)["bundle"])}
    finally:
        guests.remove_guest(ctx, NAME, "kvm1")


def decommission(site: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    done = run_vqual("decommission", "-i", str(site["inventory"]), "--limit", NAME, "-c", CHANGE,
                     "--evidence-dir", str(site["evidence"]), "--json", state_dir=site["state"])
    payload = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return done.returncode, payload, done.stderr


def test_decommission_refused_then_done_and_observed_gone(site: dict[str, Any]) -> None:
    code, _, err = decommission(site)
    assert code == 2 and "app-frontend depend(s) on it" in err and "Traceback" not in err
    assert exists(site["uri"]) and site["disk"].exists()  # nothing changed

    hosts = yaml.safe_load(site["inventory"].read_text())
    del hosts["all"]["hosts"]["app-frontend"]["vqual_depends_on"]
    site["inventory"].write_text(yaml.safe_dump(hosts))
    spec_copy = site["bundle"] / "spec.yaml"
    original = spec_copy.read_bytes()
    spec_copy.write_bytes(original + b"# edited\n")
    code, _, err = decommission(site)
    assert code == 1 and "does not verify" in err and "spec.yaml" in err
    assert exists(site["uri"]) and site["disk"].exists()
    spec_copy.write_bytes(original)

    saved = site["backup"].read_bytes()
    site["backup"].write_bytes(saved[:-1] + bytes([saved[-1] ^ 1]))
    code, _, err = decommission(site)
    assert code == 2 and "0 backup(s) observed retained" in err and "full-1.qcow2: sha256" in err
    assert exists(site["uri"]) and site["disk"].exists()
    site["backup"].write_bytes(saved)

    code, out, err = decommission(site)
    assert code == 0, err + json.dumps(out)
    assert not exists(site["uri"]) and not site["disk"].exists()
    bundle = Path(out["bundle"])
    start = records(bundle)[0]["data"]
    assert start["mode"] == "decommission"
    cited = start["decommission"]["targets"][NAME]
    assert [b["bundle"] for b in cited["bundles"]] == [str(site["bundle"].resolve())]
    assert [b["sha256"] for b in cited["backups"]] == [site["digest"]]
    actions = [r["data"] for r in records(bundle) if r["kind"] == "action"]
    assert [a["name"] for a in actions] == ["vm.decommission"]
    assert actions[0]["before"]["exists"] and not actions[0]["after"]["exists"]
    assert run_vqual("verify", str(bundle), state_dir=site["state"]).returncode == 0
    shutil.rmtree(site["backup"].parent)
