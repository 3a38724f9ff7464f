"""The libvirt_probe module, run for real: as Ansible runs a module (a separate Python process
reading its arguments), through the ``ansible`` command with the collection, and its docs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[4]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
MODULE = COLLECTION / "plugins" / "modules" / "libvirt_probe.py"
VENV_BIN = Path(sys.executable).parent
#: The repo root is a collections path: it holds ansible_collections/vqual/qualification.
COLLECTIONS = REPO
FQCN = "vqual.qualification.libvirt_probe"

# Runs the module with the qualification package made unimportable, as on a controller
# where vqual is not installed.
_WITHOUT_VQUAL = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "qualification" or name.startswith("qualification."):
            raise ImportError("No module named " + repr(name))
        return None
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_module(
    tmp_path: Path,
    args: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    blocked: bool = False,
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}), encoding="utf-8")
    command = [sys.executable, str(MODULE), str(args_file)]
    if blocked:
        command = [sys.executable, "-c", _WITHOUT_VQUAL, str(MODULE), str(args_file)]
    full_env = {k: v for k, v in os.environ.items() if k != "VQUAL_LIBVIRT_URI"}
    full_env["VQUAL_STATE_DIR"] = str(tmp_path / "state")
    # The module reaches vqual through the collection's module_utils, as AnsiballZ packs it.
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(COLLECTIONS), full_env.get("PYTHONPATH", "")) if p
    )
    full_env.update(env or {})
    done = subprocess.run(
        command, capture_output=True, text=True, env=full_env, timeout=120, check=False
    )
    return json.loads(done.stdout), done


def req(key: str, method: str, **args: Any) -> dict[str, Any]:
    return {"key": key, "method": method, "args": args}


def test_iq_methods_in_one_call(tmp_path: Path) -> None:
    result, done = run_module(
        tmp_path,
        {
            "uri": "test:///default",
            "requests": [req("v", "version"), req("n", "nodeinfo"), req("c", "capabilities")],
        },
    )
    assert done.returncode == 0, done.stderr
    assert result["changed"] is False
    obs = result["observations"]
    assert obs["v"]["value"]["type"] == "TEST"
    assert obs["n"]["value"]["memory_mib"] == 3072
    assert obs["c"]["value"]["host"]["secmodels"] == ["testSecurity"]
    assert result["probe_seconds"] >= 0


def test_oq_lifecycle_changes_and_cleans_up(tmp_path: Path) -> None:
    result, done = run_module(
        tmp_path,
        {
            "uri": "test:///default",
            "run_id": "mod-1",
            "requests": [req("oq", "oq_lifecycle"), req("d", "domains")],
        },
    )
    assert done.returncode == 0, done.stderr
    assert result["changed"] is True
    oq = result["observations"]["oq"]
    assert oq["value"]["vm"] == "vqual-oq-mod-1" and oq["value"]["passed"] is True
    assert len(oq["actions"]) == 7
    # The domains list was read after the lifecycle, in the same connection: no leftover.
    assert [d["name"] for d in result["observations"]["d"]["value"]] == ["test"]


def test_check_mode_skips_oq(tmp_path: Path) -> None:
    result, _ = run_module(
        tmp_path,
        {
            "uri": "test:///default",
            "requests": [req("oq", "oq_lifecycle"), req("h", "hostname")],
            "_ansible_check_mode": True,
        },
    )
    assert result["changed"] is False
    assert result["observations"]["oq"]["not_executed"] == "check mode"
    assert result["observations"]["h"]["value"]


def test_uri_from_environment(tmp_path: Path) -> None:
    result, _ = run_module(
        tmp_path, {"requests": [req("v", "version")]}, env={"VQUAL_LIBVIRT_URI": "test:///default"}
    )
    assert result["observations"]["v"]["value"]["type"] == "TEST"


def test_missing_uri_fails_clearly(tmp_path: Path) -> None:
    result, done = run_module(tmp_path, {"requests": [req("v", "version")]})
    assert done.returncode != 0
    assert result["failed"] is True and "uri" in result["msg"]


def test_bad_uri_returns_error_observations_not_a_traceback(tmp_path: Path) -> None:
    result, done = run_module(
        tmp_path,
        {
            "uri": "qemu+tcp://ops:Hunter2pw@127.0.0.1:1/system",
            "requests": [req("v", "version"), req("oq", "oq_lifecycle")],
        },
    )
    assert done.returncode == 0
    assert "failed" not in result or result["failed"] is False
    for key in ("v", "oq"):
        error = result["observations"][key]["error"]
        assert error.startswith("qemu+tcp://ops:***@127.0.0.1:1/system: connect failed: ")
        assert "\n" not in error
    assert "Hunter2pw" not in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_unsafe_run_id_fails_the_task(tmp_path: Path) -> None:
    result, done = run_module(
        tmp_path, {"uri": "test:///default", "run_id": "a/b", "requests": [req("v", "version")]}
    )
    assert done.returncode != 0
    assert result["msg"].startswith("libvirt_probe failed: run_id 'a/b' is not a safe name")


def test_missing_qualification_package_is_a_clear_failure(tmp_path: Path) -> None:
    result, done = run_module(
        tmp_path, {"uri": "test:///default", "requests": [req("v", "version")]}, blocked=True
    )
    assert done.returncode != 0
    assert result["failed"] is True
    assert "vqual (the qualification package)" in result["msg"]


def test_missing_libvirt_python_names_the_extra_that_installs_it(tmp_path: Path) -> None:
    # The package is installed, libvirt-python is not (a venv without the libvirt extra).
    script = _WITHOUT_VQUAL.replace(
        'name == "qualification" or name.startswith("qualification.")',
        'name.split(".")[0] in ("libvirt", "libvirt_qemu")',
    ).replace('raise ImportError("No module named " + repr(name))',
              'raise ModuleNotFoundError("No module named " + repr(name), name=name)')
    assert "ModuleNotFoundError" in script and "libvirt_qemu" in script
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "uri": "test:///default", "requests": [req("v", "version")]}}), encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", script, str(MODULE), str(args_file)],
                          capture_output=True, text=True, timeout=120, check=False)
    result = json.loads(done.stdout)
    assert done.returncode != 0 and result["failed"] is True
    # Every platform module fails as "<action> failed: <one line>" (module_utils/vqual_platform).
    assert result["msg"] == ("libvirt_probe failed: libvirt/KVM support needs libvirt-python, "
                             "which is not installed: pip install 'vqual[libvirt]'")


def _ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
    env["ANSIBLE_LOCALHOST_WARNING"] = "False"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def test_runs_through_ansible_with_the_collection(tmp_path: Path) -> None:
    args = json.dumps({"uri": "test:///default", "requests": [req("v", "version")]})
    done = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "localhost",
            "-m",
            FQCN,
            "-a",
            args,
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ],
        capture_output=True,
        text=True,
        env=_ansible_env(),
        cwd=tmp_path,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.split("=>", 1)[1])
    assert result["observations"]["v"]["value"]["type"] == "TEST"


def test_ansible_doc_documents_the_module() -> None:
    done = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "-t", "module", "--json", FQCN],
        capture_output=True,
        text=True,
        env=_ansible_env(),
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)[FQCN]
    assert set(doc["doc"]["attributes"]) >= {"check_mode", "diff_mode"}
    assert doc["doc"]["options"]["uri"]["required"] is True
    assert f"{FQCN}:" in doc["examples"]
    assert {"observations", "probe_seconds"} <= set(doc["return"])
