"""Check types that collect a fingerprint: ``host_fingerprint`` and ``vm_fingerprint``.

``host_fingerprint`` asks the target-side probe (``host_probe`` method ``fingerprint``, over
the target's connection) for the guest part: OS release, kernel, packages, services, users,
groups, key file digests, security settings, identity and template facts.
``vm_fingerprint`` asks the platform (libvirt ``domain`` or vSphere ``vm``, on the
controller) for the virtual hardware. The test's own result is a summary (or one field, with
``field``); the full fingerprint of the target, both parts merged, goes into the bundle as a
``fingerprint`` record (:func:`target_fingerprint`, called by the ``qualify`` action).
``template_fingerprint`` reads a template's disk image offline on the controller (probe
``template``, ``debugfs -c``; nothing is booted or mounted): its template facts
(``generalised``) and disk digest are the fingerprint's, since a booted guest is no longer
generalised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qualification.checks.base import Observation, ProbeRequest
from qualification.checks.fingerprint_model import (
    KINDS,
    Fingerprint,
    make_fingerprint,
    merge,
)
from qualification.checks.registry import register

HOST_FINGERPRINT = "host_fingerprint"
VM_FINGERPRINT = "vm_fingerprint"
TEMPLATE_FINGERPRINT = "template_fingerprint"
FINGERPRINT_CHECKS = (HOST_FINGERPRINT, VM_FINGERPRINT, TEMPLATE_FINGERPRINT)

#: The inventory variable naming a template's disk image, readable on the controller.
TEMPLATE_IMAGE_VAR = "vqual_template_image"

#: VM platforms and the controller-side probe method that returns a VM's facts.
VM_PROBES = {"libvirt": "domain", "vsphere": "vm"}
#: The inventory variable naming the VM on each platform (else the inventory name).
VM_NAME_VARS = {"libvirt": "vqual_libvirt_domain", "vsphere": "vqual_vsphere_vm"}

_HOST_ARGS = ("files", "services", "security_keys", "root", "max_files", "max_file_mib")


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _dig(value: Any, path: str) -> Any:
    """The value at a dotted path (``guest.packages.openssh-server``); None where absent.

    Each step takes the longest key that matches, so names containing dots work.
    """
    current = value
    rest = path
    while rest:
        if not isinstance(current, Mapping):
            return None
        key = next(
            (
                k
                for k in sorted(current, key=len, reverse=True)
                if rest == k or rest.startswith(k + ".")
            ),
            None,
        )
        if key is None:
            return None
        current = current[key]
        rest = rest[len(key) + 1 :]
    return current


def vm_part(facts: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``vm`` part and the platform's identity fields from a VM's facts
    (:class:`qualification.platforms.base.VmFacts` JSON)."""
    vm = {
        "vcpus": facts.get("vcpus"),
        "memory_mib": facts.get("memory_mib"),
        "firmware": facts.get("firmware"),
        "secure_boot": facts.get("secure_boot"),
        "machine": facts.get("machine") or facts.get("hardware_version"),
        "arch": facts.get("arch"),
        "disks": sorted(
            (
                {
                    "target": d.get("target"),
                    "device": d.get("device"),
                    "bus": d.get("bus"),
                    "format": d.get("driver_format"),
                    "capacity": d.get("capacity"),
                    "readonly": d.get("readonly"),
                }
                for d in facts.get("disks") or []
                if isinstance(d, Mapping)
            ),
            key=lambda d: str(d["target"]),
        ),
        "nics": [
            {"model": n.get("model"), "network": n.get("network"), "kind": n.get("kind")}
            for n in facts.get("nics") or []
            if isinstance(n, Mapping)
        ],
        "devices": sorted(str(d) for d in facts.get("devices") or []),
    }
    identity = {
        "name": facts.get("name"),
        "uuid": facts.get("uuid"),
        "macs": sorted(
            str(n.get("mac"))
            for n in facts.get("nics") or []
            if isinstance(n, Mapping) and n.get("mac")
        ),
    }
    return vm, identity


@dataclass
class HostFingerprintCheck:
    """The guest part of a fingerprint, observed on the target."""

    name: str = HOST_FINGERPRINT
    description: str = (
        "fingerprint of a guest or host: OS release, kernel, packages, services, users, key "
        "file digests, security settings, identity and template facts"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        allowed = set(_HOST_ARGS) | {"kind", "field"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            return f"{self.name}: unknown parameter(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        for name in ("files", "services", "security_keys"):
            if name in params and not _is_str_list(params[name]):
                return f"{self.name}: parameter {name} must be a list of strings"
        for pattern in params.get("files") or []:
            if not pattern.startswith("/"):
                return f"{self.name}: file pattern {pattern!r} must be absolute"
        for name in ("max_files", "max_file_mib"):
            value = params.get(name)
            if name in params and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                return f"{self.name}: parameter {name} must be a positive integer"
        if "root" in params and (
            not isinstance(params["root"], str) or not params["root"].startswith("/")
        ):
            return f"{self.name}: parameter root must be an absolute path"
        if "kind" in params and params["kind"] not in KINDS:
            return f"{self.name}: parameter kind must be one of {', '.join(KINDS)}"
        if "field" in params and (not isinstance(params["field"], str) or not params["field"]):
            return f"{self.name}: parameter field must be a dotted path"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest(
            "host", "fingerprint", {k: params[k] for k in _HOST_ARGS if k in params}
        )

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError("the probe returned no fingerprint")
        summary = self._summary(value)
        if "field" in params:
            return _dig({**value, "summary": summary}, str(params["field"]))
        return summary

    @staticmethod
    def _summary(value: Mapping[str, Any]) -> dict[str, int]:
        guest = value.get("guest") or {}
        return {
            "packages": len(guest.get("packages") or {}),
            "files": len(guest.get("files") or {}),
            "users": len(guest.get("users") or []),
            "services": len(guest.get("services") or {}),
            "security": len(guest.get("security") or {}),
        }


@dataclass
class VmFingerprintCheck:
    """The virtual hardware part of a fingerprint, observed on the platform."""

    name: str = VM_FINGERPRINT
    description: str = (
        "fingerprint of a VM's virtual hardware from the platform: vCPUs, memory, firmware, "
        "machine type, disks, NICs, devices"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        allowed = {"platform", "vm", "field"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            return f"{self.name}: unknown parameter(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        if params.get("platform", "libvirt") not in VM_PROBES:
            return f"{self.name}: parameter platform must be one of {', '.join(VM_PROBES)}"
        for name in ("vm", "field"):
            if name in params and (not isinstance(params[name], str) or not params[name]):
                return f"{self.name}: parameter {name} must be a non-empty string"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        # Without ``vm`` the qualify action names the VM from the inventory
        # (vqual_libvirt_domain / vqual_vsphere_vm, else the inventory name).
        platform = str(params.get("platform", "libvirt"))
        args = {"name": params["vm"]} if "vm" in params else {}
        return ProbeRequest(platform, VM_PROBES[platform], args)

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError("the platform returned no VM facts")
        vm, identity = vm_part(value)
        summary = {k: vm[k] for k in ("vcpus", "memory_mib", "firmware", "machine")} | {
            "disks": len([d for d in vm["disks"] if d["device"] == "disk"]),
            "nics": len(vm["nics"]),
            # VM-06/VM-07: removable media and passthrough devices, listed (none expected).
            "removable": sorted(
                str(d["target"]) for d in vm["disks"] if d["device"] in ("cdrom", "floppy")
            ),
            "passthrough": [d for d in vm["devices"] if d in ("hostdev", "parallel", "smartcard")],
        }
        if "field" in params:
            return _dig({"vm": vm, "identity": identity, "summary": summary}, str(params["field"]))
        return summary


@dataclass
class TemplateFingerprintCheck:
    """Template facts and the disk digest, read offline from the template's disk image."""

    name: str = TEMPLATE_FINGERPRINT
    description: str = (
        "fingerprint of a template's disk image read offline (debugfs, read-only): "
        "generalisation (machine id, SSH host keys), packages, files, disk digest"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        allowed = {"files", "max_files", "max_file_mib", "disk_digest", "image", "field"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            return f"{self.name}: unknown parameter(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        if "files" in params and not _is_str_list(params["files"]):
            return f"{self.name}: parameter files must be a list of strings"
        if "disk_digest" in params and not isinstance(params["disk_digest"], bool):
            return f"{self.name}: parameter disk_digest must be true or false"
        for name in ("image", "field"):
            if name in params and (not isinstance(params[name], str) or not params[name]):
                return f"{self.name}: parameter {name} must be a non-empty string"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        # Without ``image`` the qualify action takes it from vqual_template_image.
        keys = ("files", "max_files", "max_file_mib", "disk_digest", "image")
        return ProbeRequest("template", "fingerprint", {k: params[k] for k in keys if k in params})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError("the template image gave no fingerprint")
        summary = {
            **dict(value.get("generalised") or {}),
            "disk_sha256": value.get("disk_sha256"),
            "packages": len((value.get("guest") or {}).get("packages") or {}),
        }
        if "field" in params:
            return _dig({**value, "summary": summary}, str(params["field"]))
        return summary


def fill_template_images(
    requests: Sequence[Mapping[str, Any]], host_vars: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Name the image in ``template`` requests from ``vqual_template_image`` (a site fact)."""
    out = []
    for r in requests:
        args = dict(r.get("args") or {})
        if "image" not in args and host_vars.get(TEMPLATE_IMAGE_VAR):
            args["image"] = str(host_vars[TEMPLATE_IMAGE_VAR])
        out.append({**dict(r), "args": args})
    return out


def fill_vm_names(
    requests: Sequence[Mapping[str, Any]], probe: str, host_vars: Mapping[str, Any], target: str
) -> list[dict[str, Any]]:
    """Name the VM in ``vm_fingerprint`` (and ``vm_decommission``) requests that do not name
    one, from the inventory.

    The request key stays what the check made, so the observation still finds its tests.
    """
    method = VM_PROBES.get(probe)
    out = []
    for r in requests:
        args = dict(r.get("args") or {})
        if method and r.get("method") in (method, "decommission") and "name" not in args:
            args["name"] = str(host_vars.get(VM_NAME_VARS[probe]) or target)
            out.append({**dict(r), "args": args})
        else:
            out.append(dict(r))
    return out


def target_fingerprint(
    target: str,
    tests: Sequence[Mapping[str, Any]],
    observations: Mapping[str, Mapping[str, Any]],
    test_keys: Mapping[str, str],
) -> Fingerprint | None:
    """The fingerprint of ``target`` from its fingerprint tests' observations, both parts
    merged; None when it has no fingerprint test or none of them could observe."""
    parts: list[Fingerprint] = []
    seen: set[str] = set()
    template: Mapping[str, Any] | None = None
    for test in tests:
        check = str(test.get("check"))
        if check not in FINGERPRINT_CHECKS:
            continue
        key = test_keys.get(str(test["test_id"]))
        if key is None or key in seen:
            continue
        seen.add(key)
        raw = observations.get(key)
        obs = Observation.from_json(raw) if raw is not None else Observation(error="none")
        if obs.error or obs.not_executed or not isinstance(obs.value, Mapping):
            continue
        params = test.get("params") or {}
        if check == TEMPLATE_FINGERPRINT:
            template = obs.value
            continue
        if check == HOST_FINGERPRINT:
            parts.append(
                make_fingerprint(
                    target,
                    str(params.get("kind", "host")),
                    guest=obs.value.get("guest"),
                    identity=obs.value.get("identity"),
                    generalised=obs.value.get("generalised"),
                )
            )
        else:
            vm, identity = vm_part(obs.value)
            parts.append(make_fingerprint(target, "vm", vm=vm, identity=identity))
    if template is not None:
        # Read from the disk image: the template's guest part where no booted guest gave one.
        parts.append(
            make_fingerprint(
                target,
                "vm",
                guest=template.get("guest"),
                disk_digest=template.get("disk_sha256"),
            )
        )
    if not parts:
        return None
    # The platform's part first: its identity (name, uuid, MACs) is the VM's own.
    parts.sort(key=lambda p: p.vm is None)
    merged = merge(parts)
    if template is None:
        return merged
    # Template facts are the image's: a booted guest is never generalised.
    return make_fingerprint(
        target,
        merged.kind,
        vm=merged.vm,
        guest=merged.guest,
        identity=merged.identity,
        generalised=template.get("generalised") or {},
        disk_digest=template.get("disk_sha256"),
    )


def _register() -> None:
    register(HostFingerprintCheck())
    register(VmFingerprintCheck())
    register(TemplateFingerprintCheck())


_register()
