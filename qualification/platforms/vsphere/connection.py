"""The vSphere session under the adapter: login, one-line faults, task waits, property
reads and the datacenter/cluster scope (``adapter.py`` adds facts and operations).
"""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self, TypeVar

from pyVim import connect as pyvim_connect
from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from qualification.errors import NotSupported, PlatformError
from qualification.platforms.base import (
    one_line,
)
from qualification.platforms.vsphere.endpoint import Endpoint

_T = TypeVar("_T")

# pyVmomi builds its types at run time; typed as Any so strict mypy accepts their constructors.
vim: Any = _vim
vmodl: Any = _vmodl

#: Host properties read in one PropertyCollector call (the probe's ``hosts`` method).
HOST_PROPERTIES = (
    "name",
    "parent",
    "hardware.systemInfo",
    "hardware.biosInfo",
    "hardware.cpuInfo",
    "hardware.cpuPkg",
    "hardware.memorySize",
    "summary.hardware",
    "config.product",
    "config.lockdownMode",
    "config.dateTimeInfo",
    "config.network",
    "config.service",
    "runtime.connectionState",
    "runtime.inMaintenanceMode",
    "overallStatus",
    "datastore",
    "network",
)

# Faults that mean "this endpoint cannot do that", as opposed to "it refused or failed".
_UNSUPPORTED_FAULTS = (
    vmodl.fault.NotSupported,
    vmodl.fault.MethodNotFound,
    vim.fault.NotSupportedHost,
)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _fault_text(exc: BaseException) -> str:
    """A pyVmomi fault's message (``msg``), else its type name: never the whole object dump."""
    msg = getattr(exc, "msg", None) or getattr(exc, "faultMessage", None)
    if isinstance(msg, str) and msg:
        return f"{type(exc).__name__}: {msg}"
    text = str(exc)
    if "\n" in text or not text:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _is_not_implemented(exc: BaseException) -> bool:
    # The simulator answers unimplemented methods with a plain SOAP fault naming NotImplemented.
    return "NotImplemented" in str(exc) or "not implemented" in str(exc).lower()


class VsphereConnection:
    """One logged-in pyVmomi session with vCenter or ESXi, scoped to a datacenter and a
    cluster (the plumbing :class:`~qualification.platforms.vsphere.adapter.VspherePlatform`
    stands on).

    Raises:
        PlatformError: the endpoint cannot be reached, its certificate is not trusted, or the
            login is refused (one line, no password).
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self._ep = endpoint
        self.endpoint = endpoint.url
        self._secrets = tuple(s for s in (endpoint.password,) if s)
        if endpoint.validate_certs:
            try:
                context = ssl.create_default_context(cafile=endpoint.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise PlatformError(
                    f"connect failed: cannot load CA file {endpoint.ca_file}: "
                    f"{self._clean(getattr(exc, 'strerror', None) or str(exc))}",
                    where=self.endpoint,
                ) from None
        else:
            context = ssl._create_unverified_context()  # explicit opt-out (lab, self-signed)
        smart_stub: Any = pyvim_connect.SmartStubAdapter
        self._stub: Any = None
        try:
            # Stub and login by hand (not SmartConnect), so a refused login can drop the
            # connection it opened instead of leaving a socket behind.
            self._stub = smart_stub(
                host=endpoint.host,
                port=endpoint.port,
                sslContext=context,
                httpConnectionTimeout=endpoint.timeout_s,
                connectionPoolTimeout=-1,
            )
            self.si: Any = vim.ServiceInstance("ServiceInstance", self._stub)
            self.content: Any = self.si.RetrieveContent()
            self.content.sessionManager.Login(endpoint.username, endpoint.password)
        except vim.fault.InvalidLogin:
            self._drop()
            raise PlatformError(
                f"login failed: user {endpoint.username!r} was refused (wrong user name or password)",
                where=self.endpoint,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            self._drop()
            raise PlatformError(
                f"connect failed: certificate not trusted ({self._clean(exc.verify_message or str(exc))}); "
                "set validate_certs false only for a lab",
                where=self.endpoint,
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise PlatformError(
                f"connect failed: {self._clean(str(exc) or type(exc).__name__)}",
                where=self.endpoint,
            ) from None
        except vmodl.MethodFault as exc:
            self._drop()
            raise PlatformError(
                f"connect failed: {self._clean(_fault_text(exc))}", where=self.endpoint
            ) from None
        except Exception as exc:  # noqa: BLE001 - pyVmomi raises bare Exception for an unknown endpoint type
            self._drop()
            raise PlatformError(
                f"connect failed: {self._clean(str(exc) or type(exc).__name__)}",
                where=self.endpoint,
            ) from None
        # Name -> managed object maps, checked on each use (see _by_name).
        self._host_objs: dict[str, Any] | None = None
        self._vm_objs: dict[str, Any] | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VspherePlatform({self.endpoint})"

    def _drop(self) -> None:
        if self._stub is not None:
            self._stub.DropConnections()

    def close(self) -> None:
        try:
            self.content.sessionManager.Logout()
        except Exception:  # noqa: BLE001, S110 - logging out of a dead session: nothing left to release
            pass
        self._drop()

    def _clean(self, text: str) -> str:
        return one_line(text, self._secrets)

    def _call(
        self, operation: str, target: str, fn: Callable[..., _T], *args: Any, **kw: Any
    ) -> _T:
        """Run one API call; its fault becomes a one-line PlatformError or NotSupported."""
        try:
            return fn(*args, **kw)
        except _UNSUPPORTED_FAULTS as exc:
            raise NotSupported(
                f"{operation} {target}".strip(), self._clean(_fault_text(exc)), where=self.endpoint
            ) from None
        except vmodl.MethodFault as exc:
            raise PlatformError(
                f"{operation} {target} failed: {self._clean(_fault_text(exc))}".replace("  ", " "),
                where=self.endpoint,
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise PlatformError(
                f"{operation} {target} failed: connection lost ({self._clean(str(exc))})",
                where=self.endpoint,
            ) from None
        except Exception as exc:  # noqa: BLE001 - SOAP faults pyVmomi cannot map (the simulator's NotImplemented)
            if _is_not_implemented(exc):
                raise NotSupported(
                    f"{operation} {target}".strip(),
                    "the endpoint does not implement it",
                    where=self.endpoint,
                ) from None
            raise PlatformError(
                f"{operation} {target} failed: {self._clean(_fault_text(exc))}", where=self.endpoint
            ) from None

    def _wait(self, operation: str, target: str, task: Any) -> Any:
        """Wait for a task; its error becomes a PlatformError/NotSupported naming the operation."""
        deadline = time.monotonic() + max(self._ep.timeout_s, 60.0)
        while True:
            state, err, result = self._task_state(operation, target, task)
            if state == "success":
                return result
            if state == "error":
                if isinstance(err, _UNSUPPORTED_FAULTS) or _is_not_implemented(err):
                    raise NotSupported(
                        f"{operation} {target}".strip(),
                        self._clean(_fault_text(err)),
                        where=self.endpoint,
                    )
                raise PlatformError(
                    f"{operation} {target} failed: {self._clean(_fault_text(err))}",
                    where=self.endpoint,
                )
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"{operation} {target} failed: task did not finish in time", where=self.endpoint
                )
            time.sleep(0.05)

    def _task_state(self, operation: str, target: str, task: Any) -> tuple[str, Any, Any]:
        """(state, error, result) of a task, read as properties ``info.state``,
        ``info.error`` and ``info.result`` rather than the whole ``info``: the simulator's
        snapshot tasks carry a snapshot as ``info.entity``, which pyVmomi refuses to read."""
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=task, skip=False)],
            propSet=[
                vmodl.query.PropertyCollector.PropertySpec(
                    type=vim.Task, pathSet=["info.state", "info.error", "info.result"]
                )
            ],
        )
        collector = self.content.propertyCollector
        found = self._call(
            "read task of",
            f"{operation} {target}",
            collector.RetrievePropertiesEx,
            [spec],
            vmodl.query.PropertyCollector.RetrieveOptions(),
        )
        props: dict[str, Any] = {}
        for obj in getattr(found, "objects", None) or []:
            props.update({p.name: p.val for p in obj.propSet or []})
        return str(props.get("info.state", "")), props.get("info.error"), props.get("info.result")

    def _retrieve(
        self, vim_type: Any, paths: Sequence[str], root: Any = None, *more_types: Any
    ) -> list[tuple[Any, dict[str, Any]]]:
        """``[(object, {path: value})]`` for every object of a type under ``root``, one round trip."""
        content = self.content
        view = self._call(
            "read",
            "inventory",
            content.viewManager.CreateContainerView,
            root or content.rootFolder,
            [vim_type, *more_types],
            True,
        )
        try:
            traversal = vmodl.query.PropertyCollector.TraversalSpec(
                name="view", path="view", skip=False, type=vim.view.ContainerView
            )
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[
                    vmodl.query.PropertyCollector.ObjectSpec(
                        obj=view, skip=True, selectSet=[traversal]
                    )
                ],
                propSet=[
                    vmodl.query.PropertyCollector.PropertySpec(type=t, pathSet=list(paths))
                    for t in (vim_type, *more_types)
                ],
            )
            options = vmodl.query.PropertyCollector.RetrieveOptions()
            out: list[tuple[Any, dict[str, Any]]] = []
            result = self._call(
                "read",
                "properties",
                content.propertyCollector.RetrievePropertiesEx,
                [spec],
                options,
            )
            while result is not None:
                for obj in result.objects or []:
                    out.append((obj.obj, {p.name: p.val for p in obj.propSet or []}))
                if not result.token:
                    break
                result = self._call(
                    "read",
                    "properties",
                    content.propertyCollector.ContinueRetrievePropertiesEx,
                    result.token,
                )
            return out
        finally:
            try:
                view.Destroy()
            except Exception:  # noqa: BLE001, S110 - a view of a dead session needs no clean-up
                pass

    def _object_props(
        self, obj: Any, vim_type: Any, paths: Sequence[str]
    ) -> dict[str, Any] | None:
        """``{path: value}`` of one object, one round trip; None if the answer holds none."""
        collector = vmodl.query.PropertyCollector
        spec = collector.FilterSpec(
            objectSet=[collector.ObjectSpec(obj=obj, skip=False)],
            propSet=[collector.PropertySpec(type=vim_type, pathSet=list(paths))],
        )
        collect = self.content.propertyCollector.RetrievePropertiesEx

        def ask() -> Any:
            try:
                return collect([spec], collector.RetrieveOptions())
            except vmodl.fault.ManagedObjectNotFound:
                return None  # the object is gone (removed by another client)

        found = self._call("read", "properties", ask)
        objects = getattr(found, "objects", None) or []
        if not objects:
            return None
        return {p.name: p.val for p in objects[0].propSet or []}

    def _host_names(self) -> dict[str, str]:
        """Host object id -> name, in one round trip (a listing of VMs names their hosts)."""
        return {
            str(obj._moId): str(props.get("name"))
            for obj, props in self._retrieve(vim.HostSystem, ["name"])
        }

    # -- scope: datacenter and cluster ------------------------------------------------------

    def _scope_root(self, *, cluster: bool = True) -> Any:
        """The cluster (or datacenter) the endpoint was told to work in, else the root folder.

        Datastores and networks live in the datacenter's folders, not under the cluster, so
        their callers ask for the datacenter only (``cluster=False``).
        """
        root = self.content.rootFolder
        if self._ep.datacenter:
            found = [
                dc
                for dc, props in self._retrieve(vim.Datacenter, ["name"])
                if props.get("name") == self._ep.datacenter
            ]
            if not found:
                raise PlatformError(
                    f"datacenter {self._ep.datacenter!r} not found", where=self.endpoint
                )
            root = found[0]
        if cluster and self._ep.cluster:
            found = [
                c
                for c, props in self._retrieve(vim.ClusterComputeResource, ["name"], root)
                if props.get("name") == self._ep.cluster
            ]
            if not found:
                raise PlatformError(f"cluster {self._ep.cluster!r} not found", where=self.endpoint)
            root = found[0]
        return root

    def _names(self, *vim_types: Any) -> dict[str, str]:
        """``{managed object id: name}`` of every object of these types, in one read."""
        rows = self._retrieve(vim_types[0], ["name"], None, *vim_types[1:])
        return {obj._moId: str(props.get("name")) for obj, props in rows}

    def _hosts_raw(self) -> list[tuple[Any, dict[str, Any]]]:
        """Hosts in scope with their properties; references to the parent, datastores and
        networks are resolved to names here, three reads in all, instead of one read per
        reference."""
        rows = self._retrieve(vim.HostSystem, HOST_PROPERTIES, self._scope_root())
        self._host_objs = {str(props.get("name")): obj for obj, props in rows}
        if rows:
            # Managed object ids are unique across types, so one map serves all three.
            names = self._names(vim.ComputeResource, vim.Datastore, vim.Network)
            parents = stores = networks = names
            for _obj, props in rows:
                parent = props.get("parent")
                props["parent.name"] = parents.get(getattr(parent, "_moId", ""), "")
                props["parent.is_cluster"] = isinstance(parent, vim.ClusterComputeResource)
                props["datastore"] = [
                    stores.get(d._moId, d._moId) for d in props.get("datastore") or []
                ]
                props["network"] = [
                    networks.get(n._moId, n._moId) for n in props.get("network") or []
                ]
        return sorted(rows, key=lambda row: str(row[1].get("name")))

    # -- lookups by name ---------------------------------------------------------------------

    def _by_name(
        self,
        kind: str,
        name: str,
        cached: Mapping[str, Any] | None,
        relist: Callable[[], Mapping[str, Any]],
        vim_type: Any,
        paths: Sequence[str],
    ) -> tuple[Any, dict[str, Any]]:
        """The object named ``name`` and its properties ``paths`` (``name`` among them): one
        round trip when the map knows it, not a listing of every object's name (O(VMs) per
        lookup, seconds at 1,000 VMs). The map is checked on use: an object that is gone or
        now has another name (another client renamed or removed it) sends the lookup to one
        fresh listing, so a stale entry is never taken for the object."""
        refs, fresh = (cached, False) if cached is not None else (relist(), True)
        while True:
            obj = refs.get(name)
            if obj is not None:
                props = self._object_props(obj, vim_type, paths)
                if props is not None and str(props.get("name")) == name:
                    return obj, props
            if fresh:
                raise PlatformError(f"{kind} {name!r} not found", where=self.endpoint)
            refs, fresh = relist(), True

    def _list_vms(self) -> dict[str, Any]:
        """Name -> object of every VM, one round trip; becomes the VM lookup map."""
        found: dict[str, Any] = {}
        for obj, props in self._retrieve(vim.VirtualMachine, ["name"]):
            found.setdefault(str(props.get("name")), obj)  # the first of a name, as before
        self._vm_objs = found
        return found

    def _list_hosts(self) -> dict[str, Any]:
        """Name -> object of every host in scope; becomes the host lookup map."""
        rows = self._retrieve(vim.HostSystem, ["name"], self._scope_root())
        self._host_objs = {str(props.get("name")): obj for obj, props in rows}
        return self._host_objs

    def _host_obj(self, name: str | None) -> Any:
        if name is None:
            objs = self._list_hosts()
            if len(objs) != 1:
                raise PlatformError(
                    f"name a host: the endpoint manages {len(objs)} ({', '.join(sorted(objs))})",
                    where=self.endpoint,
                )
            return next(iter(objs.values()))
        return self._by_name(
            "host", name, self._host_objs, self._list_hosts, vim.HostSystem, ["name"]
        )[0]
