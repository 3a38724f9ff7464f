"""Hypervisor adapters behind one Protocol (:class:`HypervisorPlatform`).

Import an adapter from its module (``qualification.platforms.libvirt.adapter``) so that a missing
vendor library only affects that adapter.
"""

from qualification.platforms.base import (
    POWER_STATES,
    ClusterFacts,
    CpuFacts,
    DatastoreFacts,
    DiskFacts,
    EventFacts,
    HostFacts,
    HypervisorPlatform,
    NetworkFacts,
    NicFacts,
    Placement,
    PlatformAbout,
    SnapshotFacts,
    VmConfig,
    VmFacts,
    redact_endpoint,
)

__all__ = [
    "POWER_STATES",
    "ClusterFacts",
    "CpuFacts",
    "DatastoreFacts",
    "DiskFacts",
    "EventFacts",
    "HostFacts",
    "HypervisorPlatform",
    "NetworkFacts",
    "NicFacts",
    "Placement",
    "PlatformAbout",
    "SnapshotFacts",
    "VmConfig",
    "VmFacts",
    "redact_endpoint",
]
