"""The check contract: a check type says what to observe and how to read the observation.

A check never talks to a target. It turns its parameters into a :class:`ProbeRequest`; a
probe (a target-side module, or a controller-side platform module) answers every request of
a host in one round trip with an :class:`Observation`; :func:`evaluate` then applies the
test's expectation to the observed value on the controller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qualification.verdict import VERDICTS, Verdict

__all__ = ["VERDICTS", "Verdict"]


@dataclass(frozen=True)
class ProbeRequest:
    """One observation to make on a target.

    Attributes:
        probe: which probe answers it: ``host`` (module ``host_probe`` on the target),
            ``libvirt`` (module ``libvirt_probe`` on the controller), later ``vsphere``,
            ``hyperv``.
        method: the probe's method name, e.g. ``file``, ``sysctl``, ``packages``.
        args: JSON-serialisable arguments of the method.
    """

    probe: str
    method: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """A stable key, so requests shared by several tests are observed once."""
        return f"{self.probe}:{self.method}:" + json.dumps(
            self.args, sort_keys=True, separators=(",", ":")
        )

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key(), "method": self.method, "args": dict(self.args)}


@dataclass(frozen=True)
class Observation:
    """What a probe returned for one request.

    ``error`` means the probe could not observe (verdict ``error``); ``not_executed`` means
    the platform cannot perform the step (verdict ``not-executed``). ``actions`` are
    state-changing steps an OQ probe performed, recorded as ``action`` evidence records.
    """

    value: Any = None
    raw: str | None = None
    method: str = ""
    error: str | None = None
    not_executed: str | None = None
    actions: tuple[Mapping[str, Any], ...] = ()
    #: Seconds the probe spent on this observation, as it measured them; None when unknown.
    seconds: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Observation:
        seconds = data.get("seconds")
        return cls(
            value=data.get("value"),
            raw=data.get("raw"),
            method=str(data.get("method", "")),
            error=data.get("error"),
            not_executed=data.get("not_executed"),
            actions=tuple(data.get("actions") or ()),
            seconds=(
                float(seconds)
                if isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
                and seconds >= 0
                else None
            ),
        )


class StepNotExecuted(Exception):
    """Raised by ``extract`` when the observation says the platform could not perform the
    step: the test is ``not-executed`` with this reason, never ``pass`` or ``fail``.

    ``measured`` holds what the run did measure before it stopped (see :class:`Observed`).
    """

    def __init__(self, reason: str, measured: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.measured: dict[str, Any] = dict(measured or {})


@dataclass(frozen=True)
class Observed:
    """What ``extract`` returns when the observed value rests on more than itself.

    An OQ test compares one figure (a step's verdict, an interruption in seconds), but that
    figure comes out of a run: ``reason`` is the run's own reason for it (why a step failed),
    ``measured`` the values it was decided on (durations, gaps, boot ids). Both go into the
    test's own ``check.result`` record, so a failed test says why without a second record.
    A plain return value from ``extract`` means the observed value stands alone.
    """

    value: Any
    reason: str | None = None
    measured: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """A verdict with what was expected and what was observed.

    ``measured``: the values the observed value rests on (see :class:`Observed`); empty when
    the observed value stands alone.
    """

    verdict: Verdict
    expected: Any
    observed: Any
    reason: str | None = None
    measured: Mapping[str, Any] = field(default_factory=dict)


class Check(Protocol):
    """A check type. Implementations are small frozen dataclasses or plain classes."""

    name: str
    description: str

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        """Return an error text for bad parameters, or None."""

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        """The observation this check needs."""

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        """The observed value to compare, from the probe's value."""


def lifecycle_measured(value: Mapping[str, Any], step: str) -> dict[str, Any]:
    """What one OQ lifecycle step's verdict rests on (``qualification.platforms.oq``): the
    throwaway VM, the step's duration, and the cleanup when the VM could not be removed."""
    measured: dict[str, Any] = {
        "vm": value.get("vm"),
        "duration_ms": value["steps"][step].get("duration_ms"),
    }
    cleanup = value.get("cleanup") or {}
    if cleanup.get("verdict") not in (None, Verdict.PASS):
        measured["cleanup"] = dict(cleanup)
    return measured


# -- parameter checks shared by the check types ---------------------------------------------


def unknown_params(name: str, params: Mapping[str, Any], allowed: set[str]) -> str | None:
    """An error text naming check ``name``'s parameters that are not in ``allowed``, or None."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        return (
            f"{name}: unknown parameter(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    return None


def one_of(name: str, param: str, value: Any, options: Sequence[str]) -> str | None:
    """An error text when parameter ``param`` of check ``name`` is not one of ``options``."""
    if value not in options:
        return f"{name}: parameter {param} must be one of {', '.join(options)}"
    return None
