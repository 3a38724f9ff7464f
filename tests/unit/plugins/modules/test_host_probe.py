"""The host_probe module run for real: as Ansible runs a module, and through ``ansible``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qualification.checks import Observation, evaluate, get_check

REPO = Path(__file__).resolve().parents[4]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
#: The repo root is a collections path: it holds ansible_collections/vqual/qualification.
COLLECTIONS = REPO
MODULE = COLLECTION / "plugins" / "modules" / "host_probe.py"
VENV_BIN = Path(sys.executable).parent

def env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
    }


def run_module(tmp_path: Path, args: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Run the module file the way AnsiballZ does: arguments in a JSON file, result on stdout."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    completed = subprocess.run(
        [sys.executable, str(MODULE), str(args_file)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env(), "PYTHONPATH": str(COLLECTIONS)},
    )
    return completed.returncode, json.loads(completed.stdout)


def requests_for(*specs: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [get_check(check).request(params).to_json() for check, params in specs]


def test_module_answers_every_request_in_one_call(tmp_path: Path) -> None:
    reqs = requests_for(
        ("os_release", {"field": "ID"}),
        ("kernel_release", {}),
        ("cpu_count", {}),
        ("sysctl", {"key": "kernel.ostype"}),
        ("file_mode", {"path": "/etc/passwd"}),
        ("dmi", {"field": "sys_vendor"}),
    )
    reqs.append({"key": "bogus", "method": "no_such_method", "args": {}})
    rc, result = run_module(tmp_path, {"requests": reqs})
    assert rc == 0
    assert result["changed"] is False
    assert "failed" not in result
    observations = result["observations"]
    assert sorted(observations) == sorted(r["key"] for r in reqs)
    assert observations["bogus"]["error"] == "unknown host probe method 'no_such_method'"
    assert observations[reqs[1]["key"]]["value"]["release"] == os.uname().release
    assert observations[reqs[2]["key"]]["value"]["logical"] == os.cpu_count()
    assert observations[reqs[3]["key"]]["value"] == "Linux"
    assert observations[reqs[4]["key"]]["value"]["mode"] == "0644"
    dmi = observations[reqs[5]["key"]]
    if Path("/sys/class/dmi/id").is_dir():
        assert dmi["error"] is None
    else:
        assert "no DMI data" in dmi["error"]
    assert isinstance(result["probe_seconds"], float)


def test_module_results_evaluate_on_the_controller(tmp_path: Path) -> None:
    params = {"key": "kernel.ostype"}
    req = get_check("sysctl").request(params)
    _, result = run_module(tmp_path, {"requests": [req.to_json()]})
    observation = Observation.from_json(result["observations"][req.key()])
    outcome = evaluate(get_check("sysctl"), observation, params, {"op": "equals", "value": "Linux"})
    assert (outcome.verdict, outcome.observed) == ("pass", "Linux")
    assert observation.method == "host.sysctl /proc/sys/kernel/ostype"


def test_module_in_check_mode_observes_and_changes_nothing(tmp_path: Path) -> None:
    reqs = requests_for(("kernel_release", {}))
    rc, result = run_module(tmp_path, {"requests": reqs, "_ansible_check_mode": True})
    assert rc == 0 and result["changed"] is False
    assert result["observations"][reqs[0]["key"]]["value"]["release"] == os.uname().release


def test_module_refuses_bad_arguments(tmp_path: Path) -> None:
    rc, result = run_module(tmp_path, {"requests": [{"method": "kernel"}]})
    assert rc != 0 and result["failed"] is True
    assert "key" in result["msg"]
    rc, result = run_module(tmp_path, {"requests": [], "command_timeout": 0})
    assert result["failed"] is True
    assert result["msg"] == "host_probe failed: command_timeout must be at least 1 second"


def test_module_through_ansible(tmp_path: Path) -> None:
    reqs = requests_for(("os_release", {"field": "VERSION_ID"}), ("memory_total_mb", {}))
    completed = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "localhost",
            "-m",
            "vqual.qualification.host_probe",
            "-a",
            json.dumps({"requests": reqs}),
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env={**env(), "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.minimal"},
    )
    assert completed.returncode == 0, completed.stderr
    # The minimal callback prints "localhost | SUCCESS => {<result as JSON>}".
    head, _, body = completed.stdout.partition(" => ")
    assert head.strip() == "localhost | SUCCESS"
    result = json.loads(body)
    assert result["changed"] is False
    release = result["observations"][reqs[0]["key"]]
    assert release["method"].startswith("host.file ")
    assert release["value"]["VERSION_ID"]
    assert "VERSION_ID=" in release["raw"]
    assert result["observations"][reqs[1]["key"]]["value"]["total_mb"] > 0


def test_ansible_doc_documents_the_module() -> None:
    completed = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "-t", "module", "--json", "vqual.qualification.host_probe"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env(),
    )
    assert completed.returncode == 0, completed.stderr
    doc = json.loads(completed.stdout)["vqual.qualification.host_probe"]
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert doc["doc"]["attributes"]["diff_mode"]["support"] == "none"
    assert doc["doc"]["options"]["requests"]["required"] is True
    assert "vqual.qualification.host_probe:" in doc["examples"]
    assert "observations" in doc["return"]
