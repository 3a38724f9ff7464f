"""Guest OS support (URS-HV-01): which guest operating systems each hypervisor version
supports, as a data file like the HCL (docs/hcl.md, "Guest OS support list"), and the
findings of a hypervisor's VMs against it. Each VM's guest OS comes from its platform: the
libosinfo id in a libvirt domain's metadata, a vSphere guest id, or the guest's os-release;
all three become one ``(os, version)`` identity here. Platforms resolve the data file and
read the VMs; this module only parses and decides.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import yaml

from qualification import yamlio
from qualification.checks.base import ProbeRequest, unknown_params
from qualification.checks.registry import register
from qualification.errors import BadInputError

KIND = "GuestOsSupportList"


@dataclass(frozen=True)
class GuestSupport:
    """One hypervisor product and its versions (``fnmatch`` patterns), and the guest OS
    versions it supports: ``os`` id -> version patterns."""

    product: str
    versions: tuple[str, ...]
    guests: tuple[tuple[str, tuple[str, ...]], ...]
    reference: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "versions": list(self.versions),
            "guests": [{"os": os, "versions": list(v)} for os, v in self.guests],
            "reference": self.reference,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GuestSupport:
        return cls(
            product=str(data["product"]),
            versions=tuple(str(v) for v in data["versions"]),
            guests=tuple((str(g["os"]), tuple(str(v) for v in g["versions"]))
                         for g in data["guests"]),
            reference=str(data.get("reference") or ""),
        )


def _patterns(value: Any, where: str, path: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise BadInputError(f"{path} must be a non-empty list of versions (quote them)", where=where)
    return tuple(str(v) for v in value)


def load_guest_os_support(text: str, where: str) -> list[GuestSupport]:
    """Parse a guest OS support list.

    Raises:
        BadInputError: not YAML, not this kind, or an entry misses a field; the message
            names the file and the entry.
    """
    try:
        doc = yamlio.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInputError(f"not valid YAML: {' '.join(str(exc).split())}", where=where) from None
    if not isinstance(doc, Mapping) or doc.get("kind") != KIND:
        raise BadInputError(f"not a guest OS support list (want kind: {KIND})", where=where)
    if doc.get("apiVersion") != "vqual/v1":
        raise BadInputError(f"apiVersion must be vqual/v1, not {doc.get('apiVersion')!r}", where=where)
    entries = doc.get("entries")
    if not isinstance(entries, list) or not entries:
        raise BadInputError("entries must be a non-empty list", where=where)
    out = []
    for number, entry in enumerate(entries):
        at = f"entries[{number}]"
        if not isinstance(entry, Mapping) or set(entry) - {"hypervisor", "guests", "reference"}:
            raise BadInputError(f"{at} must be a mapping of hypervisor, guests, reference", where=where)
        hv = entry.get("hypervisor")
        if not isinstance(hv, Mapping) or not isinstance(hv.get("product"), str):
            raise BadInputError(f"{at}.hypervisor must have product and versions", where=where)
        guests = entry.get("guests")
        if not isinstance(guests, list) or not guests:
            raise BadInputError(f"{at}.guests must be a non-empty list", where=where)
        listed = []
        for g, guest in enumerate(guests):
            if not isinstance(guest, Mapping) or not isinstance(guest.get("os"), str):
                raise BadInputError(f"{at}.guests[{g}] must have os and versions", where=where)
            listed.append((guest["os"], _patterns(guest.get("versions"), where, f"{at}.guests[{g}].versions")))
        out.append(GuestSupport(
            product=hv["product"],
            versions=_patterns(hv.get("versions"), where, f"{at}.hypervisor.versions"),
            guests=tuple(listed),
            reference=str(entry.get("reference") or ""),
        ))
    return out


# -- identities: (os, version) from what each platform records ----------------------------------

#: libosinfo's Windows ids (``http://microsoft.com/win/<short>``) -> (os, version).
_WINDOWS_OSINFO = {
    "2k16": ("windows-server", "2016"), "2k19": ("windows-server", "2019"),
    "2k22": ("windows-server", "2022"), "2k25": ("windows-server", "2025"),
    "10": ("windows", "10"), "11": ("windows", "11"),
}


def from_osinfo(os_id: str) -> tuple[str, str | None] | None:
    """``http://debian.org/debian/12`` -> ``("debian", "12")``; None if it is not a
    libosinfo id."""
    parsed = urlparse(os_id)
    parts = [p for p in parsed.path.split("/") if p]
    if not parsed.netloc or len(parts) < 2:
        return None
    if parsed.netloc == "microsoft.com" and parts[0] == "win":
        return _WINDOWS_OSINFO.get(parts[1], ("windows", parts[1]))
    return parts[-2], parts[-1]


_VSPHERE_OS = {"oracleLinux": "ol", "rockylinux": "rocky", "almalinux": "almalinux"}
#: vSphere guest ids (``VirtualMachineGuestOsIdentifier``) -> (os, version); the patterns
#: cover the families whose ids carry the version, the table the ones that do not.
_VSPHERE_PATTERNS = (
    (re.compile(r"^(debian|rhel|centos|sles|oracleLinux|rockylinux|almalinux)(\d+)(_64)?Guest$"),
     lambda m: (_VSPHERE_OS.get(m.group(1), m.group(1)), m.group(2))),
    (re.compile(r"^windows(\d{4})srv(Next)?_64Guest$"),
     lambda m: ("windows-server", "2022" if m.group(2) and m.group(1) == "2019" else
                "2025" if m.group(2) else m.group(1))),
)
_VSPHERE_IDS: dict[str, tuple[str, str | None]] = {
    "windows9Server64Guest": ("windows-server", "2016"),
    "windows9_64Guest": ("windows", "10"),
    "windows11_64Guest": ("windows", "11"),
    "ubuntu64Guest": ("ubuntu", None),
    "otherLinux64Guest": ("other-linux", None),
    "otherGuest": ("other", None),
    "otherGuest64": ("other", None),
}


def from_vsphere_guest_id(guest_id: str) -> tuple[str, str | None] | None:
    """``debian12_64Guest`` -> ``("debian", "12")``; None for an id this table does not know."""
    for pattern, build in _VSPHERE_PATTERNS:
        match = pattern.match(guest_id)
        if match:
            return build(match)
    return _VSPHERE_IDS.get(guest_id)


def from_os_release(fields: Mapping[str, str]) -> tuple[str, str | None] | None:
    """``ID`` and ``VERSION_ID`` of a guest's os-release."""
    os_id = fields.get("ID")
    return (os_id, fields.get("VERSION_ID") or None) if os_id else None


# -- findings ------------------------------------------------------------------------------------


def guest_os_findings(
    product: str, version: str, guests: Sequence[Mapping[str, Any]], entries: Sequence[GuestSupport]
) -> list[str]:
    """A finding for every VM whose guest OS is unknown or not supported by this hypervisor
    product and version; each names the VM, its OS and what the list supports.

    ``guests``: ``[{name, os, version, source}]`` (os None: not identified).
    """
    listed = [e for e in entries if e.product == product
              and any(fnmatch.fnmatchcase(version, v) for v in e.versions)]
    supported: dict[str, set[str]] = {}
    for entry in listed:
        for listed_os, patterns in entry.guests:
            supported.setdefault(listed_os, set()).update(patterns)
    shown = "; ".join(f"{os} {', '.join(sorted(v))}" for os, v in sorted(supported.items()))
    findings = []
    for guest in sorted(guests, key=lambda g: str(g.get("name"))):
        name, os_id, os_version = guest.get("name"), guest.get("os"), guest.get("version")
        if not os_id:
            findings.append(f"{name}: guest OS not identified ({guest.get('source') or 'no source'})")
        elif not listed:
            findings.append(f"{name}: {os_id} {os_version}: {product} {version} is not on the "
                            "guest OS support list")
        elif os_version is None or not any(
            fnmatch.fnmatchcase(str(os_version), p) for p in supported.get(str(os_id), ())
        ):
            findings.append(f"{name}: {os_id} {os_version or '(version unknown)'} is not "
                            f"supported by {product} {version} (listed: {shown})")
    return findings


@dataclass
class LibvirtGuestOs:
    """Each domain's guest OS (libosinfo metadata) is supported by the hypervisor (HV-01)."""

    name: str = "libvirt_guest_os"
    description: str = (
        "each domain's guest OS (libosinfo id in its metadata) is on the guest OS support list "
        "(a data file of the spec, docs/hcl.md) for the hypervisor's product and version"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if not isinstance(params.get("support"), str) or not params["support"]:
            return f"{self.name}: parameter support (the name of a data file of the spec) is required"
        return unknown_params(self.name, params, {"support"})

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("libvirt", "guest_os", {"support": params["support"]})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        entries = [GuestSupport.from_json(e) for e in value["entries"]]
        hv = value["hypervisor"]
        return guest_os_findings(str(hv["product"]), str(hv["version"]), value["guests"], entries)


register(LibvirtGuestOs())


def vsphere_guest_os_findings(value: Mapping[str, Any]) -> list[str]:
    """Findings of the ``vsphere`` probe's ``guest_os`` observation: each VM judged against
    the product and version of the host it is registered on (a vCenter's hosts may run
    different ESXi versions), or a finding where that host reported none."""
    entries = [GuestSupport.from_json(e) for e in value["entries"]]
    hypervisors: Mapping[str, Mapping[str, Any]] = value["hypervisors"]
    by_hypervisor: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    findings: list[str] = []
    for guest in value["guests"]:
        hv = hypervisors.get(str(guest.get("host")))
        if not hv or not hv.get("product") or not hv.get("version"):
            findings.append(f"{guest.get('name')}: its host {guest.get('host')} reports no "
                            "product and version")
            continue
        by_hypervisor.setdefault((str(hv["product"]), str(hv["version"])), []).append(guest)
    for (product, version), guests in sorted(by_hypervisor.items()):
        findings += guest_os_findings(product, version, guests, entries)
    return sorted(findings)


@dataclass
class VsphereGuestOs:
    """Each VM's guest OS (its vSphere guest id) is supported by its ESXi host (HV-01)."""

    name: str = "vsphere_guest_os"
    description: str = (
        "each VM's guest OS (its vSphere guest id, config.guestId) is on the guest OS support "
        "list (a data file of the spec, docs/hcl.md) for the product and version of the ESXi "
        "host it is registered on"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if not isinstance(params.get("support"), str) or not params["support"]:
            return f"{self.name}: parameter support (the name of a data file of the spec) is required"
        return unknown_params(self.name, params, {"support"})

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "guest_os", {"support": params["support"]})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return vsphere_guest_os_findings(value)


register(VsphereGuestOs())
