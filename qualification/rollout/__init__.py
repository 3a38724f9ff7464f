"""Rolling hypervisor patch: the change file, the cluster snapshot, the planner (N+1 capacity)
and the journaled orchestrator (docs/rolling-patch.md).

Pure: talks to the platform only through
:class:`~qualification.platforms.base.HypervisorPlatform`, never imports ansible or a vendor
library.
"""
