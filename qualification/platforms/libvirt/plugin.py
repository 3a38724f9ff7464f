"""The libvirt/KVM platform plug-in (entry point ``libvirt`` in group ``vqual.platforms``).

Host variables: see :mod:`qualification.platforms.libvirt.endpoint`.

The hooks import the adapter (and so libvirt-python) when they run, never when the registry
loads this module, so a controller without libvirt-python still qualifies other platforms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError
from qualification.platforms.base import (
    HypervisorPlatform,
    VmFacts,
    observations_failed,
    secrets_of,
)
from qualification.platforms.data_files import with_guest_os_support
from qualification.platforms.libvirt.endpoint import SSH_VARS, LibvirtEndpoint, endpoint_from_vars
from qualification.platforms.registry import HostCleanup, PatchSetup, PlatformPlugin, RenderProblem

#: OQ methods that take the site's ``vqual_libvirt_oq`` (template, destination) as arguments.
_GUEST_OQ = ("oq_guest_migrate", "oq_backup_restore", "oq_guest_cycle", "oq_guest_failover")


class LibvirtPlugin(PlatformPlugin):
    name = "libvirt"
    probe = "libvirt"
    title = "libvirt/KVM"
    order = 10
    target_kinds = ("libvirt_hypervisor", "kvm_host")
    endpoint_vars = (
        "vqual_libvirt_uri",
        "vqual_libvirt_pool",
        "vqual_libvirt_oq",
        "vqual_libvirt_domain_type",
    )
    patch_vars = SSH_VARS

    def endpoint(self, host_vars: Mapping[str, Any]) -> LibvirtEndpoint:
        return endpoint_from_vars(host_vars)

    def connect(self, endpoint: Any, *, readonly: bool = False,
                state_dir: Path | None = None) -> HypervisorPlatform:
        from qualification.platforms.libvirt.adapter import LibvirtPlatform

        uri = endpoint.uri if isinstance(endpoint, LibvirtEndpoint) else str(endpoint)
        domain_type = endpoint.domain_type if isinstance(endpoint, LibvirtEndpoint) else None
        return LibvirtPlatform(uri, readonly=readonly, state_dir=state_dir,
                               domain_type=domain_type)

    def endpoint_secrets(self, endpoint: Any) -> tuple[str, ...]:
        return secrets_of(endpoint.uri if isinstance(endpoint, LibvirtEndpoint) else str(endpoint))

    # -- probe ---------------------------------------------------------------------------

    @staticmethod
    def prepare(endpoint: LibvirtEndpoint,
                requests: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The requests with the site's facts as arguments (the spec stays free of them)."""
        prepared: list[Mapping[str, Any]] = []
        for r in requests:
            args = dict(r.get("args") or {})
            if r.get("method") == "oq_lifecycle" and endpoint.pool and "pool" not in args:
                # The throwaway domain's disk goes into the site's pool (QEMU needs one for
                # snapshots of a running domain).
                r = {**r, "args": {**args, "pool": endpoint.pool}}
            elif r.get("method") in _GUEST_OQ and endpoint.guest_oq:
                r = {**r, "args": {**endpoint.guest_oq, **args}}
            prepared.append(r)
        return prepared

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
            endpoint = self.endpoint(host_vars)
        except BadInputError as exc:
            return observations_failed(requests, exc.one_line())
        from qualification.platforms.libvirt.observations import answer_requests

        # a guest OS support list is read from the approved data file, as an HCL is
        prepared, failed = with_guest_os_support(self.prepare(endpoint, requests), data_files)
        observations = answer_requests(
            endpoint.uri, prepared, run_id=run_id,
            check_mode=check_mode, domain_type=endpoint.domain_type,
        ) if prepared else {}
        observations.update(failed)
        return observations

    def run_probe(
        self,
        endpoint: LibvirtEndpoint,
        requests: Sequence[Mapping[str, Any]],
        *,
        run_id: str | None,
        check_mode: bool,
        state_dir: Path | None,
    ) -> tuple[dict[str, dict[str, Any]], bool]:
        """The ``libvirt_probe`` module's call: observations and whether anything changed.

        Raises:
            BadArgs: the run id is not a safe name, or a request has no key.
        """
        from qualification.platforms.libvirt.observations import probe

        return probe(endpoint.uri, requests, run_id=run_id, check_mode=check_mode,
                     state_dir=state_dir, domain_type=endpoint.domain_type)

    # -- the collection's platform modules -------------------------------------------------

    def module_secrets(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return secrets_of(str(params.get("uri") or ""))

    def connect_module(self, params: Mapping[str, Any], *, readonly: bool) -> HypervisorPlatform:
        if not params.get("uri"):
            raise BadInputError("uri (or VQUAL_LIBVIRT_URI) is required for libvirt")
        from qualification.platforms.libvirt.adapter import LibvirtPlatform

        return LibvirtPlatform(params["uri"], readonly=readonly, state_dir=params.get("state_dir"))

    def migration_state(
        self, platform: HypervisorPlatform, name: str, destination: str
    ) -> tuple[bool, VmFacts, str]:
        # The destination is another libvirt URI: a VM no longer on the source is looked up
        # there (it fails with "not found" if it is on neither side).
        if platform.vm_exists(name):
            return False, platform.vm(name), f"({destination})"
        from qualification.platforms.libvirt.adapter import LibvirtPlatform

        with LibvirtPlatform(destination, readonly=True) as dest:
            return True, dest.vm(name), f"({destination})"

    # -- rollout, cleanup ------------------------------------------------------------------

    def patch_setup(
        self,
        hostvars: Mapping[str, Mapping[str, Any]],
        cluster: str,
        platform_host: str | None,
        state_dir: Path | None,
    ) -> PatchSetup | None:
        if platform_host is not None:
            return None  # each KVM host is its own endpoint: there is no platform host
        if not any(v.get("vqual_cluster") == cluster and v.get("vqual_libvirt_uri")
                   for v in hostvars.values()):
            return None
        from qualification.platforms.libvirt.patch import KvmPatchExecutor, platform_factory

        executor = KvmPatchExecutor.from_inventory(hostvars, cluster)
        # The maintenance markers live in the state directory: run, resume and any observer
        # must read the same ones.
        return PatchSetup(platform_factory(hostvars, cluster, state_dir=state_dir), executor)

    def cleanup(
        self,
        hostvars: Mapping[str, Mapping[str, Any]],
        run_id: str,
        *,
        failures: Sequence[RenderProblem] = (),
    ) -> list[HostCleanup]:
        for failure in failures:
            if failure.variable == "vqual_libvirt_uri":
                # Nothing is touched when a target cannot be known.
                raise BadInputError(failure.one_line())
        from qualification.platforms.libvirt.cleanup import cleanup_endpoint, libvirt_targets

        return [cleanup_endpoint(uri, run_id, hosts)
                for uri, hosts in libvirt_targets(hostvars).items()]

    def create_clone(self, endpoint: str, master: str, name: str) -> dict[str, Any]:
        from qualification.platforms.libvirt.clones import create_libvirt_clone

        return create_libvirt_clone(endpoint, master, name).to_json()

    def remove_clone(self, endpoint: str, name: str) -> None:
        from qualification.platforms.libvirt.clones import remove_libvirt_clone

        remove_libvirt_clone(endpoint, name)

    def cleanup_state(self, state_dir: Path, run_id: str) -> HostCleanup | None:
        from qualification.platforms.libvirt.cleanup import cleanup_maintenance_markers

        return cleanup_maintenance_markers(state_dir, run_id)


PLUGIN = LibvirtPlugin()
