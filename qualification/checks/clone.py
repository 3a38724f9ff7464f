"""Check type ``clone_fingerprint``: a clone compared with its master's fingerprint.

A clone is qualified by difference (issue #6, docs/clones.md): the part of its fingerprint a
test names (``part: guest``, observed on the clone as ``host_fingerprint`` does, or ``part:
vm``, from the platform as ``vm_fingerprint`` does) is compared with the same part of the
master's fingerprint in the master's bundle. The observed value is the list of differences
the spec's ``clone`` section does not allow, each ``{what, where, master, clone}``; the
expectation is ``absent`` (no difference).

The plan adds two parameters on a clone (``qualification.spec.plan.build_plan``):
``master`` {bundle, seal, subject, digest}, the reference of the master fingerprint, verified
(and approved where required) before the run, and ``allowed``, the spec's allowed
differences. The check reads no bundle: its caller reads the master fingerprint back from that
bundle (``qualification.execution.references``, pinned to the seal) and hands it over as
``master_fingerprint``; a bundle whose seal or fingerprint digest changed since the plan gives
``error``, not a comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qualification.checks.base import ProbeRequest
from qualification.checks.fingerprint import HostFingerprintCheck, VmFingerprintCheck, vm_part
from qualification.checks.fingerprint_model import (
    AllowedDifferences,
    Fingerprint,
    compare,
    make_fingerprint,
)
from qualification.checks.registry import register

CLONE_FINGERPRINT = "clone_fingerprint"
PARTS = ("guest", "vm")

#: Parameters the plan sets; a spec may not.
PLAN_PARAMS = ("master", "allowed")

_HOST = HostFingerprintCheck()
_VM = VmFingerprintCheck()


def _collection_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that say what to observe, shared with the fingerprint checks (so a
    ``host_fingerprint`` test with the same parameters is observed once)."""
    own = {"part", "what", *PLAN_PARAMS}
    return {k: v for k, v in params.items() if k not in own}


#: The parameter through which the caller hands the check the master's fingerprint (a
#: :class:`Fingerprint`, read from the master bundle by ``qualification.execution.references``),
#: or the exception reading it raised; the plan never records it.
MASTER_FINGERPRINT = "master_fingerprint"


def master_fingerprint(reference: Mapping[str, Any], handed: Any) -> Fingerprint:
    """The master fingerprint ``handed`` to the check, held to the plan's ``master`` reference.

    Raises:
        ValueError: nothing was handed, or its subject or digest is not what the plan recorded.
        Exception: what reading the master bundle raised (handed instead of a fingerprint).
    """
    if isinstance(handed, BaseException):
        raise handed
    bundle, subject, digest = (str(reference[k]) for k in ("bundle", "subject", "digest"))
    if handed is None:
        raise ValueError(f"master bundle {bundle} has no fingerprint of {subject!r}")
    if not isinstance(handed, Fingerprint):
        raise TypeError(f"{MASTER_FINGERPRINT} must be a Fingerprint, not {type(handed).__name__}")
    if handed.digest() != digest:
        raise ValueError(
            f"master fingerprint of {subject!r} has digest {handed.digest()}, not {digest}"
        )
    return handed


#: Identity fields the platform reports (the VM part); the guest reports the others.
VM_IDENTITY = frozenset({"name", "uuid", "macs"})


def part_only(fingerprint: Fingerprint, part: str) -> Fingerprint:
    """``fingerprint`` reduced to one part (``guest`` or ``vm``) and that part's identity
    fields, so a part is never judged by identity values only the other part observes."""
    if part == "vm":
        identity = {k: v for k, v in fingerprint.identity.items() if k in VM_IDENTITY}
        return make_fingerprint(fingerprint.subject, "vm", vm=fingerprint.vm, identity=identity)
    identity = {k: v for k, v in fingerprint.identity.items() if k not in VM_IDENTITY}
    return make_fingerprint(
        fingerprint.subject,
        "vm",
        guest=fingerprint.guest,
        identity=identity,
        generalised=fingerprint.generalised,
    )


def live_part(value: Any, part: str, subject: str) -> Fingerprint:
    """The clone's fingerprint part from the probe's answer (as the fingerprint checks read it)."""
    if not isinstance(value, Mapping):
        raise TypeError("the probe returned no fingerprint")
    if part == "vm":
        vm, identity = vm_part(value)
        return make_fingerprint(subject, "vm", vm=vm, identity=identity)
    return make_fingerprint(
        subject,
        "vm",
        guest=value.get("guest"),
        identity=value.get("identity"),
        generalised=value.get("generalised"),
    )


def with_allowed_disk_formats(
    master: Fingerprint, live: Fingerprint, formats: tuple[str, ...]
) -> Fingerprint:
    """``live`` with each disk's format taken as the master's where the clone's format is one
    the spec allows (``clone.disk_formats``): an overlay clone's qcow2 disk on a raw master
    disk is how it was made, not a difference. Every other disk field is still compared."""
    if live.vm is None or master.vm is None:
        return live
    master_formats = {
        str(d.get("target")): d.get("format") for d in master.vm.get("disks") or [] if isinstance(d, Mapping)
    }
    disks = []
    for disk in live.vm.get("disks") or []:
        if isinstance(disk, Mapping) and disk.get("format") in formats and str(disk.get("target")) in master_formats:
            disk = {**disk, "format": master_formats[str(disk.get("target"))]}
        disks.append(disk)
    return make_fingerprint(live.subject, "vm", vm={**live.vm, "disks": disks}, identity=live.identity)


def differences(
    master: Fingerprint,
    live: Fingerprint,
    allowed: AllowedDifferences,
    *,
    part: str,
    what: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The differences of one part that are not allowed, as ``{what, where, master, clone}``
    (plus ``detail`` where the values alone do not say why, e.g. a sizing range); only the
    kinds in ``what`` (prefixes such as ``package`` or ``vm.``) when given. The subject is
    left out: the result's target names the clone."""
    base = part_only(master, part)
    found = compare(base, part_only(live, part), allowed)
    out: list[dict[str, Any]] = []
    for diff in found:
        if what and not any(diff.what == w or diff.what.startswith(w) for w in what):
            continue
        item: dict[str, Any] = {
            "what": diff.what,
            "where": diff.where,
            "master": diff.baseline,
            "clone": diff.live,
        }
        if diff.detail:
            item["detail"] = diff.detail
        out.append(item)
    return out


@dataclass
class CloneFingerprintCheck:
    """A clone's fingerprint part compared with its master's."""

    name: str = CLONE_FINGERPRINT
    description: str = (
        "a clone's guest (packages, users, files, services, security, OS) or VM part "
        "(virtual hardware) compared with its master's fingerprint; identity fields and "
        "sizing inside the spec's ranges are allowed to differ"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        part = params.get("part", "guest")
        if part not in PARTS:
            return f"{self.name}: parameter part must be one of {', '.join(PARTS)}"
        what = params.get("what", [])
        if not isinstance(what, list) or not all(isinstance(w, str) and w for w in what):
            return f"{self.name}: parameter what must be a list of difference kinds"
        delegate = _VM if part == "vm" else _HOST
        problem = delegate.validate_params(
            {k: v for k, v in _collection_params(params).items() if k != "field"}
        )
        if problem:
            return problem.replace(delegate.name, f"{self.name} (part {part})", 1)
        if "field" in params:
            return f"{self.name}: unknown parameter field"
        master = params.get("master")
        if master is not None and (
            not isinstance(master, Mapping)
            or any(not isinstance(master.get(k), str) for k in ("bundle", "seal", "subject", "digest"))
        ):
            return f"{self.name}: parameter master must be {{bundle, seal, subject, digest}}"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        delegate = _VM if params.get("part", "guest") == "vm" else _HOST
        return delegate.request(_collection_params(params))

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        reference = params.get("master")
        if not isinstance(reference, Mapping):
            raise ValueError(  # noqa: TRY004 - a missing input, not a wrong type
                "no master fingerprint: a clone is compared with its master "
                "(vqual clone --master-bundle, or clone.master.bundle in the spec)"
            )
        master = master_fingerprint(reference, params.get(MASTER_FINGERPRINT))
        part = str(params.get("part", "guest"))
        allowed_json = dict(params.get("allowed") or {})
        formats = tuple(str(f) for f in allowed_json.pop("disk_formats", None) or ())
        allowed = AllowedDifferences.from_json(allowed_json, where="params.allowed")
        live = live_part(value, part, master.subject)
        if part == "vm" and formats:
            live = with_allowed_disk_formats(master, live, formats)
        if part == "guest" and master.guest is None:
            raise ValueError(f"the master fingerprint of {master.subject!r} has no guest part")
        if part == "vm" and master.vm is None:
            raise ValueError(f"the master fingerprint of {master.subject!r} has no vm part")
        return differences(
            master, live, allowed, part=part, what=tuple(str(w) for w in params.get("what", []))
        )


def _register() -> None:
    register(CloneFingerprintCheck())


_register()
