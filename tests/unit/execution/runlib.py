"""Helpers for the run service's tests: a real state directory, specs, inventories, the host
probe run in this process."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from qualification.execution.keys import create_trusted_key

REPO = Path(__file__).resolve().parents[3]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
CHANGE = "CHG0007001"
RUN = "20260301T100000Z-0a1b2c"


def executor_state(tmp_path: Path) -> tuple[Path, Path]:
    """A state directory whose trust store holds one executor service key: (state, key)."""
    state = tmp_path / "state"
    key = state / "keys" / "executor.pem"
    create_trusted_key(
        key, state, name="Test executor", identity="executor@example.com", roles=["executor"],
        passphrase=None, throwaway=True, valid_days=1,
    )
    from tests.trustroot_testlib import pin_state

    pin_state(state)  # signed by the test trust root, pinned outside the state directory
    return state, key


def test_def(test_id: str, check: str, params: dict[str, Any], expect: dict[str, Any],
             kinds: tuple[str, ...] = ("linux_host",), protocol: str = "IQ") -> dict[str, Any]:
    return {
        "id": test_id, "title": f"{check} {params}", "protocol": protocol,
        "requirements": ["URS-HV-02"], "applies_to": list(kinds),
        "risk": ["high", "medium", "low"], "check": check, "params": params,
        "expect": expect, "acceptance": "as expected",
    }


test_def.__test__ = False  # type: ignore[attr-defined]  # a helper, not a pytest test

PASSING = test_def("IQ-T-001", "file_exists", {"path": "/etc/passwd"}, {"op": "equals", "value": True})
FAILING = test_def("IQ-T-002", "os_release", {"field": "ID"}, {"op": "equals", "value": "not-an-os"})


def write_spec(folder: Path, tests: list[dict[str, Any]], *, with_data: bool = True) -> Path:
    """A small spec in ``folder``, with one data file unless told otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "apiVersion": "vqual/v1",
        "kind": "Protocol",
        "metadata": {"name": "run-service", "title": "Run service tests", "version": "1.0"},
        "requirements": ["URS-HV-02"],
        "tests": tests,
    }
    if with_data:
        (folder / "data").mkdir(exist_ok=True)
        (folder / "data" / "expected.yaml").write_text("kernel: 6.1\n")
        doc["data_files"] = {"expected": "data/expected.yaml"}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def local_host(**extra: Any) -> dict[str, Any]:
    """Inventory variables of a target reached with the local connection."""
    return {"ansible_connection": "local", "vqual_target_kinds": ["linux_host"],
            "vqual_risk": "high", "group_names": [], **extra}


def host_observations() -> ModuleType:
    """The collection's host probe code (module_utils), loaded from the repository."""
    path = COLLECTION / "plugins" / "module_utils" / "host_observations.py"
    spec = importlib.util.spec_from_file_location("vqual_host_observations_run", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LocalModules:
    """Runs the host probe module's work in this process, on this machine: what Ansible's
    ``_execute_module`` does for ``vqual.qualification.host_probe`` over a local connection,
    without the module transport. Records every call."""

    def __init__(self) -> None:
        self.observer = host_observations().HostObserver()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((name, args))
        assert name == "vqual.qualification.host_probe"
        return {"changed": False, "observations": self.observer.observe_all(args["requests"])}
