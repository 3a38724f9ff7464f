"""The verdict of a failover run (URS-OPS-03, ``libvirt_guest_oq`` test ``failover``) from
its measured values alone, so the check judges what the record carries, not what the probe
said of it (``qualification.platforms.libvirt.guest_failover`` measures them).

The values (the test's ``measured`` in its ``check.result`` record): ``domain``,
``failed_host``, ``restarted_on``, ``running_s``, ``restart_s``, ``bound_s``,
``marker_written``, ``marker_read``, ``stack`` (versions per host), ``fail``, ``restore`` and
``prepare`` (each an attempt: ``command``, ``exit``, ``stdout_tail``, ``stderr_tail``,
``seconds``); a run that could not fail the host has ``attempt_failed`` and ``reason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The issue's budget for the whole failover: four minutes.
BOUND_S = 240.0


def judge(value: Mapping[str, Any]) -> tuple[str, str | None]:
    """The verdict of a failover run's measured values, and the reason when not ``pass``.

    ``pass`` only when the guest answered on a host other than the failed one within the
    bound, and the marker read back there is the marker written before the failure.
    """
    if value.get("attempt_failed"):
        return "not-executed", str(value.get("reason") or "a step before the failure failed")
    failed, restarted = value.get("failed_host"), value.get("restarted_on")
    restart_s, bound = value.get("restart_s"), value.get("bound_s", BOUND_S)
    if not restarted or restarted == failed:
        return "fail", f"{value.get('domain')} did not run again on another host than {failed}"
    if not isinstance(restart_s, (int, float)) or restart_s > bound:
        return "fail", f"the guest did not answer within {bound} s of the host failure"
    written, read = value.get("marker_written"), value.get("marker_read")
    if not written or read != written:
        return "fail", (f"the marker read back on {restarted} ({read!r}) is not the one "
                        f"written before the failure ({written!r})")
    return "pass", None
