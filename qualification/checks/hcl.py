"""Hardware compatibility lists: the HCL data file (``docs/hcl.md``) and the findings of hosts
against it, for the vSphere and Hyper-V HCL checks. Platforms resolve the data file; this
module only parses text handed to it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import yaml

from qualification import yamlio
from qualification.errors import BadInputError


def value_at(value: Any, path: str) -> Any:
    """The value at a dotted ``path``; None where a part is missing (not observed)."""
    current = value
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current



@dataclass(frozen=True)
class HclEntry:
    """One listed server: vendor and model, the BIOS/firmware versions listed for it, and the
    hypervisor product and versions it is certified for (``fnmatch`` patterns allowed in the
    versions, e.g. ``8.0.*``)."""

    vendor: str
    model: str
    firmware: tuple[str, ...]
    product: str
    versions: tuple[str, ...]
    reference: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["firmware"] = list(self.firmware)
        data["versions"] = list(self.versions)
        return data


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, (str, int, float)) for v in value)
    ):
        raise BadInputError(f"{where} must be a non-empty list of strings")
    return tuple(str(v) for v in value)


def load_hcl(text: str, where: str) -> list[HclEntry]:
    """Parse an HCL data file (``docs/hcl.md``).

    Raises:
        BadInputError: the file is not valid YAML or an entry misses a field; the message
            names the file and the entry.
    """
    try:
        doc = yamlio.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInputError(f"not valid YAML: {' '.join(str(exc).split())}", where=where) from None
    if not isinstance(doc, Mapping) or doc.get("kind") != "HardwareCompatibilityList":
        raise BadInputError("not an HCL (want kind: HardwareCompatibilityList)", where=where)
    if doc.get("apiVersion") != "vqual/v1":
        raise BadInputError(
            f"apiVersion must be vqual/v1, not {doc.get('apiVersion')!r}", where=where
        )
    entries = doc.get("entries")
    if not isinstance(entries, list) or not entries:
        raise BadInputError("entries must be a non-empty list", where=where)
    out = []
    for number, entry in enumerate(entries):
        at = f"entries[{number}]"
        if not isinstance(entry, Mapping):
            raise BadInputError(f"{at} must be a mapping", where=where)
        unknown = sorted(set(entry) - {"vendor", "model", "firmware", "hypervisor", "reference"})
        if unknown:
            raise BadInputError(
                f"{at}: unknown field(s) {', '.join(map(str, unknown))}", where=where
            )
        for key in ("vendor", "model"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise BadInputError(f"{at}.{key} must be a non-empty string", where=where)
        hv = entry.get("hypervisor")
        if not isinstance(hv, Mapping) or not isinstance(hv.get("product"), str):
            raise BadInputError(f"{at}.hypervisor must have product and versions", where=where)
        try:
            firmware = _strings(entry.get("firmware"), f"{at}.firmware")
            versions = _strings(hv.get("versions"), f"{at}.hypervisor.versions")
        except BadInputError as exc:
            raise BadInputError(exc.message, where=where) from None
        out.append(
            HclEntry(
                vendor=entry["vendor"],
                model=entry["model"],
                firmware=firmware,
                product=hv["product"],
                versions=versions,
                reference=str(entry.get("reference") or ""),
            )
        )
    return out


def hcl_findings(hosts: Sequence[Mapping[str, Any]], entries: Sequence[HclEntry]) -> list[str]:
    """A finding for every host whose server model, firmware or hypervisor version is not on
    the HCL; each names the host, what it has and what the HCL lists."""
    findings: list[str] = []
    for host in sorted(hosts, key=lambda h: str(h.get("name"))):
        name = str(host.get("name"))
        vendor = str(value_at(host, "hardware.vendor") or "")
        model = str(value_at(host, "hardware.model") or "")
        bios = str(value_at(host, "bios.version") or "")
        product = str(value_at(host, "product.name") or "")
        version = str(value_at(host, "product.version") or "")
        matches = [e for e in entries if e.vendor == vendor and e.model == model]
        if not matches:
            servers = sorted({f"{e.vendor} {e.model}" for e in entries})
            findings.append(
                f"{name}: server {vendor!r} {model!r} is not on the HCL (listed: {'; '.join(servers)})"
            )
            continue
        listed_fw = sorted({fw for e in matches for fw in e.firmware})
        if not any(fnmatch.fnmatchcase(bios, fw) for fw in listed_fw):
            findings.append(
                f"{name}: {vendor} {model} BIOS {bios!r} is not on the HCL (listed: {', '.join(listed_fw)})"
            )
        allowed = [e for e in matches if e.product == product]
        versions = sorted({v for e in allowed for v in e.versions})
        if not any(fnmatch.fnmatchcase(version, v) for v in versions):
            listed = f"{product} {', '.join(versions)}" if versions else f"no {product!r} version"
            findings.append(
                f"{name}: {vendor} {model} is not certified for {product} {version} (HCL lists {listed})"
            )
    return findings
