"""The libvirt probe's ``guest_os`` on libvirt's test driver: each domain's libosinfo id read
from its definition, with the approved support list (a spec data file, read again and held to
its planned digest)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from qualification.checks import evaluate, get_check
from qualification.checks.base import Observation
from qualification.platforms import registry

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "ansible_collections/vqual/qualification/specs/data/guest-os-example.yaml"
NODE = REPO / "tests/fixtures/libvirt/guest-os-node.xml"
CHECK = get_check("libvirt_guest_os")


def _answer(uri: str, files: list[dict[str, str]]) -> dict:
    request = CHECK.request({"support": "guest_os"}).to_json()
    plugin = registry.for_probe("libvirt")
    return plugin.answer([request], host_vars={"vqual_libvirt_uri": uri}, data_files=files)[
        request["key"]
    ]


def _files(tmp_path: Path) -> list[dict[str, str]]:
    copy = tmp_path / "guest-os.yaml"
    shutil.copy(EXAMPLE, copy)
    return [{"name": "guest_os", "path": str(copy),
             "digest": hashlib.sha256(copy.read_bytes()).hexdigest()}]


def test_each_domains_libosinfo_id_is_read_and_an_unsupported_one_is_a_finding(tmp_path):
    observation = _answer(f"test://{NODE}", _files(tmp_path))
    assert observation["error"] is None, observation
    value = observation["value"]
    assert value["hypervisor"] == {"product": "TEST", "version": "0.0.2"}
    assert {g["name"]: (g["os"], g["version"]) for g in value["guests"]} == {
        "vm-debian12": ("debian", "12"), "vm-debian10": ("debian", "10"),
    }
    outcome = evaluate(CHECK, Observation.from_json(observation), {"support": "guest_os"},
                       {"op": "absent"})
    assert outcome.observed == [
        "vm-debian10: debian 10 is not supported by TEST 0.0.2 (listed: debian 12)"
    ]


def test_the_default_domain_without_metadata_is_not_identified(tmp_path):
    observation = _answer("test:///default", _files(tmp_path))
    outcome = evaluate(CHECK, Observation.from_json(observation), {"support": "guest_os"},
                       {"op": "absent"})
    assert outcome.observed == ["test: guest OS not identified (no libosinfo metadata in the domain)"]


def test_a_support_list_changed_since_planning_is_an_error(tmp_path):
    files = _files(tmp_path)
    Path(files[0]["path"]).write_text(EXAMPLE.read_text() + "# edited after approval\n")
    observation = _answer("test:///default", files)
    assert "changed since the run was planned" in observation["error"]
    missing = _answer("test:///default", [])
    assert "the spec declares no data file 'guest_os'" in missing["error"]
