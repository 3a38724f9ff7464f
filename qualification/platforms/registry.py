"""The registry of platform plug-ins: a platform is one plug-in, found through an entry point.

A plug-in is a :class:`PlatformPlugin` object registered under the entry point group
``vqual.platforms`` (``pyproject.toml``: ``[project.entry-points."vqual.platforms"]``, or an
``entry_points.txt`` in any ``*.dist-info`` directory on ``sys.path``). Execution, the
collection's platform modules, rollout, cleanup, drift and the spec ask this registry; none of
them names a platform. The entry point's name is the platform's name; its object is the
plug-in (an instance, or a class the registry instantiates)::

    [vqual.platforms]
    libvirt = qualification.platforms.libvirt.plugin:PLUGIN

Loading a plug-in must not import its vendor library (libvirt-python, pyVmomi, pywinrm): a
missing library then affects only the hooks that connect. A hook a plug-in does not support
raises :class:`~qualification.errors.NotSupported` with the reason, which its caller records
as ``not-executed``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import BadInputError, NotSupported
from .base import HypervisorPlatform, VmFacts, probe_observation
from .patching import PatchExecutor

if TYPE_CHECKING:
    from qualification.checks.base import Check

ENTRY_POINT_GROUP = "vqual.platforms"

#: Target kinds that belong to no platform (``applies_to``, ``vqual_target_kinds``): a Linux
#: host's own observations and the VM roles. Each plug-in adds its own kinds.
HOST_KINDS: tuple[str, ...] = ("linux_host",)
VM_KINDS: tuple[str, ...] = ("master_vm", "clone")


class UnknownPlatform(BadInputError):
    """A platform or probe name no registered plug-in answers to (one line, names the known)."""


class RenderProblem(Protocol):
    """A host variable Ansible could not render (``execution.inventory.RenderFailure``)."""

    @property
    def host(self) -> str: ...

    @property
    def variable(self) -> str: ...

    def one_line(self) -> str: ...


@dataclass
class HostCleanup:
    """What cleanup found and did on one endpoint (password-free).

    Attributes:
        not_executed: why nothing was cleaned (a platform without a cleanup hook).
    """

    endpoint: str
    hosts: list[str]
    removed: list[str] = field(default_factory=list)
    files_left: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_executed: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.not_executed is None:
            del data["not_executed"]
        return data


@dataclass(frozen=True)
class PatchSetup:
    """How a rolling patch reaches a cluster of this platform.

    Attributes:
        factory: opens the cluster as one platform, each time it is called.
        executor: the patch executor.
        qualify_limit: the inventory host ``vqual qualify`` requalifies through (vSphere: the
            vCenter's), None: each host's own name.
    """

    factory: Callable[[], HypervisorPlatform]
    executor: PatchExecutor
    qualify_limit: str | None = None


class PlatformPlugin:
    """One hypervisor platform: every hook the product calls, with "not supported" defaults.

    Attributes:
        name: the platform's name (``libvirt``); the entry point's name.
        probe: the controller-side probe its checks request (``ProbeRequest.probe``).
        title: how docs and messages name it.
        target_kinds: the target kinds it adds (``applies_to``, ``vqual_target_kinds``).
        endpoint_vars: the host variables its endpoint is read from; the first marks a host
            as a target of this platform.
        secret_vars: those of them that are secrets (never rendered into evidence or logs).
        patch_vars: other host variables (beside ``vqual_*``) its patch executor reads, such
            as SSH connection variables.
        order: where it comes among the plug-ins (target kinds, cleanup), then its name.
    """

    name: str = ""
    probe: str = ""
    title: str = ""
    target_kinds: tuple[str, ...] = ()
    endpoint_vars: tuple[str, ...] = ()
    secret_vars: tuple[str, ...] = ()
    patch_vars: tuple[str, ...] = ()
    order: int = 100

    def _unsupported(self, hook: str) -> NotSupported:
        return NotSupported(hook, f"platform {self.name} has no {hook} hook")

    # -- endpoint ------------------------------------------------------------------------

    def is_target(self, host_vars: Mapping[str, Any]) -> bool:
        """Whether a host's variables name an endpoint of this platform."""
        marker = self.endpoint_vars[0] if self.endpoint_vars else None
        return bool(marker and host_vars.get(marker) not in (None, ""))

    def endpoint(self, host_vars: Mapping[str, Any]) -> Any:
        """The endpoint a host's variables name.

        Raises:
            BadInputError: a variable is missing or malformed (named, never a secret's value).
        """
        raise self._unsupported("endpoint")

    def connect(self, endpoint: Any, *, readonly: bool = False,
                state_dir: Path | None = None) -> HypervisorPlatform:
        """The adapter on ``endpoint`` (as :meth:`endpoint` returns it)."""
        raise self._unsupported("connect")

    def check_types(self) -> Sequence[Check]:
        """Check types of this platform's probe that the check library does not ship; they
        join it when the registry loads (the built-in platforms' checks ship in
        ``qualification/checks/``)."""
        return ()

    def endpoint_secrets(self, endpoint: Any) -> tuple[str, ...]:
        """The secrets in an endpoint (passwords), to scrub from whatever is shown."""
        return ()

    # -- probe ---------------------------------------------------------------------------

    def answer(
        self,
        requests: Sequence[Mapping[str, Any]],
        *,
        host_vars: Mapping[str, Any],
        run_id: str = "",
        check_mode: bool = False,
        data_files: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, dict[str, Any]]:
        """Observations for the probe's ``requests`` on the target ``host_vars`` name; never
        raises. ``data_files`` are the plan's ``[{name, path, digest}]``. Without this hook
        every request is ``not-executed`` with the reason."""
        reason = self._unsupported("probe").one_line()
        return {
            str(r.get("key", "")): probe_observation(
                method=str(r.get("method", "")), not_executed=reason
            )
            for r in requests
        }

    def run_probe(
        self,
        endpoint: Any,
        requests: Sequence[Mapping[str, Any]],
        *,
        run_id: str | None,
        check_mode: bool,
        state_dir: Path | None,
    ) -> tuple[dict[str, dict[str, Any]], bool]:
        """The probe as a module runs it: ``(observations, changed)`` for ``requests`` on
        ``endpoint``.

        Raises:
            BadArgs: the call is malformed as a whole (run id, a request without key).
        """
        raise self._unsupported("probe module")

    # -- the collection's platform modules -------------------------------------------------

    def module_secrets(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """Values of the module's options to mask in everything Ansible shows."""
        return ()

    def connect_module(self, params: Mapping[str, Any], *, readonly: bool) -> HypervisorPlatform:
        """The adapter for a platform module's connection options (doc fragment ``platform``).

        Raises:
            BadInputError: an option the platform needs is missing (named).
            NotSupported: the platform does not take this kind of module.
        """
        raise self._unsupported("module connection")

    def migration_state(
        self, platform: HypervisorPlatform, name: str, destination: str
    ) -> tuple[bool, VmFacts, str]:
        """For ``vm_migrate``: whether VM ``name`` is at ``destination`` already, its facts,
        and how the destination is shown in the diff."""
        facts = platform.vm(name)
        return facts.host == destination, facts, destination

    # -- rollout, cleanup, clones ------------------------------------------------------------

    def patch_setup(
        self,
        hostvars: Mapping[str, Mapping[str, Any]],
        cluster: str,
        platform_host: str | None,
        state_dir: Path | None,
    ) -> PatchSetup | None:
        """How ``vqual patch`` reaches ``cluster``; None: no endpoint of this platform
        manages it (or ``platform_host`` is not one of its endpoints).

        Raises:
            BadInputError: the inventory names this platform for the cluster, badly.
        """
        return None

    def cleanup(
        self,
        hostvars: Mapping[str, Mapping[str, Any]],
        run_id: str,
        *,
        failures: Sequence[RenderProblem] = (),
    ) -> list[HostCleanup]:
        """Remove ``run_id``'s leftovers (throwaway VMs) on every endpoint of this platform in
        ``hostvars`` (rendered); never raises for a platform failure.

        Raises:
            NotSupported: the platform has no cleanup (its callers record the reason).
        """
        raise self._unsupported("cleanup")

    def create_clone(self, endpoint: str, master: str, name: str) -> dict[str, Any]:
        """Make VM ``name`` as a clone of the stopped Master-VM ``master`` on the endpoint
        ``endpoint`` names (libvirt: its URI); what was made, as JSON."""
        raise self._unsupported("create_clone")

    def remove_clone(self, endpoint: str, name: str) -> None:
        """Remove a clone :meth:`create_clone` made, with the storage it made for it."""
        raise self._unsupported("remove_clone")

    def cleanup_state(self, state_dir: Path, run_id: str) -> HostCleanup | None:
        """Remove what ``run_id`` left in the state directory (None: nothing there)."""
        return None


# -- discovery ------------------------------------------------------------------------------


def _load(ep: EntryPoint) -> PlatformPlugin:
    loaded = ep.load()
    plugin = loaded() if isinstance(loaded, type) else loaded
    if not isinstance(plugin, PlatformPlugin):
        raise BadInputError(
            f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}) is not a PlatformPlugin"
        )
    if plugin.name != ep.name:
        raise BadInputError(
            f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}) registers a plug-in "
            f"named {plugin.name!r}"
        )
    return plugin


def _add_checks(plugin: PlatformPlugin) -> None:
    own = plugin.check_types()
    if not own:
        return
    # Imported only for a plug-in that brings check types: a probe module's process (the
    # libvirt_probe module) starts without the check library.
    from qualification import checks

    known = checks.known_check_types()
    for check in own:
        if check.name in known:
            existing = type(checks.get_check(check.name))
            if (existing.__module__, existing.__qualname__) == (
                type(check).__module__, type(check).__qualname__
            ):
                continue  # the same plug-in loaded again (after clear_cache)
        checks.register(check)


@functools.cache
def _registered() -> dict[str, PlatformPlugin]:
    # First registration of a name wins, as importlib.metadata orders distributions by sys.path.
    found: dict[str, PlatformPlugin] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name not in found:
            found[ep.name] = _load(ep)
    for plugin in found.values():
        _add_checks(plugin)
    return found


def plugins() -> tuple[PlatformPlugin, ...]:
    """Every registered plug-in, by ``order``, then name."""
    return tuple(sorted(_registered().values(), key=lambda p: (p.order, p.name)))


def names() -> tuple[str, ...]:
    """The registered platforms' names, sorted."""
    return tuple(_registered())


def _unknown(what: str, name: str, known: Iterable[str]) -> UnknownPlatform:
    listed = ", ".join(sorted(known)) or f"none: no entry point in group {ENTRY_POINT_GROUP}"
    return UnknownPlatform(f"unknown {what} {name!r} (known: {listed})")


def get(name: str) -> PlatformPlugin:
    """The plug-in named ``name``.

    Raises:
        UnknownPlatform: no plug-in has that name (the message lists the known ones).
    """
    found = _registered().get(name)
    if found is None:
        raise _unknown("platform", name, _registered())
    return found


def for_probe(probe: str) -> PlatformPlugin:
    """The plug-in whose controller-side probe is ``probe``.

    Raises:
        UnknownPlatform: no plug-in has that probe.
    """
    for plugin in plugins():
        if (plugin.probe or plugin.name) == probe:
            return plugin
    raise _unknown("platform probe", probe, [p.probe or p.name for p in plugins()])


def target_kinds() -> tuple[str, ...]:
    """Every target kind: a Linux host's, each platform's (by platform name), the VM roles."""
    own = [k for p in plugins() for k in p.target_kinds]
    return tuple(dict.fromkeys([*HOST_KINDS, *own, *VM_KINDS]))


def secret_vars() -> frozenset[str]:
    """Every plug-in's secret host variables (redacted wherever host variables are recorded)."""
    return frozenset(v for p in plugins() for v in p.secret_vars)


def clear_cache() -> None:
    """Forget what was discovered (a test that changes ``sys.path`` calls this)."""
    _registered.cache_clear()
