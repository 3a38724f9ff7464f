"""The change file of a rolling patch: ``change.yaml``, format ``vqual.change/v1``.

One file says what a rolling patch may do: which cluster, which target version, which VMs may
be stopped and for how long, which hosts stay out and why, when. It is hashed (SHA-256 of its
bytes) into the evidence and into the plan's digest, so a plan and a run are bound to the exact
file. Every malformed field is refused as :class:`~qualification.errors.SpecError` (a
:class:`~qualification.errors.BadInputError`, exit 2) naming ``file:line`` and the field path.
The format is documented in docs/rolling-patch.md, section "change.yaml".

A high-risk change must name an OQ canary VM (``requalify.canary_vm``: RP-OQ-01 migrates it
onto every patched host and back) or waive it with a reason (``canary_waiver: {reason: ...}``);
otherwise it is refused here, before anything is planned.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qualification.errors import ChangeIdError, SpecError
from qualification.spec.change import is_safe_name, validate_change_id
from qualification.spec.source import FieldPath, LocatedDocument, read_located

API_VERSION = "vqual.change/v1"
RISKS = ("high", "medium", "low")

DEFAULT_HEADROOM = 0.1
DEFAULT_VCPU_RATIO = 4.0
DEFAULT_MAX_PARALLEL_MIGRATIONS = 2
DEFAULT_MIGRATION_TIMEOUT_S = 600.0
DEFAULT_STEP_TIMEOUT_S = 1800.0

# UTC with Z, a time of day, optional fraction: the window must not depend on a local zone.
_UTC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")

_TOP_KEYS = frozenset(
    {
        "apiVersion",
        "change_id",
        "title",
        "risk",
        "cluster",
        "target",
        "window",
        "headroom",
        "vcpu_ratio",
        "max_parallel_migrations",
        "migration_timeout_s",
        "step_timeout_s",
        "stop_approved",
        "exclude_hosts",
        "anti_affinity",
        "requalify",
        "canary_waiver",
    }
)
_REQUIRED = ("apiVersion", "change_id", "title", "risk", "cluster", "target", "window")


@dataclass(frozen=True)
class ChangeTarget:
    """What a host must run after its patch; at least one field is set.

    Attributes:
        hypervisor_version: the hypervisor version the platform reports (vSphere
            ``product.version``, libvirt the hypervisor version).
        hypervisor_build: the build number (vSphere ``product.build``).
        packages: package name to exact version (KVM hosts: the distribution's version).
    """

    hypervisor_version: str | None = None
    hypervisor_build: str | None = None
    packages: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "hypervisor_version": self.hypervisor_version,
            "hypervisor_build": self.hypervisor_build,
            "packages": dict(sorted(self.packages.items())),
        }


@dataclass(frozen=True)
class ChangeWindow:
    """The maintenance window, both ends UTC; a run may start only inside it."""

    start: datetime
    end: datetime

    def contains(self, moment: datetime) -> bool:
        """True if ``moment`` (timezone-aware) lies in ``[start, end)``."""
        return self.start <= moment < self.end

    def to_json(self) -> dict[str, str]:
        return {"start": _utc_z(self.start), "end": _utc_z(self.end)}


@dataclass(frozen=True)
class StopApproval:
    """A VM that may be powered off while its host is patched, for at most ``max_downtime_s``."""

    vm: str
    max_downtime_s: float


@dataclass(frozen=True)
class HostExclusion:
    """A host the rollout leaves alone (no VMs taken from it or put on it), and why."""

    host: str
    reason: str


@dataclass(frozen=True)
class RequalifySpec:
    """How each patched host is requalified before it carries VMs again.

    Attributes:
        spec: the qualification spec, resolved against the change file's directory.
        tests: test ids of that spec to run (empty: the spec's risk-based selection).
        canary_vm: a VM migrated onto the patched host and back as a live test.
    """

    spec: Path
    tests: tuple[str, ...] = ()
    canary_vm: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"spec": str(self.spec), "tests": list(self.tests), "canary_vm": self.canary_vm}


@dataclass(frozen=True)
class CanaryWaiver:
    """The change runs without an OQ canary VM, and why (recorded in the evidence).

    A waiver lets a high-risk change be planned without ``requalify.canary_vm``; it does not
    make RP-OQ-01 pass: that test stays ``not-executed`` on every host, with this reason.
    """

    reason: str

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason}


@dataclass(frozen=True)
class RolloutChange:
    """A loaded ``change.yaml``. ``digest`` is the SHA-256 of the file's bytes."""

    change_id: str
    title: str
    risk: str
    cluster: str
    target: ChangeTarget
    window: ChangeWindow
    digest: str
    path: Path
    headroom: float = DEFAULT_HEADROOM
    vcpu_ratio: float = DEFAULT_VCPU_RATIO
    max_parallel_migrations: int = DEFAULT_MAX_PARALLEL_MIGRATIONS
    migration_timeout_s: float = DEFAULT_MIGRATION_TIMEOUT_S
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    stop_approved: tuple[StopApproval, ...] = ()
    exclude_hosts: tuple[HostExclusion, ...] = ()
    anti_affinity: tuple[tuple[str, ...], ...] = ()
    requalify: RequalifySpec | None = None
    canary_waiver: CanaryWaiver | None = None

    @property
    def canary_vm(self) -> str | None:
        """The OQ canary VM (``requalify.canary_vm``), or None."""
        return self.requalify.canary_vm if self.requalify is not None else None

    def stop_approval(self, vm: str) -> StopApproval | None:
        """The approval to stop ``vm``, or None if it may not be stopped."""
        for approval in self.stop_approved:
            if approval.vm == vm:
                return approval
        return None

    def exclusion(self, host: str) -> HostExclusion | None:
        """Why ``host`` is excluded, or None if the rollout patches it."""
        for excluded in self.exclude_hosts:
            if excluded.host == host:
                return excluded
        return None

    def to_json(self) -> dict[str, Any]:
        """The change as plain JSON (for evidence: ``run.start`` and the plan)."""
        return {
            "api_version": API_VERSION,
            "change_id": self.change_id,
            "title": self.title,
            "risk": self.risk,
            "cluster": self.cluster,
            "target": self.target.to_json(),
            "window": self.window.to_json(),
            "headroom": self.headroom,
            "vcpu_ratio": self.vcpu_ratio,
            "max_parallel_migrations": self.max_parallel_migrations,
            "migration_timeout_s": self.migration_timeout_s,
            "step_timeout_s": self.step_timeout_s,
            "stop_approved": [
                {"vm": s.vm, "max_downtime_s": s.max_downtime_s} for s in self.stop_approved
            ],
            "exclude_hosts": [{"host": e.host, "reason": e.reason} for e in self.exclude_hosts],
            "anti_affinity": [list(group) for group in self.anti_affinity],
            "requalify": self.requalify.to_json() if self.requalify else None,
            "canary_waiver": self.canary_waiver.to_json() if self.canary_waiver else None,
            "digest": self.digest,
            "path": str(self.path),
        }


def _utc_z(moment: datetime) -> str:
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text.rstrip("0").rstrip(".") + "Z"


def load_change(path: Path, *, change_id_pattern: str | None = None) -> RolloutChange:
    """Read and validate a change file.

    Args:
        path: the ``change.yaml``.
        change_id_pattern: the site's change id pattern (``config.yaml``); None checks only
            the safe-name rule every change id obeys.

    Raises:
        SpecError: the file cannot be read, is not YAML, or any field is missing, unknown or
            malformed; ``where`` is ``file:line``, the message names the field path.
    """
    path = Path(path)
    raw, doc = read_located(path, "change file")
    return _Reader(doc, path, hashlib.sha256(raw).hexdigest(), change_id_pattern).change()


class _Reader:
    """Field-by-field validation; each error carries the field's own line."""

    def __init__(self, doc: LocatedDocument, path: Path, digest: str, pattern: str | None) -> None:
        self.doc = doc
        self.path = path
        self.digest = digest
        self.pattern = pattern

    def fail(self, at: FieldPath, message: str) -> SpecError:
        return self.doc.error(at, message)

    def mapping(self, value: Any, at: FieldPath, allowed: frozenset[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(at, f"must be a mapping, not {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    (*at, key), f"unknown field (allowed: {', '.join(sorted(allowed))})"
                )
        return value

    def text(self, value: Any, at: FieldPath) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(at, f"must be a non-empty string, not {_kind(value)}")
        return value

    def name(self, value: Any, at: FieldPath, what: str) -> str:
        text = self.text(value, at)
        if text != text.strip() or any(c.isspace() for c in text):
            raise self.fail(at, f"{what} name {text!r} must not contain white space")
        return text

    def number(
        self,
        value: Any,
        at: FieldPath,
        *,
        low: float,
        high: float | None = None,
        low_open: bool = True,
        high_open: bool = False,
    ) -> float:
        # bool is an int in Python; `true` is never a sensible timeout.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(at, f"must be a number, not {_kind(value)}")
        number = float(value)
        too_low = number <= low if low_open else number < low
        too_high = high is not None and (number >= high if high_open else number > high)
        if too_low or too_high or not math.isfinite(number):
            lo = f"> {low:g}" if low_open else f">= {low:g}"
            hi = "" if high is None else (f" and < {high:g}" if high_open else f" and <= {high:g}")
            raise self.fail(at, f"{value!r} is out of range (must be {lo}{hi})")
        return number

    def integer(self, value: Any, at: FieldPath, *, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(at, f"must be an integer, not {_kind(value)}")
        if not low <= value <= high:
            raise self.fail(at, f"{value} is out of range ({low}..{high})")
        return value

    def time(self, value: Any, at: FieldPath) -> datetime:
        if not isinstance(value, str) or not _UTC_TIME.fullmatch(value):
            raise self.fail(
                at, f'{value!r} is not a UTC time like "2026-11-26T20:00:00Z" (quoted, with Z)'
            )
        try:
            return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
        except ValueError as exc:
            raise self.fail(at, f"{value!r} is not a valid time: {exc}") from None

    def sequence(self, value: Any, at: FieldPath) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(at, f"must be a list, not {_kind(value)}")
        return value

    # -- the document ---------------------------------------------------------------------

    def change(self) -> RolloutChange:
        data = self.doc.data
        if data is None:
            raise self.fail((), "change file is empty")
        top = self.mapping(data, (), _TOP_KEYS)
        for key in _REQUIRED:
            if key not in top:
                raise self.fail((), f"missing required field {key!r}")
        if top["apiVersion"] != API_VERSION:
            raise self.fail(
                ("apiVersion",), f"{top['apiVersion']!r} is not supported (use {API_VERSION})"
            )
        change_id = self.text(top["change_id"], ("change_id",))
        try:
            if self.pattern is not None:
                validate_change_id(change_id, self.pattern)
            elif not is_safe_name(change_id):
                raise ChangeIdError(f"change id {change_id!r} is not a safe name")
        except ChangeIdError as exc:
            raise self.fail(("change_id",), exc.message) from None
        risk = top["risk"]
        if risk not in RISKS:
            raise self.fail(("risk",), f"{risk!r} is not one of {', '.join(RISKS)}")
        kwargs: dict[str, Any] = {}
        if "headroom" in top:
            kwargs["headroom"] = self.number(
                top["headroom"], ("headroom",), low=0.0, low_open=False, high=1.0, high_open=True
            )
        if "vcpu_ratio" in top:
            kwargs["vcpu_ratio"] = self.number(top["vcpu_ratio"], ("vcpu_ratio",), low=0.0)
        if "max_parallel_migrations" in top:
            kwargs["max_parallel_migrations"] = self.integer(
                top["max_parallel_migrations"], ("max_parallel_migrations",), low=1, high=64
            )
        for key in ("migration_timeout_s", "step_timeout_s"):
            if key in top:
                kwargs[key] = self.number(top[key], (key,), low=0.0, high=7 * 24 * 3600.0)
        window = self.window(top["window"])
        change = RolloutChange(
            change_id=change_id,
            title=self.text(top["title"], ("title",)).strip(),
            risk=risk,
            cluster=self.name(top["cluster"], ("cluster",), "cluster"),
            target=self.target(top["target"]),
            window=window,
            digest=self.digest,
            path=self.path,
            stop_approved=self.stop_approved(top.get("stop_approved", [])),
            exclude_hosts=self.exclude_hosts(top.get("exclude_hosts", [])),
            anti_affinity=self.anti_affinity(top.get("anti_affinity", [])),
            requalify=self.requalify(top["requalify"]) if "requalify" in top else None,
            canary_waiver=(
                self.canary_waiver(top["canary_waiver"]) if "canary_waiver" in top else None
            ),
            **kwargs,
        )
        # Across fields, once each field is valid on its own.
        self.check_canary(change, has_requalify="requalify" in top)
        return change

    def target(self, value: Any) -> ChangeTarget:
        at: FieldPath = ("target",)
        data = self.mapping(
            value, at, frozenset({"hypervisor_version", "hypervisor_build", "packages"})
        )
        version = build = None
        if "hypervisor_version" in data:
            version = self.version(data["hypervisor_version"], (*at, "hypervisor_version"))
        if "hypervisor_build" in data:
            build = self.version(data["hypervisor_build"], (*at, "hypervisor_build"))
        packages: dict[str, str] = {}
        if "packages" in data:
            pat = (*at, "packages")
            table = data["packages"]
            if not isinstance(table, dict) or not table:
                raise self.fail(pat, "must be a non-empty mapping of package name to version")
            for pkg, ver in table.items():
                packages[self.name(pkg, (*pat, pkg), "package")] = self.version(ver, (*pat, pkg))
        if version is None and build is None and not packages:
            raise self.fail(
                at,
                "names nothing to patch to: set hypervisor_version, hypervisor_build or packages",
            )
        return ChangeTarget(version, build, dict(sorted(packages.items())))

    def version(self, value: Any, at: FieldPath) -> str:
        # YAML reads 8.0 as a float and 24022515 as an int: a version is text, so say "quote it".
        if not isinstance(value, str):
            raise self.fail(at, f"must be a quoted string, not {_kind(value)} {value!r}")
        return self.name(value, at, "version")

    def window(self, value: Any) -> ChangeWindow:
        at: FieldPath = ("window",)
        data = self.mapping(value, at, frozenset({"start", "end"}))
        for key in ("start", "end"):
            if key not in data:
                raise self.fail(at, f"missing required field {key!r}")
        start = self.time(data["start"], (*at, "start"))
        end = self.time(data["end"], (*at, "end"))
        if end <= start:
            raise self.fail((*at, "end"), "must be after window.start")
        return ChangeWindow(start, end)

    def stop_approved(self, value: Any) -> tuple[StopApproval, ...]:
        at: FieldPath = ("stop_approved",)
        out: list[StopApproval] = []
        seen: set[str] = set()
        for i, item in enumerate(self.sequence(value, at)):
            data = self.mapping(item, (*at, i), frozenset({"vm", "max_downtime_s"}))
            for key in ("vm", "max_downtime_s"):
                if key not in data:
                    raise self.fail((*at, i), f"missing required field {key!r}")
            vm = self.text(data["vm"], (*at, i, "vm"))
            if vm in seen:
                raise self.fail((*at, i, "vm"), f"VM {vm!r} is listed twice")
            seen.add(vm)
            downtime = self.number(
                data["max_downtime_s"], (*at, i, "max_downtime_s"), low=0.0, high=7 * 24 * 3600.0
            )
            out.append(StopApproval(vm, downtime))
        return tuple(out)

    def exclude_hosts(self, value: Any) -> tuple[HostExclusion, ...]:
        at: FieldPath = ("exclude_hosts",)
        out: list[HostExclusion] = []
        seen: set[str] = set()
        for i, item in enumerate(self.sequence(value, at)):
            data = self.mapping(item, (*at, i), frozenset({"host", "reason"}))
            for key in ("host", "reason"):
                if key not in data:
                    raise self.fail((*at, i), f"missing required field {key!r}")
            host = self.name(data["host"], (*at, i, "host"), "host")
            if host in seen:
                raise self.fail((*at, i, "host"), f"host {host!r} is listed twice")
            seen.add(host)
            out.append(
                HostExclusion(host, " ".join(self.text(data["reason"], (*at, i, "reason")).split()))
            )
        return tuple(out)

    def anti_affinity(self, value: Any) -> tuple[tuple[str, ...], ...]:
        at: FieldPath = ("anti_affinity",)
        out: list[tuple[str, ...]] = []
        for i, group in enumerate(self.sequence(value, at)):
            members = self.sequence(group, (*at, i))
            names = [self.text(vm, (*at, i, j)) for j, vm in enumerate(members)]
            if len(names) < 2:
                raise self.fail((*at, i), "an anti-affinity group needs at least two VMs")
            if len(set(names)) != len(names):
                raise self.fail((*at, i), "an anti-affinity group lists a VM twice")
            out.append(tuple(names))
        return tuple(out)

    def requalify(self, value: Any) -> RequalifySpec:
        at: FieldPath = ("requalify",)
        data = self.mapping(value, at, frozenset({"spec", "tests", "canary_vm"}))
        if "spec" not in data:
            raise self.fail(at, "missing required field 'spec'")
        given = Path(self.text(data["spec"], (*at, "spec")))
        spec = Path(os.path.normpath(given if given.is_absolute() else self.path.parent / given))
        if not spec.is_file():
            raise self.fail((*at, "spec"), f"spec file {str(spec)!r} does not exist")
        tests: list[str] = []
        for j, test in enumerate(self.sequence(data.get("tests", []), (*at, "tests"))):
            tid = self.name(test, (*at, "tests", j), "test id")
            if tid in tests:
                raise self.fail((*at, "tests", j), f"test {tid!r} is listed twice")
            tests.append(tid)
        canary = None
        if data.get("canary_vm") is not None:
            canary = self.text(data["canary_vm"], (*at, "canary_vm"))
        return RequalifySpec(spec, tuple(tests), canary)

    def canary_waiver(self, value: Any) -> CanaryWaiver:
        at: FieldPath = ("canary_waiver",)
        data = self.mapping(value, at, frozenset({"reason"}))
        if "reason" not in data:
            raise self.fail(at, "missing required field 'reason' (why no OQ canary VM)")
        return CanaryWaiver(" ".join(self.text(data["reason"], (*at, "reason")).split()))

    def check_canary(self, change: RolloutChange, *, has_requalify: bool) -> None:
        """A high-risk change names an OQ canary or waives it; never both."""
        canary, waiver = change.canary_vm, change.canary_waiver
        if canary is not None and waiver is not None:
            raise self.fail(
                ("canary_waiver",),
                f"waives the OQ canary, but requalify.canary_vm names {canary!r}: keep one",
            )
        if change.risk == "high" and canary is None and waiver is None:
            # The field is usually absent: its line, else requalify's, else risk's.
            line_of: FieldPath = ("requalify", "canary_vm") if has_requalify else ("risk",)
            raise SpecError(
                "requalify.canary_vm: a high-risk change must name an OQ canary VM (RP-OQ-01 "
                "migrates it onto each patched host and back), or waive it with "
                "canary_waiver: {reason: ...}",
                where=self.doc.where(line_of),
            )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)
