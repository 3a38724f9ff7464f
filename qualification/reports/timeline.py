"""A rolling patch as a picture: per host, its steps on a time axis (inline SVG).

Drawn from the bundle's records only (docs/rolling-patch.md): each ``action`` named
``patch.<step>`` is a bar on its host's row from ``started`` to ``finished``, coloured by the
phase it belongs to (evacuate, maintenance, patch, reboot, requalify, return); the VM moves
are taken from the evacuate step's ``detail`` (VM -> destination) and drawn as arrows to the
destination host's row; a ``deviation.raised`` marks where the run halted, with its step and
reason; a ``host.skipped`` is written on its row. Autoescaped: host and VM names are text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup

from qualification.evidence.kinds import ACTION, DEVIATION_RAISED, HOST_SKIPPED, RUN_START
from qualification.evidence.kinds.base import data_of
from qualification.reports.model import Records, _as_mappings
from qualification.reports.values import cut
from qualification.timeutil import parse_utc

#: Each per-host step (qualification.rollout.steps.STEP_TABLE) in the phase it belongs to.
PHASES: dict[str, str] = {
    "recheck": "evacuate", "stop_placements": "evacuate", "evacuate": "evacuate",
    "verify_empty": "evacuate", "enter_maintenance": "maintenance", "patch": "patch",
    "reboot": "reboot", "requalify": "requalify", "leave_maintenance": "return",
    "health_check": "return", "commit": "return",
}
#: Phase colours (colour is never the only sign: each bar has its step's name as a title).
COLOURS: dict[str, str] = {
    "evacuate": "#6a8fc7", "maintenance": "#b58ad6", "patch": "#e0a030", "reboot": "#d86a6a",
    "requalify": "#4aa56b", "return": "#7a7a7a",
}
_LEFT, _PLOT, _ROW, _TOP = 170, 900, 54, 40


@dataclass(frozen=True)
class Bar:
    host: str
    step: str
    phase: str
    start: datetime
    end: datetime
    verdict: str


def _when(value: Any) -> datetime | None:
    try:
        return parse_utc(str(value)) if value else None
    except ValueError:
        return None


def _bars(records: list[Mapping[str, Any]]) -> list[Bar]:
    bars = []
    for record in records:
        if record["kind"] != ACTION:
            continue
        data = data_of(record)
        name = str(data.get("name") or "")
        step = name.removeprefix("patch.") if name.startswith("patch.") else name
        start, end = _when(data.get("started")), _when(data.get("finished"))
        if start is None:
            continue
        phase = PHASES.get(step, "requalify" if step.startswith("requalify") else "return")
        bars.append(Bar(str(data.get("target") or ""), step, phase, start,
                        max(end or start, start), str(data.get("verdict") or "")))
    return bars


def _moves(records: list[Mapping[str, Any]]) -> list[tuple[str, str, str, datetime, str]]:
    """(vm, source host, destination, when, how) from each evacuate step's detail."""
    out = []
    for record in records:
        data = data_of(record)
        if record["kind"] != ACTION or data.get("name") != "patch.evacuate":
            continue
        when = _when(data.get("finished")) or _when(data.get("started"))
        detail = data.get("detail")
        if when is None or not isinstance(detail, Mapping):
            continue
        for vm, what in sorted(detail.items(), key=lambda kv: str(kv[0])):
            if isinstance(what, Mapping) and what.get("destination"):
                how = "already there" if what.get("already_there") else (
                    f"{what.get('seconds')} s" if what.get("seconds") is not None else "")
                out.append((str(vm), str(data.get("target") or ""), str(what["destination"]),
                            when, how))
            elif isinstance(what, Mapping) and what.get("stopped"):
                out.append((str(vm), str(data.get("target") or ""), "", when, "stopped"))
    return out


def timeline_context(given: Records) -> dict[str, Any] | None:
    """The picture's geometry and labels; None when the records hold no patch step."""
    records = _as_mappings(given)
    bars = _bars(records)
    halts = [(data_of(r), _when(r.get("time"))) for r in records if r["kind"] == DEVIATION_RAISED]
    if not bars and not halts:
        return None
    start = next((data_of(r) for r in records if r["kind"] == RUN_START), {})
    hosts = [str(t.get("name")) for t in start.get("targets") or () if isinstance(t, Mapping)]
    moves = _moves(records)
    for name in [b.host for b in bars] + [m[2] for m in moves if m[2]]:
        if name not in hosts:
            hosts.append(name)
    times = [b.start for b in bars] + [b.end for b in bars] + [t for _, t in halts if t]
    t0, t1 = min(times), max(times)
    span = max((t1 - t0).total_seconds(), 1e-3)

    def x(moment: datetime) -> float:
        return round(_LEFT + _PLOT * (moment - t0).total_seconds() / span, 1)

    def y(host: str) -> int:
        return _TOP + hosts.index(host) * _ROW if host in hosts else _TOP

    skipped = {str(data_of(r).get("target")): str(data_of(r).get("reason") or "")
               for r in records if r["kind"] == HOST_SKIPPED}
    return {
        "width": _LEFT + _PLOT + 30,
        "height": _TOP + max(len(hosts), 1) * _ROW + 60 + 18 * len(halts),
        "left": _LEFT, "right": _LEFT + _PLOT, "top": _TOP,
        "rows": [{"host": h, "y": y(h), "skipped": cut(skipped.get(h, ""), 90)} for h in hosts],
        "bars": [{"x": x(b.start), "w": max(x(b.end) - x(b.start), 3.0), "y": y(b.host) + 8,
                  "colour": COLOURS[b.phase], "step": b.step, "phase": b.phase,
                  "verdict": b.verdict, "host": b.host,
                  "title": f"{b.host}: {b.step} ({b.phase}) {b.verdict}, "
                           f"{(b.end - b.start).total_seconds():.3f} s"} for b in bars],
        "moves": [{"x": x(when), "y1": y(src) + 30, "y2": y(dst) + 14 if dst else y(src) + 44,
                   "label": f"{vm} → {dst}" if dst else f"{vm} stopped", "how": how,
                   "vm": vm, "to": dst} for vm, src, dst, when, how in moves],
        "halts": [_halt(d, x(when) if when else _LEFT + _PLOT, y(str(d.get("target") or "")))
                  for d, when in halts],
        "ticks": [{"x": round(_LEFT + _PLOT * i / 4, 1),
                   "label": f"+{span * i / 4:.2f} s"} for i in range(5)],
        "t0": t0.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "legend": [{"phase": p, "colour": c, "x": _LEFT + i * 120} for i, (p, c)
                   in enumerate(COLOURS.items())],
    }


def _halt(data: Mapping[str, Any], at: float, row: int) -> dict[str, Any]:
    """Where the run halted: a red mark with the step and the reason beside it."""
    right = at > _LEFT + _PLOT / 2  # the label goes where there is room
    return {"x": at, "y": row, "tx": at - 4 if right else at + 4,
            "anchor": "end" if right else "start",
            "label": f"halted at {data.get('target')} {data.get('step')}",
            "reason": cut(str(data.get("reason") or ""), 110)}


def render_timeline(records: Records) -> Markup | None:
    """The timeline as an inline ``<svg>`` element (markup rendered with autoescaping, so a
    page may embed it as it is); None when there is nothing to draw."""
    from qualification.reports.html import _environment

    context = timeline_context(records)
    if context is None:
        return None
    return Markup(_environment().get_template("timeline.svg.j2").render(**context))


__all__ = ["COLOURS", "PHASES", "render_timeline", "timeline_context"]
