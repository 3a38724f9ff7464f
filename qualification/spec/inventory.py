"""The inventory as vqual reads it: target kinds, applications, clusters, risk floors, site values.

Built from plain data (Ansible's ``hostvars`` and ``groups``, or any equivalent), never from
Ansible itself. Site facts live here, not in the spec; the snapshot is recorded in the bundle
with secrets removed and its digest goes into ``run.start``.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qualification.errors import BadInputError
from qualification.evidence.canonical import canonical_bytes
from qualification.platforms import registry
from qualification.spec.model import RISK_LEVELS, target_kinds

#: Keys whose values never reach evidence (matched anywhere in the key, any case). The target-side
#: probe (the collection's plugins/module_utils/host_observations.py) cannot import the core and
#: writes the same pattern; tests/unit/plugins/module_utils/test_host_observations.py holds the
#: two equal.
SECRET_KEY = re.compile(r"pass|secret|token|private|credential|api_?key", re.IGNORECASE)
REDACTED = "<redacted>"


def is_secret_key(key: str) -> bool:
    """Whether a variable's value never reaches evidence: its name looks secret, or a platform
    plug-in declares it secret."""
    return bool(SECRET_KEY.search(key)) or key in registry.secret_vars()

#: The connection variables recorded per host; every other ``ansible_*`` variable is left out.
CONNECTION_VARS = ("ansible_host", "ansible_port", "ansible_user", "ansible_connection")

VQUAL_PREFIX = "vqual_"

# Ansible's implicit groups say nothing about a host.
_IMPLICIT_GROUPS = frozenset({"all", "ungrouped"})


@dataclass(frozen=True)
class Application:
    """An application placed on a host (or on a VM named by ``vm``), with its GxP risk.

    Attributes:
        name: the application's name.
        risk: ``high``, ``medium`` or ``low``.
        validated: whether it is a validated (GxP) application.
        vm: the VM it runs on, when declared on a hypervisor host; if that VM is itself an
            inventory host, the application counts for it too.
        host: the inventory host whose ``vqual_applications`` lists it.
    """

    name: str
    risk: str
    validated: bool
    vm: str | None
    host: str


@dataclass(frozen=True)
class HostInfo:
    """One inventory host, validated. ``vqual`` holds every ``vqual_*`` variable (JSON data)."""

    name: str
    groups: tuple[str, ...]
    kinds: tuple[str, ...]
    applications: tuple[Application, ...]
    cluster: str | None
    risk_floor: str | None
    expected: dict[str, Any] = field(hash=False)
    connection: dict[str, Any] = field(hash=False)
    vqual: dict[str, Any] = field(hash=False)


def _fail(host: str, variable: str, message: str) -> BadInputError:
    return BadInputError(f"inventory host {host!r}: {variable}: {message}")


def _json_data(value: Any, host: str, variable: str) -> Any:
    """``value`` as plain JSON data, so the snapshot and its digest are well defined."""
    # Ansible hands over subclasses of the plain types (tagged or unsafe values); record the
    # plain value, which the canonical encoder accepts and which compares the same.
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(host, variable, f"non-finite number {value!r}")
        return float(value)
    if isinstance(value, (datetime.date, datetime.time)):
        # YAML reads an unquoted date as a date; record it as the ISO text it was written as
        return value.isoformat()
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(host, variable, f"key {key!r} is not a string")
            out[str(key)] = _json_data(item, host, f"{variable}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_json_data(item, host, f"{variable}[{i}]") for i, item in enumerate(value)]
    raise _fail(host, variable, f"value of type {type(value).__name__} cannot be recorded")


def _string_list(value: Any, host: str, variable: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _fail(host, variable, f"must be a list of strings, not {value!r}")
    return list(value)


def _risk_level(value: Any, host: str, variable: str) -> str:
    if value not in RISK_LEVELS:
        raise _fail(host, variable, f"{value!r} is not one of {', '.join(RISK_LEVELS)}")
    return str(value)


def _applications(value: Any, host: str) -> tuple[Application, ...]:
    variable = "vqual_applications"
    if not isinstance(value, list):
        raise _fail(host, variable, f"must be a list of mappings, not {value!r}")
    apps: list[Application] = []
    for index, item in enumerate(value):
        where = f"{variable}[{index}]"
        if not isinstance(item, dict):
            raise _fail(host, where, f"must be a mapping with name and risk, not {item!r}")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _fail(host, f"{where}.name", "a non-empty name is required")
        risk = _risk_level(item.get("risk"), host, f"{where}.risk")
        validated = item.get("validated", True)
        if not isinstance(validated, bool):
            raise _fail(host, f"{where}.validated", f"must be true or false, not {validated!r}")
        vm = item.get("vm")
        if vm is not None and (not isinstance(vm, str) or not vm):
            raise _fail(host, f"{where}.vm", f"must be a VM name, not {vm!r}")
        apps.append(Application(name=name, risk=risk, validated=validated, vm=vm, host=host))
    return tuple(apps)


def _host(name: str, variables: Mapping[str, Any], groups: tuple[str, ...]) -> HostInfo:
    vqual = {
        str(key): _json_data(value, name, str(key))
        for key, value in variables.items()
        if isinstance(key, str) and key.startswith(VQUAL_PREFIX)
    }
    connection = {
        key: _json_data(variables[key], name, key) for key in CONNECTION_VARS if key in variables
    }
    kinds = _string_list(vqual.get("vqual_target_kinds", []), name, "vqual_target_kinds")
    known = target_kinds()
    for kind in kinds:
        if kind not in known:
            raise _fail(
                name,
                "vqual_target_kinds",
                f"unknown kind {kind!r} (known: {', '.join(known)})",
            )
    cluster = vqual.get("vqual_cluster")
    if cluster is not None and (not isinstance(cluster, str) or not cluster):
        raise _fail(name, "vqual_cluster", f"must be a cluster name, not {cluster!r}")
    floor = vqual.get("vqual_risk")
    expected = vqual.get("vqual_expected", {})
    if not isinstance(expected, dict):
        raise _fail(name, "vqual_expected", f"must be a mapping, not {expected!r}")
    return HostInfo(
        name=name,
        groups=groups,
        kinds=tuple(dict.fromkeys(kinds)),
        applications=_applications(vqual.get("vqual_applications", []), name),
        cluster=cluster,
        risk_floor=None if floor is None else _risk_level(floor, name, "vqual_risk"),
        expected=expected,
        connection=connection,
        vqual=vqual,
    )


#: Integers beyond this magnitude are recorded as decimal strings (docs/formats.md).
MAX_SAFE_INTEGER = 2**53 - 1


def _recordable(value: Any, redact: bool) -> Any:
    """A copy of ``value`` as recorded: secret keys redacted (if asked), big integers as text."""
    if isinstance(value, dict):
        return {
            key: REDACTED if redact and is_secret_key(key) else _recordable(item, redact)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_recordable(item, redact) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        return str(value)
    return value


@dataclass(frozen=True)
class InventoryModel:
    """The validated inventory: hosts by name (sorted), with clusters derived from them."""

    hosts: Mapping[str, HostInfo] = field(hash=False)

    @classmethod
    def from_hostvars(
        cls,
        hostvars: Mapping[str, Mapping[str, Any]],
        groups: Mapping[str, Sequence[str]],
    ) -> InventoryModel:
        """Build the model from Ansible-shaped data.

        Args:
            hostvars: host name -> its variables (as Ansible's ``hostvars``).
            groups: group name -> member host names (as Ansible's ``groups``).

        Raises:
            BadInputError: a vqual variable is malformed, or a group names a host that has
                no variables; the message names the host and the variable.
        """
        # str(): Ansible's names are str subclasses; records want plain strings
        variables = {str(name): values for name, values in hostvars.items()}
        membership: dict[str, list[str]] = {name: [] for name in variables}
        for group_name, members in groups.items():
            group = str(group_name)
            if isinstance(members, str):
                raise BadInputError(f"inventory group {group!r}: members must be a list of hosts")
            for member_name in members:
                member = str(member_name)
                if member not in membership:
                    raise BadInputError(
                        f"inventory group {group!r}: host {member!r} has no host variables"
                    )
                if group not in _IMPLICIT_GROUPS and group not in membership[member]:
                    membership[member].append(group)
        hosts = {
            name: _host(name, variables[name], tuple(sorted(membership[name])))
            for name in sorted(variables)
        }
        return cls(hosts=hosts)

    def host(self, name: str) -> HostInfo:
        """The host called ``name``.

        Raises:
            BadInputError: no such host in the inventory.
        """
        try:
            return self.hosts[name]
        except KeyError:
            raise BadInputError(f"unknown host {name!r}: not in the inventory") from None

    def cluster_members(self, cluster: str) -> tuple[str, ...]:
        """Names of the hosts whose ``vqual_cluster`` is ``cluster``, sorted."""
        return tuple(name for name, info in self.hosts.items() if info.cluster == cluster)

    def clusters(self) -> dict[str, tuple[str, ...]]:
        """Every cluster with its member hosts."""
        names = sorted({info.cluster for info in self.hosts.values() if info.cluster})
        return {name: self.cluster_members(name) for name in names}

    def applications_on_vm(self, vm: str) -> tuple[Application, ...]:
        """Applications any host declares with ``vm: <vm>``."""
        return tuple(
            app for info in self.hosts.values() for app in info.applications if app.vm == vm
        )

    def snapshot(self, redact: bool = True) -> dict[str, Any]:
        """The inventory as recorded in evidence: per host its groups, connection variables
        and all ``vqual_*`` variables.

        Args:
            redact: replace the value of every key that looks secret (pass, secret, token,
                private, credential, api_key) with ``<redacted>``. Ansible's own password
                and key-file variables are never included either way.

        Integers beyond 2**53-1 in magnitude are given as decimal strings, as in records.
        """
        hosts: dict[str, Any] = {}
        for name, info in self.hosts.items():
            entry: dict[str, Any] = {"groups": list(info.groups)}
            entry.update(info.connection)
            entry.update(info.vqual)
            hosts[name] = _recordable(entry, redact)
        return {"hosts": hosts}

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the redacted snapshot."""
        return hashlib.sha256(canonical_bytes(self.snapshot(redact=True))).hexdigest()
