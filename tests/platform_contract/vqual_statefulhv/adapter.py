"""The stateful test hypervisor as a :class:`HypervisorPlatform`, over its HTTP API (urllib).

The service keeps hosts and VMs; it has no clusters, datastores, networks, snapshots, events,
placement rules nor VM creation, so those operations raise ``NotSupported`` with the reason
(a check of them is ``not-executed``). Every request carries the bearer token, which never
appears in a fact or a message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qualification.errors import BadInputError, NotSupported, PlatformError
from qualification.platforms.base import (
    RUNNING,
    STOPPED,
    UNKNOWN,
    ClusterFacts,
    CpuFacts,
    DatastoreFacts,
    EventFacts,
    HostFacts,
    NetworkFacts,
    NicFacts,
    Placement,
    PlatformAbout,
    SnapshotFacts,
    VmConfig,
    VmFacts,
    one_line,
)

PLATFORM = "statefulhv"
URL_VAR = "vqual_statefulhv_url"
TOKEN_VAR = "vqual_statefulhv_token"
#: How long one HTTP request may take; the service answers from memory.
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Endpoint:
    """The service's base URL and its bearer token (a secret: ``repr`` leaves it out)."""

    url: str
    token: str

    def __repr__(self) -> str:
        return f"Endpoint(url={self.url!r}, token='***')"


def endpoint_from_vars(host_vars: Mapping[str, Any]) -> Endpoint:
    """The endpoint a target's host variables name.

    Raises:
        BadInputError: a variable is missing or malformed (named; the token's value never is).
    """
    url = host_vars.get(URL_VAR)
    if not isinstance(url, str) or not url:
        raise BadInputError(f"host variable {URL_VAR} is required (http://HOST:PORT)")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise BadInputError(f"host variable {URL_VAR} must be http(s)://HOST[:PORT], not {url!r}")
    token = host_vars.get(TOKEN_VAR)
    if not isinstance(token, str) or not token:
        raise BadInputError(f"host variable {TOKEN_VAR} is required (the service's bearer token)")
    return Endpoint(url.rstrip("/"), token)


def _power(state: Any) -> str:
    return state if state in (RUNNING, STOPPED) else UNKNOWN


class StatefulHvPlatform:
    """The adapter: one object per session; every call is one HTTP request."""

    platform = PLATFORM

    def __init__(self, endpoint: Endpoint, *, readonly: bool = False) -> None:
        self.endpoint = endpoint
        self.readonly = readonly
        self.secrets: tuple[str, ...] = (endpoint.token,)

    # -- HTTP --------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        if self.readonly and method != "GET":
            raise PlatformError(f"{method} {path} refused: the connection is read-only")
        data = None if body is None else json.dumps(dict(body)).encode()
        request = urllib.request.Request(
            self.endpoint.url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.endpoint.token}",
                     "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                reason = str(json.loads(exc.read()).get("error"))
            except (ValueError, AttributeError):
                reason = str(exc.reason)
            raise PlatformError(one_line(f"{method} {path}: HTTP {exc.code}: {reason}",
                                         self.secrets), where=self.endpoint.url) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            why = getattr(exc, "reason", None) or exc
            raise PlatformError(one_line(f"{method} {path}: cannot reach the service: {why}",
                                         self.secrets), where=self.endpoint.url) from None

    # -- reads -------------------------------------------------------------------------------

    def about(self) -> PlatformAbout:
        doc = self._call("GET", "/about")
        return PlatformAbout(platform=PLATFORM, product=str(doc["product"]),
                             version=str(doc["version"]), api_version=str(doc.get("build", "")),
                             endpoint=self.endpoint.url)

    def _host_facts(self, doc: Mapping[str, Any]) -> HostFacts:
        cpus = int(doc.get("cpus", 0))
        cpu = CpuFacts(model=str(doc.get("cpu_model", "unknown")), arch="x86_64", vendor=None,
                       count=cpus, mhz=0, sockets=1, cores_per_socket=cpus, threads_per_core=1)
        return HostFacts(name=str(doc["name"]), uuid=None, cpu=cpu,
                         memory_mib=int(doc.get("memory_mib", 0)), numa_nodes=1,
                         in_maintenance=bool(doc.get("in_maintenance")),
                         cluster=doc.get("cluster"),
                         software={"connected": str(bool(doc.get("connected"))).lower()})

    def hosts(self) -> list[HostFacts]:
        return [self._host_facts(h) for h in self._call("GET", "/hosts")]

    def host(self, name: str | None = None) -> HostFacts:
        hosts = self.hosts()
        if name is None:
            if len(hosts) != 1:
                raise PlatformError(f"the service has {len(hosts)} hosts: name one",
                                    where=self.endpoint.url)
            return hosts[0]
        for host in hosts:
            if host.name == name:
                return host
        raise PlatformError(f"no host named {name}", where=self.endpoint.url)

    def _vm_facts(self, doc: Mapping[str, Any]) -> VmFacts:
        mac = doc.get("mac")
        return VmFacts(name=str(doc["name"]), uuid=str(doc.get("uuid", "")),
                       host=str(doc["host"]), power_state=_power(doc.get("power_state")),
                       persistent=True, autostart=False, vcpus=int(doc.get("vcpus", 1)),
                       memory_mib=int(doc.get("memory_mib", 0)),
                       max_memory_mib=int(doc.get("memory_mib", 0)),
                       nics=(NicFacts(mac=str(mac), network=None, model=None, kind="bridge"),)
                       if mac else ())

    def vms(self) -> list[VmFacts]:
        return [self._vm_facts(v) for v in self._call("GET", "/vms")]

    def vm(self, name: str) -> VmFacts:
        for vm in self.vms():
            if vm.name == name:
                return vm
        raise PlatformError(f"no VM named {name}", where=self.endpoint.url)

    def vm_exists(self, name: str) -> bool:
        return any(vm.name == name for vm in self.vms())

    # -- operations the service has ----------------------------------------------------------

    def _quoted(self, name: str) -> str:
        return urllib.parse.quote(name, safe="")

    def power_on(self, name: str) -> VmFacts:
        return self._vm_facts(self._call("POST", f"/vms/{self._quoted(name)}/power",
                                         {"state": RUNNING}))

    def power_off(self, name: str, *, graceful: bool = False, timeout_s: float = 60.0) -> VmFacts:
        if graceful:
            raise NotSupported("graceful power off", "the service has no guest to shut down")
        return self._vm_facts(self._call("POST", f"/vms/{self._quoted(name)}/power",
                                         {"state": STOPPED}))

    def clone_vm(self, source: str, name: str) -> VmFacts:
        return self._vm_facts(self._call("POST", f"/vms/{self._quoted(source)}/clone",
                                         {"name": name}))

    def delete_vm(self, name: str, *, delete_storage: bool = False) -> None:
        self._call("DELETE", f"/vms/{self._quoted(name)}")

    def migrate_vm(self, name: str, destination: str, *, live: bool = True) -> VmFacts:
        return self._vm_facts(self._call("POST", f"/vms/{self._quoted(name)}/migrate",
                                         {"destination": destination, "live": live}))

    def enter_maintenance(self, host: str | None = None) -> HostFacts:
        name = host or self.host().name
        return self._host_facts(self._call("POST", f"/hosts/{self._quoted(name)}/maintenance",
                                           {"enabled": True}))

    def exit_maintenance(self, host: str | None = None) -> HostFacts:
        name = host or self.host().name
        return self._host_facts(self._call("POST", f"/hosts/{self._quoted(name)}/maintenance",
                                           {"enabled": False}))

    # -- what the service does not have -------------------------------------------------------

    def _none(self, operation: str, what: str) -> NotSupported:
        return NotSupported(operation, f"the stateful test hypervisor has no {what}")

    def clusters(self) -> list[ClusterFacts]:
        raise self._none("clusters", "clusters")

    def datastores(self) -> list[DatastoreFacts]:
        raise self._none("datastores", "datastores")

    def networks(self) -> list[NetworkFacts]:
        raise self._none("networks", "virtual networks")

    def create_vm(self, config: VmConfig) -> VmFacts:
        raise self._none("create VM", "VM definitions: it only clones existing VMs")

    def snapshots(self, vm: str) -> list[SnapshotFacts]:
        raise self._none("snapshots", "snapshots")

    def snapshot_create(self, vm: str, name: str, *, description: str = "") -> SnapshotFacts:
        raise self._none("snapshot create", "snapshots")

    def snapshot_revert(self, vm: str, name: str) -> VmFacts:
        raise self._none("snapshot revert", "snapshots")

    def snapshot_delete(self, vm: str, name: str) -> None:
        raise self._none("snapshot delete", "snapshots")

    def placement(self, vm: str) -> Placement:
        raise self._none("placement", "placement rules")

    def set_placement(self, vm: str, placement: Placement) -> VmFacts:
        raise self._none("placement", "placement rules")

    def events(self, since: datetime | None = None) -> list[EventFacts]:
        raise self._none("events", "event log")

    def close(self) -> None:
        return None  # one request per call: nothing stays open
