"""Hyper-V adapter: :class:`HypervPlatform` implements :class:`HypervisorPlatform` over WinRM
(pywinrm) by running Windows PowerShell cmdlets on a Hyper-V host.

Every read is one cmdlet piped to ``ConvertTo-Json -Depth 3 -Compress`` in a Remote Shell
opened once per adapter, so a probe's reads share one shell. Enumerations arrive as numbers
(``ConvertTo-Json`` without ``-EnumsAsStrings``); the values mapped here are those of the
documented enums (``docs/hyperv.md`` cites them).

Transport security: HTTPS with certificate verification is the default (system trust store or
``ca_file``); a lab opts out explicitly with ``scheme="http"`` or ``validate_certs=False``. The
password is held only by the WinRM client: every message is scrubbed of it and no facts carry
it.

No real Hyper-V host was available while this adapter was written and tested: it was run
against the lab's WinRM stand-in (``vqual_lab.winrm_standin``), which answers the read
cmdlets from canned, documented output shapes and knows no state-changing cmdlet. An operation
the stand-in does not know raises :class:`~qualification.errors.NotSupported` ("no real Hyper-V
available; the stand-in does not change state"), so OQ steps there are ``not-executed``.
"""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self

from qualification.checks.vocabulary import READ_CMDLETS
from qualification.errors import BadInputError, NotSupported, PlatformError
from qualification.platforms.base import (
    CRASHED,
    PAUSED,
    RUNNING,
    STOPPED,
    STOPPING,
    SUSPENDED,
    UNKNOWN,
    ClusterFacts,
    CpuFacts,
    DatastoreFacts,
    EventFacts,
    HostFacts,
    NetworkFacts,
    Placement,
    PlatformAbout,
    SnapshotFacts,
    VmConfig,
    VmFacts,
    one_line,
)
from qualification.platforms.hyperv.endpoint import Endpoint

# Microsoft.HyperV.PowerShell.VMState (Get-VM .State), numbers as ConvertTo-Json writes them.
_VM_STATE = {
    2: RUNNING,
    3: STOPPED,
    4: STOPPING,
    6: SUSPENDED,  # Saved
    9: PAUSED,
    10: RUNNING,  # Starting
    32773: STOPPING,  # Saving
    32776: PAUSED,  # Pausing
    32777: RUNNING,  # Resuming
    32779: SUSPENDED,  # FastSaved
    32780: STOPPING,  # FastSaving
}
_VM_STATE_CRITICAL = CRASHED  # the *Critical states (> 32780) mean the VM's storage is lost
# Microsoft.HyperV.PowerShell.VMSwitchType
SWITCH_TYPES = {0: "Private", 1: "Internal", 2: "External"}
# Microsoft.HyperV.PowerShell.MigrationAuthenticationType
MIGRATION_AUTH = {0: "CredSSP", 1: "Kerberos"}
# Microsoft.HyperV.PowerShell.VMMigrationPerformance
MIGRATION_PERFORMANCE = {0: "TCPIP", 1: "Compression", 2: "SMB"}
# Microsoft.PowerShell.Commands.FirmwareType (Get-ComputerInfo .BiosFirmwareType)
FIRMWARE_TYPES = {0: "Unknown", 1: "Bios", 2: "Uefi", 3: "Max"}


_NOT_RECOGNIZED = "is not recognized as the name of a cmdlet"
_STAND_IN_MARK = "WinRM stand-in"
STAND_IN_REASON = "no real Hyper-V available; the stand-in does not change state"


def ps_quote(text: str) -> str:
    """``text`` as a PowerShell single-quoted string (a quote is doubled; nothing expands)."""
    return "'" + text.replace("'", "''") + "'"


def _transport_errors() -> tuple[type[BaseException], ...]:
    # pywinrm and requests are imported where the adapter first needs them (connecting),
    # never when the module is loaded.
    import requests
    from winrm.exceptions import WinRMError

    return (WinRMError, requests.exceptions.RequestException, OSError)


def _trust_path(ca_file: str | None) -> str:
    """The CA bundle to verify against: ``ca_file``, else the system trust store (named
    explicitly, so pywinrm never picks one from the environment), else certifi's (what requests ships with)."""
    if ca_file:
        return ca_file
    import ssl

    system = ssl.get_default_verify_paths().cafile
    if system:
        return system
    import certifi  # requests' own bundle

    return str(certifi.where())


def _clean_stderr(data: bytes) -> str:
    """Error text from PowerShell's stderr: plain text, or the error strings of a CLIXML
    stream (what powershell.exe writes when run with ``-EncodedCommand``)."""
    text = data.decode("utf-8", errors="replace")
    if text.startswith("#< CLIXML"):
        body = text.split("\n", 1)[1] if "\n" in text else ""
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return text
        parts = [
            (el.text or "").replace("_x000D__x000A_", " ")
            for el in root.iter()
            if el.tag.endswith("}S") and el.get("S") == "Error"
        ]
        return " ".join(p for p in parts if p) or "PowerShell reported an error"
    return text


def _enum(table: Mapping[int, str], value: Any) -> Any:
    """The documented name of an enumeration number; an unknown value stays as it came."""
    return table.get(value, value) if isinstance(value, int) else value


def _as_list(value: Any) -> list[Any]:
    """ConvertTo-Json unwraps a single object and writes nothing for none: always a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class HypervPlatform:
    """One Hyper-V host through WinRM and PowerShell.

    Raises:
        PlatformError: at construction, when the shell cannot be opened (unreachable,
            credentials rejected, certificate not trusted); the message names the endpoint
            and never the password.
    """

    platform = "hyperv"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._secrets = tuple(s for s in (endpoint.password,) if s)
        if endpoint.scheme not in ("https", "http"):
            raise BadInputError(f"winrm scheme must be https or http, not {endpoint.scheme!r}")
        from winrm.exceptions import WinRMError
        from winrm.protocol import Protocol

        # Plain HTTP has no certificate to verify; saying so keeps pywinrm from looking for one.
        validate = endpoint.validate_certs and endpoint.scheme == "https"
        verify: Any = "validate" if validate else "ignore"
        try:
            self._protocol = Protocol(
                endpoint.url,
                transport=endpoint.transport,  # type: ignore[arg-type]
                username=endpoint.username,
                password=endpoint.password,
                server_cert_validation=verify,
                ca_trust_path=_trust_path(endpoint.ca_file),
                read_timeout_sec=endpoint.timeout_s + 10,
                operation_timeout_sec=endpoint.timeout_s,
            )
        except (WinRMError, ValueError) as exc:
            raise PlatformError(self._clean(f"connect failed: {exc}"), where=endpoint.url) from None
        self._shell: str | None = None
        self._shell = self._open_shell()
        self._cache: dict[str, list[Any]] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HypervPlatform({self.endpoint!r})"

    def _clean(self, text: str) -> str:
        return one_line(text, self._secrets)

    def _transport_error(self, operation: str, exc: BaseException) -> PlatformError:
        import requests
        import winrm

        if isinstance(exc, winrm.exceptions.InvalidCredentialsError):
            reason = "login failed: the credentials were rejected"
        elif isinstance(exc, requests.exceptions.SSLError):
            reason = f"certificate not trusted: {exc}"
        elif isinstance(exc, requests.exceptions.ConnectionError):
            reason = f"connect failed: {exc}"
        elif isinstance(exc, requests.exceptions.Timeout):
            reason = f"timed out: {exc}"
        else:
            reason = f"{operation} failed: {type(exc).__name__}: {exc}"
        return PlatformError(self._clean(reason), where=self.endpoint.url)

    def _open_shell(self) -> str:
        try:
            shell: str = self._protocol.open_shell()
        except _transport_errors() as exc:
            raise self._transport_error("open shell", exc) from None
        return shell

    def close(self) -> None:
        if self._shell is not None:
            try:
                self._protocol.close_shell(self._shell)
            except _transport_errors():
                pass  # the server drops idle shells itself; nothing to report on close
            self._shell = None

    # -- PowerShell ---------------------------------------------------------------------

    def run_ps(
        self, script: str, *, operation: str, target: str = "", changes: bool = False
    ) -> str:
        """Run ``script`` and return its stdout.

        Errors stop the script (``$ErrorActionPreference = 'Stop'``), so a failed cmdlet
        gives a non-zero exit code and its message on stderr.

        Raises:
            NotSupported: the endpoint does not know the cmdlet (for a state-changing
                operation against the stand-in: no real Hyper-V available).
            PlatformError: the cmdlet failed, or the transport did.
        """
        if self._shell is None:
            self._shell = self._open_shell()
        full = (
            "$ProgressPreference = 'SilentlyContinue'; $ErrorActionPreference = 'Stop'; " + script
        )
        encoded = base64.b64encode(full.encode("utf-16-le")).decode("ascii")
        try:
            command = self._protocol.run_command(
                self._shell, f"powershell -NoProfile -NonInteractive -EncodedCommand {encoded}"
            )
            stdout, stderr, code = self._protocol.get_command_output(self._shell, command)
            self._protocol.cleanup_command(self._shell, command)
        except _transport_errors() as exc:
            raise self._transport_error(operation, exc) from None
        if code != 0:
            text = self._clean(_clean_stderr(stderr)) or f"exit code {code}"
            if _NOT_RECOGNIZED in text:
                if changes and _STAND_IN_MARK in text:
                    raise NotSupported(operation, STAND_IN_REASON, where=self.endpoint.url)
                cmdlet = script.split()[0] if script.split() else script
                raise NotSupported(
                    operation,
                    f"the endpoint does not know {cmdlet} ({text})",
                    where=self.endpoint.url,
                )
            what = f"{operation} {target}".strip()
            raise PlatformError(f"{what} failed: {text}", where=self.endpoint.url)
        return stdout.decode("utf-8", errors="replace")

    def query(
        self, command: str, *, operation: str, target: str = "", changes: bool = False
    ) -> list[Any]:
        """The objects ``command`` writes, through ``ConvertTo-Json``; always a list."""
        out = self.run_ps(
            f"{command} | ConvertTo-Json -Depth 3 -Compress",
            operation=operation,
            target=target,
            changes=changes,
        ).strip()
        if not out:
            return []
        try:
            return _as_list(json.loads(out))
        except ValueError as exc:
            raise PlatformError(
                f"{operation}: {command} did not answer JSON ({exc})", where=self.endpoint.url
            ) from None

    def read(self, name: str) -> list[Any]:
        """A read-only cmdlet of :data:`READ_CMDLETS`, read once per adapter."""
        if name not in READ_CMDLETS:
            known = ", ".join(READ_CMDLETS)
            raise BadInputError(f"cmdlet {name!r} is not a known read-only query (known: {known})")
        if name not in self._cache:
            self._cache[name] = self.query(READ_CMDLETS[name], operation=name)
        return self._cache[name]

    def _one(self, name: str) -> dict[str, Any]:
        objects = self.read(name)
        if not objects or not isinstance(objects[0], dict):
            raise PlatformError(f"{name} returned no object", where=self.endpoint.url)
        first: dict[str, Any] = objects[0]
        return first

    # -- facts ---------------------------------------------------------------------------

    def host_details(self) -> dict[str, Any]:
        """The host's facts in the shape the ``hyperv`` checks read (``docs/hyperv.md``)."""
        info = self._one("Get-ComputerInfo")
        vmhost = self._one("Get-VMHost")
        return {
            "name": str(vmhost.get("Name") or info.get("CsName") or ""),
            "domain": info.get("CsDomain"),
            "product": {
                "name": info.get("WindowsProductName"),
                "version": info.get("OsVersion"),
                "build": info.get("OsBuildNumber"),
                "build_lab": info.get("WindowsBuildLabEx"),
                "edition": info.get("WindowsEditionId"),
                "installation_type": info.get("WindowsInstallationType"),
                "display_version": info.get("WindowsVersion"),
            },
            "hardware": {"vendor": info.get("CsManufacturer"), "model": info.get("CsModel")},
            "bios": {
                "vendor": info.get("BiosManufacturer"),
                "version": info.get("BiosSMBIOSBIOSVersion"),
                "firmware_type": _enum(FIRMWARE_TYPES, info.get("BiosFirmwareType")),
            },
            "cpu": {
                "packages": info.get("CsNumberOfProcessors"),
                "logical": info.get("CsNumberOfLogicalProcessors")
                or vmhost.get("LogicalProcessorCount"),
            },
            "memory_bytes": vmhost.get("MemoryCapacity") or info.get("CsTotalPhysicalMemory"),
            "hypervisor_present": info.get("HyperVisorPresent"),
            "vbs_status": info.get("DeviceGuardVirtualizationBasedSecurityStatus"),
            "vmhost": {
                "virtual_hard_disk_path": vmhost.get("VirtualHardDiskPath"),
                "virtual_machine_path": vmhost.get("VirtualMachinePath"),
                "enhanced_session_mode": vmhost.get("EnableEnhancedSessionMode"),
                "numa_spanning": vmhost.get("NumaSpanningEnabled"),
                "migration_enabled": vmhost.get("VirtualMachineMigrationEnabled"),
                "migration_authentication": _enum(
                    MIGRATION_AUTH, vmhost.get("VirtualMachineMigrationAuthenticationType")
                ),
                "migration_performance": _enum(
                    MIGRATION_PERFORMANCE, vmhost.get("VirtualMachineMigrationPerformanceOption")
                ),
                "migration_any_network": vmhost.get("UseAnyNetworkForMigration"),
                "max_vm_migrations": vmhost.get("MaximumVirtualMachineMigrations"),
                "max_storage_migrations": vmhost.get("MaximumStorageMigrations"),
                "iov_support": vmhost.get("IovSupport"),
            },
        }

    def about(self) -> PlatformAbout:
        import winrm

        info = self._one("Get-ComputerInfo")
        return PlatformAbout(
            platform="hyperv",
            product=str(info.get("WindowsProductName") or ""),
            version=str(info.get("OsVersion") or ""),
            api_version=f"WS-Management (pywinrm {getattr(winrm, '__version__', '')})".replace(
                " )", ")"
            ),
            endpoint=self.endpoint.url,
        )

    def _host_facts(self) -> HostFacts:
        d = self.host_details()
        packages = int(d["cpu"]["packages"] or 0)
        logical = int(d["cpu"]["logical"] or 0)
        return HostFacts(
            name=d["name"],
            uuid=None,
            # Get-ComputerInfo names no CPU model or clock in the properties read here.
            cpu=CpuFacts(
                model="",
                arch="x86_64",
                vendor=None,
                count=logical,
                mhz=0,
                sockets=packages,
                cores_per_socket=0,
                threads_per_core=0,
            ),
            memory_mib=int(d["memory_bytes"] or 0) // (1024 * 1024),
            numa_nodes=0,
            hardware={k: str(v) for k, v in d["hardware"].items() if v is not None},
            firmware={k: str(v) for k, v in d["bios"].items() if v is not None},
            software={k: str(v) for k, v in d["product"].items() if v is not None},
        )

    def hosts(self) -> list[HostFacts]:
        return [self._host_facts()]

    def host(self, name: str | None = None) -> HostFacts:
        facts = self._host_facts()
        if name is not None and name.lower() != facts.name.lower():
            raise PlatformError(
                f"host {name!r} not found (the endpoint is {facts.name})", where=self.endpoint.url
            )
        return facts

    def clusters(self) -> list[ClusterFacts]:
        raise NotSupported(
            "clusters", "failover cluster facts are not modelled by the Hyper-V adapter"
        )

    def datastores(self) -> list[DatastoreFacts]:
        raise NotSupported(
            "datastores", "Cluster Shared Volumes are not modelled by the Hyper-V adapter"
        )

    def networks(self) -> list[NetworkFacts]:
        return [
            NetworkFacts(
                name=str(s.get("Name")),
                active=True,
                persistent=True,
                autostart=True,
                bridge=s.get("NetAdapterInterfaceDescription"),
                forward_mode=str(_enum(SWITCH_TYPES, s.get("SwitchType"))),
            )
            for s in self.read("Get-VMSwitch")
        ]

    def vswitches(self) -> list[dict[str, Any]]:
        """Virtual switches: name, type, management OS sharing, uplink adapter."""
        return [
            {
                "name": s.get("Name"),
                "switch_type": _enum(SWITCH_TYPES, s.get("SwitchType")),
                "allow_management_os": s.get("AllowManagementOS"),
                "net_adapter": s.get("NetAdapterInterfaceDescription"),
                "iov_enabled": s.get("IovEnabled"),
            }
            for s in self.read("Get-VMSwitch")
        ]

    def features(self) -> dict[str, bool]:
        """Installed state of each Windows feature the host reports, by name."""
        return {
            str(f.get("Name")): bool(f.get("Installed")) for f in self.read("Get-WindowsFeature")
        }

    def _vm_facts(self, vm: Mapping[str, Any]) -> VmFacts:
        state = vm.get("State")
        power = _VM_STATE.get(state, UNKNOWN) if isinstance(state, int) else UNKNOWN
        if isinstance(state, int) and state > 32780:
            power = _VM_STATE_CRITICAL
        memory = int(vm.get("MemoryStartup") or 0) // (1024 * 1024)
        generation = vm.get("Generation")
        return VmFacts(
            name=str(vm.get("Name")),
            uuid=str(vm.get("VMId") or vm.get("Id") or ""),
            host=str(vm.get("ComputerName") or ""),
            power_state=power,
            persistent=True,
            autostart=False,
            vcpus=int(vm.get("ProcessorCount") or 0),
            memory_mib=memory,
            max_memory_mib=memory,
            machine=f"generation {generation} version {vm.get('Version')}",
            # Generation 2 VMs boot UEFI; generation 1 BIOS (Get-VM's Generation property).
            firmware="efi" if generation == 2 else "bios",
        )

    def vms(self) -> list[VmFacts]:
        return [self._vm_facts(v) for v in self.query("Get-VM", operation="Get-VM")]

    def vm(self, name: str) -> VmFacts:
        for vm in self.vms():
            if vm.name == name:
                return vm
        raise PlatformError(f"vm {name!r} not found", where=self.endpoint.url)

    def vm_details(self, name: str) -> dict[str, Any]:
        return self.vm(name).to_json()

    def vm_exists(self, name: str) -> bool:
        return any(vm.name == name for vm in self.vms())

    # -- operations (each one cmdlet; the stand-in knows none of them) -------------------

    def _change(self, operation: str, target: str, command: str) -> None:
        # One cmdlet piped to ConvertTo-Json, like every read: an endpoint that does not know
        # the cmdlet (the stand-in knows none that change state) says so in one way.
        self.query(command, operation=operation, target=target, changes=True)

    def create_vm(self, config: VmConfig) -> VmFacts:
        name = ps_quote(config.name)
        self._change(
            "create_vm",
            config.name,
            f"New-VM -Name {name} -Generation 2 -NoVHD "
            f"-MemoryStartupBytes {config.memory_mib * 1024 * 1024}",
        )
        if config.vcpus != 1:  # New-VM gives one virtual processor
            self._change(
                "create_vm",
                config.name,
                f"Set-VMProcessor -VMName {name} -Count {config.vcpus} -Passthru",
            )
        return self.vm(config.name)

    def delete_vm(self, name: str, *, delete_storage: bool = False) -> None:
        # Hyper-V's Remove-VM leaves virtual disks on disk; vqual's throwaway VMs have none.
        self._change("delete_vm", name, f"Remove-VM -Name {ps_quote(name)} -Force -Passthru")

    def power_on(self, name: str) -> VmFacts:
        self._change("power_on", name, f"Start-VM -Name {ps_quote(name)} -Passthru")
        return self.vm(name)

    def power_off(self, name: str, *, graceful: bool = False, timeout_s: float = 60.0) -> VmFacts:
        how = "-Force" if graceful else "-TurnOff"
        self._change("power_off", name, f"Stop-VM -Name {ps_quote(name)} {how} -Passthru")
        return self.vm(name)

    def snapshots(self, vm: str) -> list[SnapshotFacts]:
        found = self.query(
            f"Get-VMSnapshot -VMName {ps_quote(vm)}", operation="snapshots", target=vm
        )
        return [
            SnapshotFacts(
                name=str(s.get("Name")),
                vm=vm,
                # Checkpoints record the VM's state; a production checkpoint is always "off".
                power_state=_VM_STATE.get(s["State"], UNKNOWN)
                if isinstance(s.get("State"), int)
                else UNKNOWN,
                current=False,
            )
            for s in found
        ]

    def snapshot_create(self, vm: str, name: str, *, description: str = "") -> SnapshotFacts:
        self._change(
            "snapshot_create",
            vm,
            f"Checkpoint-VM -Name {ps_quote(vm)} -SnapshotName {ps_quote(name)} -Passthru",
        )
        for snap in self.snapshots(vm):
            if snap.name == name:
                return snap
        raise PlatformError(
            f"snapshot {name!r} of vm {vm!r} not listed after create", where=self.endpoint.url
        )

    def snapshot_revert(self, vm: str, name: str) -> VmFacts:
        self._change(
            "snapshot_revert",
            vm,
            f"Restore-VMSnapshot -VMName {ps_quote(vm)} -Name {ps_quote(name)} -Confirm:$false -Passthru",
        )
        return self.vm(vm)

    def snapshot_delete(self, vm: str, name: str) -> None:
        self._change(
            "snapshot_delete",
            vm,
            f"Remove-VMSnapshot -VMName {ps_quote(vm)} -Name {ps_quote(name)} -Passthru",
        )

    def clone_vm(self, source: str, name: str) -> VmFacts:
        raise NotSupported(
            "clone", "Hyper-V has no clone operation; export and import are not modelled"
        )

    def migrate_vm(self, name: str, destination: str, *, live: bool = True) -> VmFacts:
        if not live:
            raise NotSupported("migrate", "only live migration (Move-VM) is modelled")
        self._change(
            "migrate",
            name,
            f"Move-VM -Name {ps_quote(name)} -DestinationHost {ps_quote(destination)} -Passthru",
        )
        return self.vm(name)

    def placement(self, vm: str) -> Placement:
        raise NotSupported("placement", "cluster group preferred owners are not modelled")

    def set_placement(self, vm: str, placement: Placement) -> VmFacts:
        raise NotSupported("placement", "cluster group preferred owners are not modelled")

    def enter_maintenance(self, host: str | None = None) -> HostFacts:
        node = host or self.host().name
        self._change(
            "enter_maintenance", node, f"Suspend-ClusterNode -Name {ps_quote(node)} -Drain -Wait"
        )
        return self.host(host)

    def exit_maintenance(self, host: str | None = None) -> HostFacts:
        node = host or self.host().name
        self._change(
            "exit_maintenance",
            node,
            f"Resume-ClusterNode -Name {ps_quote(node)} -Failback Immediate",
        )
        return self.host(host)

    def events(self, since: datetime | None = None) -> list[EventFacts]:
        raise NotSupported("events", "the Hyper-V event logs are not modelled")
