"""The vSphere platform plug-in (entry point ``vsphere`` in group ``vqual.platforms``).

A target is a vCenter (its hosts are those of ``vqual_vsphere_cluster``, else all) or a
standalone ESXi, named by ``vqual_vsphere_*`` host variables
(:mod:`qualification.platforms.vsphere.endpoint`); ``vqual_vsphere_oq`` holds the template
and hosts of the OQ protocol. The hooks import pyVmomi only when they run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError
from qualification.platforms.base import HypervisorPlatform, observations_failed, probe_observation
from qualification.platforms.registry import HostCleanup, PatchSetup, PlatformPlugin, RenderProblem
from qualification.platforms.vsphere.endpoint import VSPHERE_VARS, Endpoint, endpoint_from_vars

#: The patch executors a vSphere target may name (``vqual_patch_executor``).
PATCH_EXECUTORS = ("vsphere-standin",)


def _module_endpoint(params: Mapping[str, Any]) -> Endpoint:
    validate = params.get("validate_certs")
    return Endpoint(
        host=params["hostname"],
        username=params["username"],
        password=params["password"],
        port=params.get("port") or 443,
        validate_certs=True if validate is None else validate,
        ca_file=params.get("ca_file"),
        datacenter=params.get("datacenter"),
        cluster=params.get("cluster"),
    )


def missing_login(params: Mapping[str, Any], platform: str) -> None:
    """Raise BadInputError naming the login options a module call lacks."""
    missing = [name for name in ("hostname", "username", "password") if not params.get(name)]
    if missing:
        raise BadInputError(
            f"{', '.join(missing)} required for {platform} "
            "(or VMWARE_HOST, VMWARE_USER, VMWARE_PASSWORD)"
        )


class VspherePlugin(PlatformPlugin):
    name = "vsphere"
    probe = "vsphere"
    title = "VMware vSphere (vCenter, ESXi)"
    order = 20
    target_kinds = ("vcenter", "esxi")
    endpoint_vars = VSPHERE_VARS
    secret_vars = ("vqual_vsphere_password",)

    def endpoint(self, host_vars: Mapping[str, Any]) -> Endpoint:
        return endpoint_from_vars(host_vars)

    def connect(self, endpoint: Any, *, readonly: bool = False,
                state_dir: Path | None = None) -> HypervisorPlatform:
        from qualification.platforms.vsphere.adapter import VspherePlatform

        return VspherePlatform(endpoint)

    def endpoint_secrets(self, endpoint: Any) -> tuple[str, ...]:
        return tuple(s for s in (getattr(endpoint, "password", ""),) if s)

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
        # The HCL parser is the check library's: loaded only when a probe runs.
        from qualification.platforms.data_files import answer_with_data_files
        from qualification.platforms.vsphere.observations import probe

        oq_settings = host_vars.get("vqual_vsphere_oq")
        return answer_with_data_files(
            requests, data_files,
            lambda prepared: probe(endpoint, prepared, check_mode=check_mode, run_id=run_id),
            prepare=None if oq_settings is None
            else lambda prepared, failed: self._with_oq_settings(prepared, failed, oq_settings),
        )

    @staticmethod
    def _with_oq_settings(
        requests: list[dict[str, Any]], failed: dict[str, dict[str, Any]], settings: Any
    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        # The template and hosts of the OQ are site facts (inventory), not protocol.
        prepared: list[dict[str, Any]] = []
        for request in requests:
            if request.get("method") != "oq_protocol":
                prepared.append(request)
            elif not isinstance(settings, Mapping):
                failed[str(request.get("key", ""))] = probe_observation(
                    method="oq_protocol",
                    error="vqual_vsphere_oq must be a mapping "
                    "{template, destination, maintenance_host}",
                )
            else:
                prepared.append({**request, "args": {**settings, **(request.get("args") or {})}})
        return prepared, failed

    # -- the collection's platform modules -------------------------------------------------

    def connect_module(self, params: Mapping[str, Any], *, readonly: bool) -> HypervisorPlatform:
        missing_login(params, self.name)
        from qualification.platforms.vsphere.adapter import VspherePlatform

        return VspherePlatform(_module_endpoint(params))

    # -- rollout, cleanup ------------------------------------------------------------------

    def patch_setup(
        self,
        hostvars: Mapping[str, Mapping[str, Any]],
        cluster: str,
        platform_host: str | None,
        state_dir: Path | None,
    ) -> PatchSetup | None:
        """The inventory host with ``vqual_vsphere_host`` whose ``vqual_vsphere_cluster`` is the
        cluster (or ``platform_host``); the executor is the simulator stand-in unless
        ``vqual_patch_executor`` names another."""
        candidates = [
            h for h, v in sorted(hostvars.items())
            if v.get("vqual_vsphere_host") and (platform_host == h or (
                platform_host is None and str(v.get("vqual_vsphere_cluster", "")) == cluster))
        ]
        if len(candidates) > 1:
            raise BadInputError(f"several vSphere endpoints manage cluster {cluster} "
                                f"({', '.join(candidates)}): name one with --platform-host")
        if not candidates:
            return None
        chosen = hostvars[candidates[0]]
        kind = str(chosen.get("vqual_patch_executor", "vsphere-standin"))
        if kind not in PATCH_EXECUTORS:
            raise BadInputError(f"inventory host {candidates[0]}: vqual_patch_executor {kind!r} "
                                f"is not known ({', '.join(PATCH_EXECUTORS)})")
        from qualification.platforms.vsphere.adapter import VspherePlatform
        from qualification.platforms.vsphere.patch import VsphereStandInExecutor

        endpoint = endpoint_from_vars(chosen)

        def connect() -> HypervisorPlatform:
            return VspherePlatform(endpoint)

        # vSphere hosts are not inventory hosts: the vCenter's probe qualifies them all.
        return PatchSetup(connect, VsphereStandInExecutor(connect), candidates[0])

    def cleanup(
        self,
        hostvars: Mapping[str, Mapping[str, Any]],
        run_id: str,
        *,
        failures: Sequence[RenderProblem] = (),
    ) -> list[HostCleanup]:
        from qualification.platforms.vsphere.cleanup import vsphere_cleanups

        return vsphere_cleanups(hostvars, run_id, failures)


PLUGIN = VspherePlugin()
