"""The JUnit of a real `vqual qualify` run (embedded default: this machine and libvirt's test
driver): valid against the xunit plugin's schema, each testcase timed by its own observation."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema
import yaml

from tests.conftest import COLLECTION, REPO, run_vqual

LOCAL_INV = REPO / "inventories" / "local"
XSD = REPO / "tests" / "fixtures" / "schemas" / "junit-10.xsd"


def _test(test_id: str, check: str, params: dict[str, Any], expect: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": test_id, "title": check, "protocol": "IQ", "requirements": ["URS-HV-02"],
        "applies_to": ["linux_host"], "risk": ["high", "medium", "low"], "check": check,
        "params": params, "expect": expect, "acceptance": "as expected",
    }


def _spec(tmp_path: Path) -> Path:
    embedded = yaml.safe_load((COLLECTION / "specs" / "libvirt-embedded.yaml").read_text())
    (libvirt_type,) = [t for t in embedded["tests"] if t["id"] == "IQ-LV-002"]
    spec = {
        "apiVersion": "vqual/v1",
        "kind": "Protocol",
        "metadata": {"name": "junit-timing", "title": "JUnit timing", "version": "1.0"},
        "requirements": ["URS-HV-02"],
        "tests": [
            # Its observation takes half a second on the host: the command it runs does.
            _test("IQ-J-SLOW", "command_output", {"argv": ["sleep", "0.5"], "result": "rc"},
                  {"op": "equals", "value": 0}),
            _test("IQ-J-FAST", "file_exists", {"path": "/etc/passwd"},
                  {"op": "equals", "value": True}),
            libvirt_type,  # answered by the controller-side platform loop
        ],
    }
    path = tmp_path / "junit-timing.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _results(bundle: Path) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for line in (bundle / "records.jsonl").read_text().splitlines():
        record = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if record["kind"] == "check.result":
            data = record["data"]
            out[(data["target"], data["test_id"])] = data
    return out


@pytest.fixture(scope="module")
def bundle(executor_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("junit")
    done = run_vqual("qualify", "--evidence-dir", str(tmp / "evidence"), "-i", str(LOCAL_INV),
                     "-s", str(_spec(tmp)), "-c", "CHG0000034", "--json",
                     state_dir=executor_state)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid"
    return Path(summary["bundle"])


def test_the_junit_of_a_real_run_is_valid_against_the_xunit_schema(bundle: Path) -> None:
    xmlschema.XMLSchema(XSD).validate(str(bundle / "junit.xml"))
    # The glob the CI examples publish (docs/examples/) finds it.
    assert list(bundle.parents[1].glob("*/*/junit.xml")) == [bundle / "junit.xml"]


def test_each_testcase_is_timed_by_its_own_observation(bundle: Path) -> None:
    results = _results(bundle)
    root = ET.parse(bundle / "junit.xml").getroot()
    cases: dict[tuple[str, str], float] = {}
    for suite in root.iter("testsuite"):
        for case in suite.iter("testcase"):
            test_id = str(case.get("name")).split()[0]
            cases[(str(suite.get("hostname")), test_id)] = float(case.get("time") or "nan")
    assert set(cases) == set(results)
    for key, data in results.items():
        assert cases[key] == pytest.approx(data["observation_ms"] / 1000, abs=1e-6), key
    slow, fast = results[("localhost", "IQ-J-SLOW")], results[("localhost", "IQ-J-FAST")]
    assert slow["observation_ms"] >= 500
    # The fast one shared the slow one's host round trip, but its time is its own.
    assert fast["duration_ms"] >= 500 and fast["observation_ms"] < 250
    libvirt = results[("libvirt-test", "IQ-LV-002")]
    assert 0 < libvirt["observation_ms"] < libvirt["duration_ms"]


def test_suites_name_their_host_and_timestamps_are_whole_seconds(bundle: Path) -> None:
    root = ET.parse(bundle / "junit.xml").getroot()
    suites = root.findall("testsuite")
    assert {s.get("hostname") for s in suites} == {"localhost", "libvirt-test"}
    for suite in suites:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp") or "")
