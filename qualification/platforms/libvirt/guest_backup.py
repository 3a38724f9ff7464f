"""Push backup and restore of a booted throwaway guest, checked by a marker file written
in the guest before the backup and changed after it (``oq_backup_restore``)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any

import libvirt

from qualification.errors import NotSupported, PlatformError
from qualification.platforms.base import RUNNING
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.guest_migrate import _wait_job
from qualification.platforms.libvirt.guest_oq import (
    BOOT_TIMEOUT_S,
    MARKER_FILE,
    Agent,
    GuestOqResult,
    ThrowawayTag,
    _cannot_run_guests,
    _cleanup_action,
    _clone_and_boot,
    _power,
    _Recorder,
    _require_template,
    throwaway_name,
    throwaway_xml,
    with_tag,
)
from qualification.platforms.oq import utc_stamp


def run_backup_restore(
    platform: LibvirtPlatform,
    *,
    template: str,
    run_id: str,
    boot_timeout: float = BOOT_TIMEOUT_S,
    backup_timeout: float = 600.0,
) -> GuestOqResult:
    """Marker in a throwaway guest, push backup, restore as a new guest, marker read back.

    The backup is libvirt's push-mode full backup (``virDomainBackupBegin``): its point in
    time is the job's start, with the guest's file systems frozen through the agent for that
    instant, so the copy is consistent while the guest runs on. The original guest is
    destroyed before the restored one boots (one guest of the run at a time).
    """
    name = throwaway_name(run_id, "bak")
    restored = throwaway_name(run_id, "rst")
    rec = _Recorder(name)
    marker = f"vqual-oq {run_id} {os.urandom(8).hex()}"
    value: dict[str, Any] = {"vm": name, "restored_vm": restored, "verdict": "fail", "reason": None}
    not_executed = _cannot_run_guests(platform, "backup/restore")
    if not_executed is not None:
        value.update({"verdict": "not-executed", "reason": not_executed})
        return GuestOqResult(value=value, not_executed=not_executed)
    _require_template(platform, template)
    try:
        agent, tag = _clone_and_boot(platform, rec, template, name, run_id, "bak", boot_timeout)
        backup = f"{os.path.dirname(tag.files[0])}/{name}-backup.qcow2"
        rec.step(
            "guest.marker_write",
            {"marker_file": MARKER_FILE},
            lambda: _write_marker(agent, marker),
        )
        dom = _tag_backup(platform, name, tag, backup)
        rec.step(
            "vm.backup",
            {"power_state": RUNNING, "backup": None},
            lambda: _take_backup(platform, agent, dom, name, backup, backup_timeout),
        )
        rec.step(
            "vm.stop_original",
            {"power_state": RUNNING},
            lambda: _change_marker_and_stop(platform, agent, dom, name),
        )
        root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        restore_tag = ThrowawayTag(run_id, "rst", utc_stamp(), (backup,))
        xml = throwaway_xml(ET.tostring(root, "unicode"), restored, backup, restore_tag)
        rec.step(
            "vm.restore",
            {"vm": restored, "exists": False},
            lambda: _restore_backup(platform, restored, backup, xml, boot_timeout),
        )
        rec.target = restored
        read_back: list[str] = []
        rec.step(
            "guest.marker_read",
            {"marker_file": MARKER_FILE},
            lambda: _read_marker(Agent(platform._domain(restored)), read_back),
        )
        ok = read_back[0] == marker
        value.update(
            {
                "verdict": "pass" if ok else "fail",
                "reason": None if ok else f"marker read back {read_back[0]!r}, written {marker!r}",
                "marker_written": marker,
                "marker_read": read_back[0],
                "backup": backup,
            }
        )
    except NotSupported as exc:
        not_executed = exc.one_line()
        value.update({"verdict": "not-executed", "reason": not_executed})
    except PlatformError as exc:
        value.update({"verdict": "fail", "reason": rec.reason(exc)})
    finally:
        # The restored guest first: its disk is the backup the original's tag also names.
        value["cleanup"] = _cleanup_action(rec, [platform], [restored, name])
    return GuestOqResult(value=value, actions=rec.actions, not_executed=not_executed)


def _write_marker(agent: Agent, marker: str) -> dict[str, Any]:
    """``guest.marker_write`` (and ``guest.marker_change``): the marker written and synced."""
    agent.write(MARKER_FILE, marker.encode())
    agent.run(["/bin/sync"])
    return {"marker_file": MARKER_FILE, "marker": marker}


def _read_marker(agent: Agent, into: list[str]) -> dict[str, Any]:
    """``guest.marker_read``: the marker file's content, appended to ``into``."""
    into.append(agent.read_when_answering(MARKER_FILE)[0].decode("utf-8", "replace"))
    return {"marker": into[0]}


def _tag_backup(
    platform: LibvirtPlatform, name: str, tag: ThrowawayTag, backup: str
) -> libvirt.virDomain:
    """The guest's tag extended by the backup file; the guest's domain."""
    # The tag names the backup before libvirt creates it (cleanup after a crash).
    dom = platform._domain(name)
    tag = ThrowawayTag(tag.run_id, tag.purpose, tag.created, tag.files + (backup,))
    platform._call(
        "tag vm",
        name,
        platform.conn.defineXML,
        with_tag(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), tag),
    )
    return dom


def _take_backup(
    platform: LibvirtPlatform,
    agent: Agent,
    dom: libvirt.virDomain,
    name: str,
    backup: str,
    backup_timeout: float,
) -> dict[str, Any]:
    """``vm.backup``: a push-mode full backup, file systems frozen for its start if possible."""
    backup_xml = (
        "<domainbackup mode='push'><disks><disk name='vda' type='file'>"
        f"<target file='{backup}'/><driver type='qcow2'/></disk>"
        "</disks></domainbackup>"
    )
    frozen = False
    try:
        agent.command("guest-fsfreeze-freeze", timeout=30)
        frozen = True
    except PlatformError:
        pass  # the backup is then crash-consistent; recorded below
    try:
        platform._call("backup", name, dom.backupBegin, backup_xml, None, 0)
    finally:
        if frozen:
            agent.command("guest-fsfreeze-thaw", timeout=30)
    stats = _wait_job(dom, backup_timeout)
    return {
        "backup": backup,
        "fs_frozen": frozen,
        "bytes": int(stats.get("disk_total", stats.get("data_total", 0)) or 0),
        "job_ms": int(stats.get("time_elapsed", 0) or 0),
    }


def _change_marker_and_stop(
    platform: LibvirtPlatform, agent: Agent, dom: libvirt.virDomain, name: str
) -> dict[str, Any]:
    """``vm.stop_original``: the marker changed after the backup, the original destroyed."""
    # Changing the marker after the backup proves the restore reads the backup.
    agent.write(MARKER_FILE, b"changed after backup")
    platform._call("destroy vm", name, dom.destroy)
    return {"power_state": _power(platform, name), "marker": "changed after backup"}


def _restore_backup(
    platform: LibvirtPlatform, restored: str, backup: str, xml: str, boot_timeout: float
) -> dict[str, Any]:
    """``vm.restore``: a new guest defined on the backup, started, its agent answering."""
    platform._call("define vm", restored, platform.conn.defineXML, xml)
    new = platform._domain(restored)
    platform._call("start vm", restored, new.create)
    Agent(new).wait(boot_timeout)
    return {"vm": restored, "disk": backup, "power_state": _power(platform, restored)}
