"""The one ``run.start`` builder (qualification.execution.run_start)."""

from __future__ import annotations

import typing

from qualification import __version__
from qualification.evidence.kinds.run_start import RunStartData
from qualification.execution.run_start import run_start_data

_COMMON: dict[str, typing.Any] = {
    "spec": {"path": "/s.yaml", "name": "s", "version": "1", "digest": "0" * 64},
    "data_files": [],
    "inventory_digest": "1" * 64,
    "trust": {"digest": "2" * 64, "version": None},
    "targets": [{"name": "h", "kinds": ["host"], "risk": "low", "risk_reason": "r"}],
    "planned": [{"test_id": "T-1", "target": "h", "protocol": "IQ"}],
    "prev_run_seal": None,
    "approval": None,
    "config": {"file": "config.yaml", "digest": None, "settings": {}},
}


def test_the_builder_fills_in_tool_and_controller_facts_for_every_mode() -> None:
    for mode in ("qualify", "clone", "drift", "patch", "selftest"):
        data = run_start_data(mode=mode, **_COMMON)
        assert data["mode"] == mode
        assert data["tool"] == {"name": "vqual", "version": __version__}
        assert data["versions"]["vqual"] == __version__
        assert {"hostname", "os", "python"} <= set(data["controller"])
        assert "synchronized" in data["clock"]
        assert data["inventory"] == {"digest": "1" * 64}
        assert "requirements" not in data  # only when given


def test_requirements_are_recorded_when_given_and_every_field_is_declared() -> None:
    data = run_start_data(mode="qualify", requirements=("URS-1",), **_COMMON)
    assert data["requirements"] == ["URS-1"]
    assert set(data) <= set(typing.get_type_hints(RunStartData))
    assert set(RunStartData.__required_keys__) <= set(data)
