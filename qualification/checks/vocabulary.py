"""The check library's own vocabulary: the step, test and query names specs use and probes
answer to. Platforms import these names from here; the check library imports no platform.
"""

from __future__ import annotations

#: Steps of the OQ lifecycle on a throwaway VM, in the order they run
#: (``qualification.platforms.oq.run_lifecycle``).
LIFECYCLE_STEPS: tuple[str, ...] = (
    "define",
    "start",
    "snapshot_create",
    "stop",
    "snapshot_revert",
    "snapshot_delete",
    "undefine",
)

#: Tests of the vSphere OQ protocol on throwaway VMs (``qualification.platforms.vsphere.oq``).
VSPHERE_OQ_TESTS: tuple[str, ...] = (
    "power_cycle",
    "snapshot",
    "clone",
    "migrate",
    "maintenance",
    "backup_restore",
)

#: Read-only queries the ``cmdlet`` probe method may run: name -> the PowerShell command.
#: Specs name a key; nothing outside this table is ever sent, so a spec cannot change state.
READ_CMDLETS: dict[str, str] = {
    "Get-VMHost": "Get-VMHost",
    "Get-ComputerInfo": "Get-ComputerInfo",
    "Get-VM": "Get-VM",
    "Get-VMSwitch": "Get-VMSwitch",
    "Confirm-SecureBootUEFI": "Confirm-SecureBootUEFI",
    "Get-WindowsFeature": "Get-WindowsFeature",
    "Get-HotFix": "Get-HotFix",
    "Get-Tpm": "Get-Tpm",
    "Get-BitLockerVolume": "Get-BitLockerVolume",
    "Get-MpPreference": "Get-MpPreference",
    "Get-VMProcessor": "Get-VMProcessor -VMName *",
    "Get-VMMigrationNetwork": "Get-VMMigrationNetwork",
    "Get-LocalGroupMember": "Get-LocalGroupMember -Group 'Hyper-V Administrators'",
    "Get-ClusterNode": "Get-ClusterNode",
    "Get-ClusterQuorum": "Get-ClusterQuorum",
    "Get-ClusterSharedVolume": "Get-ClusterSharedVolume",
    "Get-ClusterNetwork": "Get-ClusterNetwork",
    # Test-Cluster's reports (HV-12), as System.IO.FileInfo objects; the newest is judged.
    "Cluster-ValidationReports": (
        "Get-ChildItem -Path 'C:\\Windows\\Cluster\\Reports' -Filter 'Validation Report*'"
    ),
    # The time service's configured source (HV-14); w32tm itself writes text, not objects.
    "W32Time-Parameters": (
        "Get-ItemProperty -Path 'HKLM:\\SYSTEM\\CurrentControlSet\\Services\\W32Time\\Parameters'"
    ),
}
