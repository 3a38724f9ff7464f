"""The libvirt probe's OQ scenarios: the lifecycle and a live migration on a throwaway domain,
and the OQ on booted throwaway guests (``guest_oq``), each an observation with its actions.

The probe table (``observations.py``) calls these; each runs inside the probe's one
connection, because the test driver keeps no state between connections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qualification.checks.vocabulary import LIFECYCLE_STEPS
from qualification.errors import NotSupported, PlatformError
from qualification.platforms.base import RUNNING, BadArgs, VmConfig, redact_endpoint
from qualification.platforms.base import probe_observation as _observation
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.oq import run_lifecycle, utc_stamp


def oq_lifecycle(platform: LibvirtPlatform, vm: str, args: dict[str, Any]) -> dict[str, Any]:
    steps = args.get("steps", list(LIFECYCLE_STEPS))
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise BadArgs("oq_lifecycle: argument 'steps' must be a list of step names")
    disk_mib = args.get("disk_mib", 16)
    pool = args.get("pool")
    if isinstance(disk_mib, bool) or not isinstance(disk_mib, int) or disk_mib < 0:
        raise BadArgs("oq_lifecycle: argument 'disk_mib' must be a whole number of MiB (0: none)")
    if pool is not None and not isinstance(pool, str):
        raise BadArgs("oq_lifecycle: argument 'pool' must be a storage pool name")
    try:
        result = run_lifecycle(
            platform,
            vm,
            steps,
            graceful_stop=bool(args.get("graceful_stop", False)),
            disk_mib=disk_mib,
            pool=pool,
        )
    except ValueError as exc:
        raise BadArgs(f"oq_lifecycle: {exc}") from None
    return _observation(
        value=result.value,
        method=f"libvirt OQ lifecycle {', '.join(result.value['steps'])} on {vm} {platform.endpoint}",
        actions=result.actions,
    )


@dataclass
class _OqMigration:
    """One ``oq_migrate`` run: the verdict so far and the actions recorded with it."""

    platform: LibvirtPlatform
    vm: str
    verdict: str = "pass"
    reason: str | None = None
    not_executed: str | None = None
    #: whether this run defined the VM, and whether it moved it (where to clean up)
    created: bool = False
    migrated: bool = False
    actions: list[dict[str, Any]] = field(default_factory=list)

    def record(
        self, name: str, before: dict[str, Any], after: dict[str, Any], started: str
    ) -> None:
        """An action with the run's verdict and reason as they stand now."""
        self.actions.append(
            {
                "name": name,
                "target": self.vm,
                "before": before,
                "after": after,
                "verdict": self.verdict,
                "reason": self.reason,
                "started": started,
                "finished": utc_stamp(),
            }
        )


def oq_migrate(platform: LibvirtPlatform, vm: str, args: dict[str, Any]) -> dict[str, Any]:
    """Define and start a throwaway VM, migrate it live to ``args['destination']``, clean up.

    A platform that cannot migrate (the test driver) yields ``not_executed`` with libvirt's
    reason; the set-up and clean-up actions are still reported.
    """
    destination = args.get("destination")
    if not isinstance(destination, str) or not destination:
        raise BadArgs("oq_migrate: argument 'destination' (a libvirt URI) is required")
    dest_endpoint = redact_endpoint(destination)
    run = _OqMigration(platform, vm)
    _oq_define_start(run)
    if run.verdict == "pass":
        _oq_migrate_live(run, destination, dest_endpoint)
    cleanup_errors = _oq_migrate_cleanup(run, destination)
    value = {
        "vm": vm,
        "destination": dest_endpoint,
        "verdict": run.verdict,
        "reason": run.reason,
        "cleanup": {
            "verdict": "fail" if cleanup_errors else "pass",
            "reason": "; ".join(cleanup_errors) or None,
        },
    }
    return _observation(
        value=value,
        method=f"libvirt migrate {vm} {platform.endpoint} -> {dest_endpoint}",
        not_executed=run.not_executed,
        actions=run.actions,
    )


def _oq_define_start(run: _OqMigration) -> None:
    """``vm.define_start``: the throwaway VM defined and running."""
    started = utc_stamp()
    try:
        run.platform.create_vm(VmConfig(name=run.vm))
        run.created = True
        facts = run.platform.power_on(run.vm)
        if facts.power_state != RUNNING:
            run.verdict, run.reason = "fail", f"throwaway VM is {facts.power_state} after start"
    except PlatformError as exc:
        run.verdict, run.reason = "fail", exc.one_line()
    run.record("vm.define_start", {"exists": False}, {"running": run.verdict == "pass"}, started)


def _oq_migrate_live(run: _OqMigration, destination: str, dest_endpoint: str) -> None:
    """``vm.migrate``: live to the destination, running there and gone from the source."""
    platform, vm = run.platform, run.vm
    started = utc_stamp()
    before = {"endpoint": platform.endpoint, "host": platform.hostname()}
    after: dict[str, Any] = {}
    try:
        moved = platform.migrate_vm(vm, destination, live=True)
        run.migrated = True
        after = {
            "endpoint": dest_endpoint,
            "host": moved.host,
            "power_state": moved.power_state,
        }
        if moved.power_state != RUNNING:
            run.verdict, run.reason = "fail", f"VM is {moved.power_state} on the destination"
        elif platform.vm_exists(vm):
            run.verdict, run.reason = "fail", "VM is still defined on the source after migration"
    except NotSupported as exc:
        run.verdict, run.reason = "not-executed", exc.one_line()
        run.not_executed = run.reason
    except PlatformError as exc:
        run.verdict, run.reason = "fail", exc.one_line()
    run.record("vm.migrate", before, after, started)


def _oq_migrate_cleanup(run: _OqMigration, destination: str) -> list[str]:
    """Remove the VM where it is (destination if moved, source if made); the errors."""
    platform, vm = run.platform, run.vm
    cleanup_errors: list[str] = []
    for where_uri in [destination] if run.migrated else []:
        try:
            with LibvirtPlatform(where_uri, state_dir=platform._state_dir) as dest:
                if dest.vm_exists(vm):
                    dest.power_off(vm)
                    dest.delete_vm(vm)
        except PlatformError as exc:
            cleanup_errors.append(exc.one_line())
    if run.created:
        try:
            if platform.vm_exists(vm):
                platform.power_off(vm)
                platform.delete_vm(vm)
        except PlatformError as exc:
            cleanup_errors.append(exc.one_line())
    return cleanup_errors


def _load_mib(args: dict[str, Any]) -> int:
    value = args.get("load_mib", 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1024:
        raise BadArgs("oq_guest_migrate: argument 'load_mib' must be 0-1024 (MiB)")
    return value


def guest_scenario(
    platform: LibvirtPlatform, method: str, run_id: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Migration heartbeat or backup/restore on a throwaway guest cloned from a template."""
    # The guest OQ (and libvirt_qemu) load only when a guest scenario runs: an IQ-only
    # libvirt_probe module process starts without them.
    from qualification.platforms.libvirt import guest_oq
    from qualification.platforms.libvirt.guest_backup import run_backup_restore
    from qualification.platforms.libvirt.guest_cycle import run_guest_cycle
    from qualification.platforms.libvirt.guest_migrate import run_migration_heartbeat

    if method == "oq_guest_failover":
        return _failover(platform, run_id, args)
    template = args.get("template")
    if not template:
        return _observation(
            method=method,
            not_executed="no template domain configured for this host (vqual_libvirt_oq.template)",
        )
    if not isinstance(template, str):
        raise BadArgs(f"{method}: argument 'template' must be a domain name")
    timeout = args.get("boot_timeout", guest_oq.BOOT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise BadArgs(f"{method}: argument 'boot_timeout' must be a positive number of seconds")
    if method == "oq_guest_migrate":
        destination = args.get("destination")
        if not destination:
            return _observation(
                method=method,
                not_executed="no destination host configured for this host "
                "(vqual_libvirt_oq.destination)",
            )
        if not isinstance(destination, str):
            raise BadArgs(f"{method}: argument 'destination' must be a libvirt URI")
        result = run_migration_heartbeat(
            platform,
            destination,
            template=template,
            run_id=run_id,
            unsafe=bool(args.get("unsafe_migration", False)),
            boot_timeout=float(timeout),
            load_mib=_load_mib(args),
        )
        what = f"libvirt live migration with guest heartbeat {platform.endpoint} -> " + str(
            result.value.get("destination")
        )
    elif method == "oq_guest_cycle":
        destination = args.get("destination")
        if destination is not None and not isinstance(destination, str):
            raise BadArgs(f"{method}: argument 'destination' must be a libvirt URI")
        # Without a destination the maintenance part is not-executed; the rest runs.
        result = run_guest_cycle(
            platform,
            destination or None,
            template=template,
            run_id=run_id,
            unsafe=bool(args.get("unsafe_migration", False)),
            boot_timeout=float(timeout),
        )
        what = (
            f"libvirt clone, power cycle, snapshot with memory and maintenance round trip "
            f"{platform.endpoint}"
            + (f" (evacuation to {result.value.get('destination')})" if destination else "")
        )
    else:
        result = run_backup_restore(
            platform, template=template, run_id=run_id, boot_timeout=float(timeout)
        )
        what = f"libvirt push backup and restore with guest marker {platform.endpoint}"
    return _observation(
        value=result.value,
        method=f"{what} (throwaway from template {template})",
        not_executed=result.not_executed,
        actions=result.actions,
    )


def _failover(platform: LibvirtPlatform, run_id: str, args: dict[str, Any]) -> dict[str, Any]:
    """The failover OQ on the HA cluster ``vqual_libvirt_oq.failover`` names."""
    from qualification.platforms.libvirt.guest_failover import run_failover

    failover = args.get("failover")
    if not failover:
        return _observation(
            method="oq_guest_failover",
            not_executed="no HA cluster configured for this host (vqual_libvirt_oq.failover: "
            "domain, peers, fail_command, restore_command)",
        )
    if not isinstance(failover, dict):
        raise BadArgs("oq_guest_failover: vqual_libvirt_oq.failover must be a mapping")
    result = run_failover(platform, failover, run_id)
    return _observation(
        value=result.value,
        method=f"libvirt failover of HA domain {failover.get('domain')}: a host failed, the "
        "guest restarted on another host, marker read back through the guest agent",
        # No not_executed here: the check makes the test not-executed from the value, with
        # the failed attempt (command, exit, stderr tail, seconds) in its record.
        actions=result.actions,
    )
