"""probe() / answer_requests(): every request of a hypervisor answered in one connection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qualification.checks.base import Observation, ProbeRequest
from qualification.platforms.libvirt import (
    IQ_METHODS,
    BadArgs,
    answer_requests,
    new_run_id,
    probe,
)

URI = "test:///default"
FIELDS = {"value", "raw", "method", "error", "not_executed", "actions"}


def req(method: str, **args: Any) -> dict[str, Any]:
    return ProbeRequest("libvirt", method, args).to_json()


def test_every_iq_method_answers(tmp_path: Path) -> None:
    requests = [req(m) for m in IQ_METHODS if m != "domain"] + [req("domain", name="test")]
    observations, changed = probe(URI, requests, state_dir=tmp_path)
    assert changed is False
    assert set(observations) == {r["key"] for r in requests}
    for key, obs in observations.items():
        assert set(obs) == FIELDS, key
        assert obs["error"] is None and obs["not_executed"] is None, (key, obs)
        assert obs["actions"] == []
        assert URI in obs["method"]
        json.dumps(obs)  # plain JSON, as a module must return
        Observation.from_json(obs)
    by_method = {r["method"]: observations[r["key"]] for r in requests}
    assert by_method["version"]["value"]["type"] == "TEST"
    assert by_method["nodeinfo"]["value"]["cpus"] == 16
    assert by_method["capabilities"]["raw"].lstrip().startswith("<capabilities>")
    assert by_method["capabilities"]["value"]["guest"]["os_types"] == ["hvm", "xen"]
    assert by_method["domain"]["value"]["name"] == "test"
    assert "<domain type='test'>" in by_method["domain"]["raw"]
    assert by_method["host"]["value"]["in_maintenance"] is False


def test_oq_lifecycle_reports_steps_and_actions(tmp_path: Path) -> None:
    requests = [req("oq_lifecycle", steps=["define", "start", "stop", "undefine"])]
    observations, changed = probe(URI, requests, run_id="R-1", state_dir=tmp_path)
    obs = observations[requests[0]["key"]]
    assert changed is True
    assert obs["value"]["vm"] == "vqual-oq-R-1"
    assert {s: v["verdict"] for s, v in obs["value"]["steps"].items()} == {
        "define": "pass",
        "start": "pass",
        "stop": "pass",
        "undefine": "pass",
    }
    assert [a["name"] for a in obs["actions"]] == [
        "vm.define",
        "vm.start",
        "vm.stop",
        "vm.undefine",
    ]


def test_two_oq_requests_use_two_throwaway_domains(tmp_path: Path) -> None:
    requests = [req("oq_lifecycle", steps=["define"]), req("oq_lifecycle", steps=["start"])]
    observations, _ = probe(URI, requests, run_id="R2", state_dir=tmp_path)
    names = [observations[r["key"]]["value"]["vm"] for r in requests]
    assert names == ["vqual-oq-R2", "vqual-oq-R2-2"]


def test_oq_migrate_is_not_executed_on_the_test_driver_and_cleans_up(tmp_path: Path) -> None:
    requests = [req("oq_migrate", destination="test:///default")]
    observations, _ = probe(URI, requests, run_id="R3", state_dir=tmp_path)
    obs = observations[requests[0]["key"]]
    assert obs["not_executed"] is not None
    assert "not supported" in obs["not_executed"] and "virDomainMigrate" in obs["not_executed"]
    assert obs["error"] is None
    assert [a["name"] for a in obs["actions"]] == ["vm.define_start", "vm.migrate"]
    assert obs["actions"][1]["verdict"] == "not-executed"
    assert obs["value"]["cleanup"] == {"verdict": "pass", "reason": None}


def test_check_mode_does_not_execute_oq_but_reads_iq(tmp_path: Path) -> None:
    requests = [req("version"), req("oq_lifecycle"), req("oq_migrate", destination=URI)]
    observations, changed = probe(URI, requests, check_mode=True, state_dir=tmp_path)
    assert changed is False
    assert observations[requests[0]["key"]]["value"]["type"] == "TEST"
    for r in requests[1:]:
        assert observations[r["key"]]["not_executed"] == "check mode"
        assert observations[r["key"]]["actions"] == []


def test_bad_uri_gives_one_line_errors_for_every_request() -> None:
    requests = [req("version"), req("oq_lifecycle")]
    observations, changed = probe("test:///no/such/node.xml", requests)
    assert changed is False
    for r in requests:
        error = observations[r["key"]]["error"]
        assert error.startswith("test:///no/such/node.xml: connect failed: ")
        assert "\n" not in error and "Traceback" not in error


def test_unknown_method_and_bad_args_are_errors_not_exceptions(tmp_path: Path) -> None:
    requests = [
        req("reboot_host"),
        req("domain"),
        req("domain", name="missing"),
        req("oq_lifecycle", steps=["fly"]),
        req("oq_lifecycle", steps="define"),
        req("oq_migrate"),
    ]
    observations, _ = probe(URI, requests, state_dir=tmp_path)
    errors = [observations[r["key"]]["error"] for r in requests]
    assert errors[0].startswith("unknown libvirt probe method 'reboot_host' (known: version")
    assert errors[1] == "domain: argument 'name' (a domain name) is required"
    assert errors[2] == "test:///default: lookup vm missing failed: Domain not found"
    assert errors[3].startswith("oq_lifecycle: unknown OQ step 'fly'")
    assert errors[4] == "oq_lifecycle: argument 'steps' must be a list of step names"
    assert errors[5] == "oq_migrate: argument 'destination' (a libvirt URI) is required"


def test_unsafe_run_id_is_refused() -> None:
    with pytest.raises(BadArgs, match="run_id '../x' is not a safe name"):
        probe(URI, [req("version")], run_id="../x")


def test_answer_requests_never_raises_and_ignores_empty_run_id() -> None:
    bad = answer_requests(URI, [req("version")], run_id="../x")
    assert "not a safe name" in bad[req("version")["key"]]["error"]
    good = answer_requests(URI, [req("oq_lifecycle", steps=["define"])], run_id="")
    value = good[req("oq_lifecycle", steps=["define"])["key"]]["value"]
    assert value["vm"].startswith("vqual-oq-") and len(value["vm"]) == len("vqual-oq-") + 23


def test_new_run_id_format() -> None:
    run_id = new_run_id()
    assert len(run_id) == 23 and run_id[8] == "T" and run_id[15] == "Z" and run_id[16] == "-"
