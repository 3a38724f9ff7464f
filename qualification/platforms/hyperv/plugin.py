"""The Hyper-V platform plug-in (entry point ``hyperv`` in group ``vqual.platforms``).

A target is a Hyper-V host reached over WinRM, named by ``vqual_winrm_*`` host variables
(:mod:`qualification.platforms.hyperv.endpoint`). The adapter only ever ran against a WinRM
stand-in (``docs/hyperv.md``), so the collection's modules take it read-only, and it has no
patch executor and no cleanup: its OQ changes nothing on the stand-in. The hooks import
pywinrm only when they run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, NotSupported
from qualification.platforms.base import HypervisorPlatform, observations_failed
from qualification.platforms.hyperv.endpoint import WINRM_VARS, Endpoint, endpoint_from_vars
from qualification.platforms.registry import HostCleanup, PlatformPlugin, RenderProblem
from qualification.platforms.vsphere.plugin import missing_login


class HypervPlugin(PlatformPlugin):
    name = "hyperv"
    probe = "hyperv"
    title = "Microsoft Hyper-V (WinRM)"
    order = 30
    target_kinds = ("hyperv_host",)
    endpoint_vars = WINRM_VARS
    secret_vars = ("vqual_winrm_password",)

    def endpoint(self, host_vars: Mapping[str, Any]) -> Endpoint:
        return endpoint_from_vars(host_vars)

    def connect(self, endpoint: Any, *, readonly: bool = False,
                state_dir: Path | None = None) -> HypervisorPlatform:
        from qualification.platforms.hyperv.adapter import HypervPlatform

        return HypervPlatform(endpoint)

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
        from qualification.platforms.hyperv.observations import probe

        return answer_with_data_files(
            requests, data_files,
            lambda prepared: probe(endpoint, prepared, check_mode=check_mode, run_id=run_id),
        )

    def connect_module(self, params: Mapping[str, Any], *, readonly: bool) -> HypervisorPlatform:
        if not readonly:
            # The adapter's operations never ran against Hyper-V (only a stand-in was
            # available), so only the read-only modules accept platform hyperv.
            raise BadInputError("platform hyperv supports only the read-only modules")
        missing_login(params, self.name)
        from qualification.platforms.hyperv.adapter import HypervPlatform

        scheme = params.get("winrm_scheme") or "https"
        validate = params.get("validate_certs")
        return HypervPlatform(
            Endpoint(
                host=params["hostname"],
                username=params["username"],
                password=params["password"],
                port=params.get("port") or (5986 if scheme == "https" else 5985),
                scheme=scheme,
                transport=params.get("winrm_transport") or "ntlm",
                validate_certs=True if validate is None else validate,
                ca_file=params.get("ca_file"),
            )
        )

    def cleanup(
        self,
        hostvars: Mapping[str, Mapping[str, Any]],
        run_id: str,
        *,
        failures: Sequence[RenderProblem] = (),
    ) -> list[HostCleanup]:
        raise NotSupported(
            "cleanup", "the Hyper-V adapter ran only against a stand-in that creates no VM"
        )


PLUGIN = HypervPlugin()
