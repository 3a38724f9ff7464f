"""What the ``statefulhv`` probe answers: its IQ reads and its OQ scenario, as one table run by
the generic request loop (:func:`qualification.platforms.base.answer_loop`).

The OQ scenario ``maintenance_round_trip`` works on a throwaway clone named after the run
(``vqual-oq-<run id>``): it clones the template, starts the clone, live-migrates it off the
maintenance host, puts that host into maintenance and takes it out again, migrates the clone
back, stops it, and always removes it (only if this run created it) and takes the host out of
maintenance if a step left it in. Each step is an action whose verdict is ``pass`` only when
the operation succeeded and its post-condition held on the state read back from the service.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from qualification.errors import PlatformError
from qualification.platforms.base import (
    RUNNING,
    STOPPED,
    BadArgs,
    ObservationTable,
    OqContext,
    answer_loop,
    probe_observation,
)

from .adapter import Endpoint, StatefulHvPlatform

#: The steps of ``maintenance_round_trip``, in order.
ROUND_TRIP_STEPS = ("clone", "power_on", "evacuate", "enter_maintenance", "exit_maintenance",
                    "return", "power_off")
OQ_ARGS = ("template", "maintenance_host", "destination")


def _raw(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- IQ ------------------------------------------------------------------------------------------


def _about(session: StatefulHvPlatform, args: Mapping[str, Any]) -> dict[str, Any]:
    value = session.about().to_json()
    return probe_observation(value=value, raw=_raw(value),
                             method=f"GET /about {session.endpoint.url}")


def _hosts(session: StatefulHvPlatform, args: Mapping[str, Any]) -> dict[str, Any]:
    value = {h.name: h.to_json() for h in session.hosts()}
    return probe_observation(value=value, raw=_raw(value),
                             method=f"GET /hosts {session.endpoint.url}")


def _vms(session: StatefulHvPlatform, args: Mapping[str, Any]) -> dict[str, Any]:
    value = {v.name: v.to_json() for v in session.vms()}
    return probe_observation(value=value, raw=_raw(value),
                             method=f"GET /vms {session.endpoint.url}")


def _snapshots(session: StatefulHvPlatform, args: Mapping[str, Any]) -> dict[str, Any]:
    vm = args.get("vm")
    if not isinstance(vm, str) or not vm:
        raise BadArgs("snapshots: argument 'vm' (a VM name) is required")
    value = [s.to_json() for s in session.snapshots(vm)]  # NotSupported: not-executed
    return probe_observation(value=value, raw=_raw(value), method=f"snapshots of {vm}")


# -- OQ ------------------------------------------------------------------------------------------


class _RoundTrip:
    """One run of the scenario: the steps, their actions, and what must be undone."""

    def __init__(self, platform: StatefulHvPlatform, vm: str, args: Mapping[str, str]) -> None:
        self.platform = platform
        self.vm = vm
        self.template, self.home, self.away = (args[k] for k in OQ_ARGS)
        self.created = False
        self.actions: list[dict[str, Any]] = []
        self.steps: dict[str, dict[str, Any]] = {}

    def state(self) -> dict[str, Any]:
        """The clone and the maintenance host as the service shows them now."""
        try:
            vms = {v.name: v for v in self.platform.vms()}
            host = next((h for h in self.platform.hosts() if h.name == self.home), None)
        except PlatformError as exc:
            return {"error": exc.one_line()}
        clone = vms.get(self.vm)
        return {
            "vm": None if clone is None else {"uuid": clone.uuid, "host": clone.host,
                                               "power_state": clone.power_state},
            "maintenance_host": self.home,
            "in_maintenance": None if host is None else host.in_maintenance,
        }

    def _post(self, step: str, after: Mapping[str, Any]) -> str | None:
        """Why ``step``'s post-condition does not hold on ``after``, or None."""
        vm = after.get("vm") or {}
        wanted: dict[str, tuple[bool, str]] = {
            "clone": (vm.get("power_state") == STOPPED, "the clone is not there, stopped"),
            "power_on": (vm.get("power_state") == RUNNING, "the clone is not running"),
            "evacuate": (vm.get("host") == self.away, f"the clone is not on {self.away}"),
            "enter_maintenance": (after.get("in_maintenance") is True,
                                  f"{self.home} is not in maintenance"),
            "exit_maintenance": (after.get("in_maintenance") is False,
                                 f"{self.home} is still in maintenance"),
            "return": (vm.get("host") == self.home, f"the clone is not back on {self.home}"),
            "power_off": (vm.get("power_state") == STOPPED, "the clone is not stopped"),
            "cleanup": (not after.get("vm") and after.get("in_maintenance") is False,
                        "the clone or the maintenance mode is left behind"),
        }
        ok, reason = wanted[step]
        return None if ok else f"{reason}: {_raw(after)}"

    def step(self, step: str, operation: Callable[[], object]) -> bool:
        """Run one step as an action; whether it passed."""
        started, t0, before = _stamp(), time.monotonic(), self.state()
        verdict, reason = "pass", None
        try:
            operation()
            self.created = self.created or step == "clone"
        except PlatformError as exc:  # NotSupported included: the service refused or lacks it
            verdict, reason = "fail", exc.one_line()
        after = self.state()
        if verdict == "pass":
            reason = self._post(step, after)
            verdict = "pass" if reason is None else "fail"
        self.steps[step] = {"verdict": verdict, "reason": reason,
                            "duration_ms": int((time.monotonic() - t0) * 1000)}
        self.actions.append({"name": f"statefulhv.{step}", "target": self.vm, "before": before,
                             "after": after, "verdict": verdict, "reason": reason,
                             "started": started, "finished": _stamp()})
        return verdict == "pass"

    def run(self) -> None:
        p = self.platform
        operations: dict[str, Callable[[], object]] = {
            "clone": lambda: p.clone_vm(self.template, self.vm),
            "power_on": lambda: p.power_on(self.vm),
            "evacuate": lambda: p.migrate_vm(self.vm, self.away, live=True),
            "enter_maintenance": lambda: p.enter_maintenance(self.home),
            "exit_maintenance": lambda: p.exit_maintenance(self.home),
            "return": lambda: p.migrate_vm(self.vm, self.home, live=True),
            "power_off": lambda: p.power_off(self.vm),
        }
        found = self.state()
        if found.get("in_maintenance") is not False:
            # Only a host this run put into maintenance is taken out of it again.
            why = found.get("error") or f"{self.home} is not in service (in_maintenance: " \
                f"{found.get('in_maintenance')}): the round trip needs it in service"
            self._skip(ROUND_TRIP_STEPS, str(why))
            return
        for position, name in enumerate(ROUND_TRIP_STEPS):
            if not self.step(name, operations[name]):
                self._skip(ROUND_TRIP_STEPS[position + 1:], f"step {name} did not pass")
                break
        self.restore()

    def _skip(self, steps: Sequence[str], reason: str) -> None:
        for name in steps:
            self.steps[name] = {"verdict": "not-executed", "reason": reason, "duration_ms": 0}

    def restore(self) -> None:
        """Leave the service as found: the host out of maintenance if this run put it there,
        this run's clone gone. A state that cannot be read counts as left behind."""
        now = self.state()
        unknown = "error" in now
        entered = self.steps.get("enter_maintenance", {}).get("verdict") in ("pass", "fail")
        in_maintenance = entered and (unknown or now.get("in_maintenance") is True)
        clone_left = self.created and (unknown or now.get("vm") is not None)
        if not in_maintenance and not clone_left:
            self.steps["cleanup"] = {"verdict": "pass", "reason": None, "duration_ms": 0}
            return

        def undo() -> None:
            if in_maintenance:
                self.platform.exit_maintenance(self.home)
            if clone_left and self.platform.vm_exists(self.vm):
                if self.platform.vm(self.vm).power_state != STOPPED:
                    self.platform.power_off(self.vm)
                self.platform.delete_vm(self.vm)

        self.step("cleanup", undo)

    def value(self) -> dict[str, Any]:
        return {"vm": self.vm, "template": self.template, "maintenance_host": self.home,
                "destination": self.away, "steps": self.steps,
                "passed": all(s["verdict"] == "pass" for s in self.steps.values())}


def _round_trip(
    session: StatefulHvPlatform, ctx: OqContext, args: Mapping[str, Any]
) -> dict[str, Any]:
    missing = [k for k in OQ_ARGS if not isinstance(args.get(k), str) or not args.get(k)]
    if missing:
        raise BadArgs(f"maintenance_round_trip: argument(s) {', '.join(missing)} required "
                      "(host variable vqual_statefulhv_oq)")
    suffix = "".join(c for c in ctx.run_id if c.isalnum() or c in "-_") or "run"
    vm = f"vqual-oq-{suffix}" + (f"-{ctx.position}" if ctx.position > 1 else "")
    trip = _RoundTrip(session, vm, {k: str(args[k]) for k in OQ_ARGS})
    trip.run()
    return probe_observation(
        value=trip.value(),
        method=f"maintenance round trip of {trip.home} with clone {vm} {session.endpoint.url}",
        actions=trip.actions,
    )


TABLE: ObservationTable[StatefulHvPlatform] = ObservationTable(
    probe="statefulhv",
    iq={"about": _about, "hosts": _hosts, "vms": _vms, "snapshots": _snapshots},
    oq={"maintenance_round_trip": _round_trip},
)


def probe(endpoint: Endpoint, requests: Sequence[Mapping[str, Any]], *, run_id: str = "",
          check_mode: bool = False) -> tuple[dict[str, dict[str, Any]], bool]:
    """``({key: observation}, changed)`` for every request, over one session."""
    return answer_loop(
        TABLE, requests, lambda write: StatefulHvPlatform(endpoint, readonly=not write),
        run_id=run_id, check_mode=check_mode, secrets=(endpoint.token,),
    )
