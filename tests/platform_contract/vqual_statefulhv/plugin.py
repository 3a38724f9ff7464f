"""The ``statefulhv`` platform plug-in: every hook of ``PlatformPlugin``.

A target is the stateful test hypervisor service, named by the host variables
``vqual_statefulhv_url`` and ``vqual_statefulhv_token`` (a secret); ``vqual_statefulhv_oq``
holds the site facts of its OQ scenario (``template``, ``maintenance_host``, ``destination``).
The service has no software to patch, so ``patch_setup`` refuses with the reason for a
cluster it manages; it keeps nothing in the state directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qualification.checks import Check
from qualification.errors import BadInputError, NotSupported, PlatformError
from qualification.platforms.base import (
    BadArgs,
    HypervisorPlatform,
    VmFacts,
    observations_failed,
    probe_observation,
)
from qualification.platforms.registry import HostCleanup, PatchSetup, PlatformPlugin, RenderProblem

from . import checks
from .adapter import PLATFORM, TOKEN_VAR, URL_VAR, Endpoint, StatefulHvPlatform, endpoint_from_vars
from .observations import TABLE, probe

OQ_VAR = "vqual_statefulhv_oq"
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _with_oq_settings(
    requests: Sequence[Mapping[str, Any]], settings: Any
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The OQ requests with the inventory's scenario settings as their arguments."""
    prepared: list[dict[str, Any]] = []
    failed: dict[str, dict[str, Any]] = {}
    for request in requests:
        method = str(request.get("method", ""))
        if method not in TABLE.oq:
            prepared.append(dict(request))
        elif not isinstance(settings, Mapping):
            failed[str(request.get("key", ""))] = probe_observation(
                method=method,
                error=f"{OQ_VAR} must be a mapping {{template, maintenance_host, destination}}",
            )
        else:
            prepared.append({**request, "args": {**settings, **(request.get("args") or {})}})
    return prepared, failed


class StatefulHvPlugin(PlatformPlugin):
    name = PLATFORM
    probe = PLATFORM
    title = "Stateful test hypervisor (HTTP)"
    target_kinds = ("statefulhv_host",)
    endpoint_vars = (URL_VAR, TOKEN_VAR)
    secret_vars = (TOKEN_VAR,)
    patch_vars = ()

    # -- endpoint ----------------------------------------------------------------------------

    def endpoint(self, host_vars: Mapping[str, Any]) -> Endpoint:
        return endpoint_from_vars(host_vars)

    def check_types(self) -> Sequence[Check]:
        return checks.CHECKS

    def endpoint_secrets(self, endpoint: Any) -> tuple[str, ...]:
        return tuple(s for s in (getattr(endpoint, "token", ""),) if s)

    def connect(self, endpoint: Any, *, readonly: bool = False,
                state_dir: Path | None = None) -> HypervisorPlatform:
        if not isinstance(endpoint, Endpoint):
            raise BadInputError(f"platform {self.name}: not an endpoint of this platform")
        return StatefulHvPlatform(endpoint, readonly=readonly)

    # -- probe -------------------------------------------------------------------------------

    def answer(
        self,
        requests: Sequence[Mapping[str, Any]],
        *,
        host_vars: Mapping[str, Any],
        run_id: str = "",
        check_mode: bool = False,
        data_files: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, dict[str, Any]]:
        try:
            endpoint = endpoint_from_vars(host_vars)
        except BadInputError as exc:
            return observations_failed(requests, exc.one_line())
        prepared, failed = _with_oq_settings(requests, host_vars.get(OQ_VAR))
        try:
            observations, _changed = probe(endpoint, prepared, run_id=run_id,
                                           check_mode=check_mode)
        except BadArgs as exc:
            return observations_failed(requests, str(exc))
        observations.update(failed)
        return observations

    def run_probe(
        self,
        endpoint: Any,
        requests: Sequence[Mapping[str, Any]],
        *,
        run_id: str | None,
        check_mode: bool,
        state_dir: Path | None,
    ) -> tuple[dict[str, dict[str, Any]], bool]:
        if run_id is not None and not _SAFE_RUN_ID.match(run_id):
            raise BadArgs(f"run id {run_id!r} is not safe in a VM name")
        return probe(endpoint, requests, run_id=run_id or "", check_mode=check_mode)

    # -- the collection's platform modules ---------------------------------------------------

    def module_secrets(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(s for s in (params.get("password"),) if isinstance(s, str) and s)

    def connect_module(self, params: Mapping[str, Any], *, readonly: bool) -> HypervisorPlatform:
        """Module options: ``hostname`` is the service's URL, ``password`` its token."""
        endpoint = endpoint_from_vars({URL_VAR: params.get("hostname"),
                                       TOKEN_VAR: params.get("password")})
        return StatefulHvPlatform(endpoint, readonly=readonly)

    def migration_state(
        self, platform: HypervisorPlatform, name: str, destination: str
    ) -> tuple[bool, VmFacts, str]:
        facts = platform.vm(name)  # destinations are host names, shown as they are
        return facts.host == destination, facts, destination

    # -- rollout, cleanup --------------------------------------------------------------------

    def _targets(self, hostvars: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
        """Inventory hosts by service URL (each service once)."""
        found: dict[str, list[str]] = {}
        for host, variables in sorted(hostvars.items()):
            if self.is_target(variables):
                found.setdefault(str(variables[URL_VAR]).rstrip("/"), []).append(host)
        return found

    def patch_setup(
        self,
        hostvars: Mapping[str, Mapping[str, Any]],
        cluster: str,
        platform_host: str | None,
        state_dir: Path | None,
    ) -> PatchSetup | None:
        ours = [h for h, v in hostvars.items() if self.is_target(v) and (
            platform_host == h or (platform_host is None and v.get("vqual_cluster") == cluster))]
        if not ours:
            return None
        raise NotSupported("patch", "the stateful test hypervisor has no software to patch "
                                    "(its API offers no update)")

    def cleanup(
        self,
        hostvars: Mapping[str, Mapping[str, Any]],
        run_id: str,
        *,
        failures: Sequence[RenderProblem] = (),
    ) -> list[HostCleanup]:
        """Remove this run's throwaway clones (``vqual-oq-<run id>``, ``-<n>``) everywhere."""
        for failure in failures:
            if failure.variable in self.endpoint_vars:
                raise BadInputError(failure.one_line())
        pattern = re.compile(rf"^vqual-oq-{re.escape(run_id)}(-[0-9]+)?$")
        results: list[HostCleanup] = []
        for url, hosts in self._targets(hostvars).items():
            result = HostCleanup(endpoint=url, hosts=hosts)
            results.append(result)
            try:
                platform = StatefulHvPlatform(endpoint_from_vars(hostvars[hosts[0]]))
                for vm in platform.vms():
                    if pattern.match(vm.name):
                        if vm.power_state != "stopped":
                            platform.power_off(vm.name)
                        platform.delete_vm(vm.name)
                        result.removed.append(vm.name)
            except (PlatformError, BadInputError) as exc:
                result.errors.append(exc.one_line())
        return results

    # -- clones of a Master-VM (vqual clone) ----------------------------------------------------

    def _no_clone_hook(self, hook: str) -> NotSupported:
        # The hook gets its endpoint as one string on a command line, which here would have
        # to carry the bearer token; the service's clones are made in its OQ scenario instead.
        return NotSupported(hook, "the endpoint would have to carry the service's bearer token "
                                  "on a command line")

    def create_clone(self, endpoint: str, master: str, name: str) -> dict[str, Any]:
        raise self._no_clone_hook("create_clone")

    def remove_clone(self, endpoint: str, name: str) -> None:
        raise self._no_clone_hook("remove_clone")

    def cleanup_state(self, state_dir: Path, run_id: str) -> HostCleanup | None:
        return None  # the platform keeps nothing in the state directory


PLUGIN = StatefulHvPlugin()
