"""OQ with a booted guest on libvirt hosts: live migration with a heartbeat, backup/restore.

Both tests run on **throwaway guests**: a qcow2 overlay on the disk of a *template* domain
(a generalised image with the QEMU guest agent, e.g. the lab's Master-VM), defined from the
template's XML under the name ``vqual-tmp-<run id>-<purpose>`` and tagged with

    <metadata><vqual:throwaway xmlns:vqual="urn:x-vqual:libvirt:1" run-id="..." purpose="..."
        created="..."><vqual:file path="..."/>...</vqual:throwaway></metadata>

in its persistent definition. The tag lists every file the run made for the guest (overlay,
backup), so :func:`cleanup_run` can remove guest and files by run id on every host, also
after the run was killed. The template itself is only read.

The guest is reached through its agent channel only (no network, no SSH): a throwaway
guest gets no port forwards, so it cannot clash with the template's or a clone's.

**Heartbeat.** A small script started in the guest through the agent appends
``<counter> <CLOCK_MONOTONIC ns>`` to ``/run/vqual-heartbeat`` every 100 ms. Before and after
the migration the file is read back through the agent. Two figures come out of it:

- ``max_gap_s``: the largest gap between consecutive beats by the guest's own clock;
- ``guest_frozen_s``: host time that passed between the two reads minus guest time that
  passed between the beats read, i.e. time the guest did not see at all. QEMU stops the
  guest's virtual clock while the VM is paused for the switch-over, so the guest's own
  gaps do not show that part; the host clock does.

The measured interruption is the larger of the two. Nothing is estimated: when the
migration cannot run, the measurement is ``not-executed`` with the reason.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import libvirt
import libvirt_qemu

from qualification.errors import NotSupported, PlatformError
from qualification.platforms.base import redact_endpoint
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.domain_xml import VQUAL_NS
from qualification.platforms.oq import utc_stamp

THROWAWAY_PREFIX = "vqual-tmp-"
TAG = "throwaway"
HEARTBEAT_FILE = "/run/vqual-heartbeat"
HEARTBEAT_SCRIPT = "/run/vqual-heartbeat.py"
HEARTBEAT_PERIOD_S = 0.1
MARKER_FILE = "/root/vqual-oq-marker"
# The guest writes one line per beat, line-buffered, so a read never sees half a record
# except possibly the last line (dropped when it does not parse).
_HEARTBEAT_PY = f"""import time
n = 0
with open({HEARTBEAT_FILE!r}, "a", buffering=1) as f:
    while True:
        n += 1
        f.write("%d %d\\n" % (n, time.monotonic_ns()))
        time.sleep({HEARTBEAT_PERIOD_S})
"""
# Bounds of the waits on a guest. Each wait polls for what it waits for and ends as soon as
# that holds; the bound only says when to give up. Measured on the lab (2 cores, TCG guests,
# docs/kvm.md and docs/lab-guests.md):
#: Start to the agent's first answer: 15-18 s of QEMU CPU time, 26-53 s wall with the cores
#: shared (load 7-12); 300 s is over 5x the slowest wall time measured.
BOOT_TIMEOUT_S = 300.0
#: The agent answering again after it stopped. On the destination of a live migration libvirt
#: answers "Guest agent is not responding: QEMU guest agent is not connected" until it sees
#: the guest's agent channel open again: 0.1 s measured there (3 migrations under the 64 MiB
#: load, one core held by a busy loop beside the lab, load average 7), but a suite run on a
#: busy machine still found it not answering 2 s after the migration. 120 s bounds that with
#: a wide margin; the wait ends at the first answer.
AGENT_STALL_S = 120.0
#: The heartbeat script's first 5 beats after it was started through the agent (python3
#: start in the TCG guest): 0.9-2.0 s measured (same runs); 60 s.
HEARTBEAT_START_S = 60.0
#: The memory load's process listed by pgrep after its start: 0.5-1.6 s measured (same
#: runs); 60 s.
LOAD_START_S = 60.0
LOAD_SCRIPT = "/run/vqual-load.py"
# Writes one byte into every 4 KiB page of MIB MiB, over and over.
_LOAD_PY = """buf = bytearray(MIB * 1024 * 1024)
n = 0
while True:
    n = (n + 1) & 255
    for offset in range(0, len(buf), 4096):
        buf[offset] = n
"""
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$")
ET.register_namespace("vqual", VQUAL_NS)


def throwaway_name(run_id: str, purpose: str) -> str:
    """``vqual-tmp-<run id>-<purpose>``: the name of a run's throwaway guest."""
    if not _SAFE_RUN_ID.match(run_id):
        raise PlatformError(f"run id {run_id!r} is not a safe domain name part")
    return f"{THROWAWAY_PREFIX}{run_id}-{purpose}"


# --- the tag --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrowawayTag:
    """What the vqual tag of a throwaway domain says."""

    run_id: str
    purpose: str
    created: str
    files: tuple[str, ...] = ()


def _tag_element(root: ET.Element) -> ET.Element | None:
    return root.find(f"metadata/{{{VQUAL_NS}}}{TAG}")


def tag_of(xml: str) -> ThrowawayTag | None:
    """The vqual throwaway tag in a domain XML, or None (not a vqual throwaway)."""
    element = _tag_element(ET.fromstring(xml))
    if element is None:
        return None
    return ThrowawayTag(
        run_id=element.get("run-id", ""),
        purpose=element.get("purpose", ""),
        created=element.get("created", ""),
        files=tuple(
            f.get("path", "") for f in element.findall(f"{{{VQUAL_NS}}}file") if f.get("path")
        ),
    )


def with_tag(xml: str, tag: ThrowawayTag) -> str:
    """``xml`` with its vqual throwaway tag set to ``tag`` (replacing any earlier one)."""
    root = ET.fromstring(xml)
    metadata = root.find("metadata")
    if metadata is None:
        metadata = ET.SubElement(root, "metadata")
    old = _tag_element(root)
    if old is not None:
        metadata.remove(old)
    element = ET.SubElement(
        metadata,
        f"{{{VQUAL_NS}}}{TAG}",
        {"run-id": tag.run_id, "purpose": tag.purpose, "created": tag.created},
    )
    for path in tag.files:
        ET.SubElement(element, f"{{{VQUAL_NS}}}file", {"path": path})
    return ET.tostring(root, "unicode")


_QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
_HOSTFWD = re.compile(r",hostfwd=[^,]*")


# QEMU gives a NIC without ``mac=`` the address 52:54:00:12:34:56 (the last byte counted up
# per NIC), so every clone of a template without one would share it.
QEMU_DEFAULT_MAC = "52:54:00:12:34:56"


def new_mac() -> str:
    """A random MAC in QEMU/libvirt's locally administered range 52:54:00, never QEMU's default."""
    while True:
        mac = "52:54:00:" + ":".join(f"{b:02x}" for b in os.urandom(3))
        if mac != QEMU_DEFAULT_MAC:
            return mac


def _nic_args(root: ET.Element) -> list[ET.Element]:
    """``<qemu:arg>`` values that add a network device (``-device ...,netdev=...``)."""
    return [a for a in root.iter(f"{{{_QEMU_NS}}}arg") if "netdev=" in a.get("value", "")]


def configured_macs(xml: str) -> list[str | None]:
    """The MAC of every NIC in a domain XML, in order; None where none is configured.

    NICs are libvirt ``<interface>`` elements and NIC devices passed as QEMU command line
    arguments (the lab's user-mode network, which libvirt 9.0 cannot forward ports for).
    """
    root = ET.fromstring(xml)
    macs: list[str | None] = []
    for iface in root.findall("devices/interface"):
        mac = iface.find("mac")
        macs.append(mac.get("address") if mac is not None else None)
    for arg in _nic_args(root):
        found = re.search(r"(?:^|,)mac=([0-9A-Fa-f:]{17})", arg.get("value", ""))
        macs.append(found.group(1).lower() if found else None)
    return macs


def effective_macs(xml: str) -> list[str]:
    """MACs the NICs get: the configured one, else QEMU's default (counted up per NIC)."""
    out: list[str] = []
    for index, mac in enumerate(configured_macs(xml)):
        out.append(mac or QEMU_DEFAULT_MAC[:-2] + f"{0x56 + index:02x}")
    return out


def throwaway_xml(
    template_xml: str, name: str, disk_path: str, tag: ThrowawayTag, *, mac: str | None = None
) -> str:
    """A throwaway guest's XML from its template's.

    New name, no UUID (libvirt makes one), the first disk replaced by the qcow2 overlay at
    ``disk_path``, no console log files (the template's would be shared), QEMU port forwards
    removed (they would clash with the template's), and the vqual tag. With ``mac``, the
    NICs get it (counted up in the last byte per NIC) instead of the template's.
    """
    ET.register_namespace("qemu", _QEMU_NS)
    root = ET.fromstring(template_xml)
    if mac is not None:
        head, last = mac[:-2], int(mac[-2:], 16)
        macs = iter(f"{head}{(last + i) & 0xFF:02x}" for i in itertools.count())
        for iface in root.findall("devices/interface"):
            for old in iface.findall("mac"):
                iface.remove(old)
            ET.SubElement(iface, "mac", {"address": next(macs)})
        for arg in _nic_args(root):
            value = re.sub(r",mac=[^,]*", "", arg.get("value", ""))
            arg.set("value", f"{value},mac={next(macs)}")
    for child in ("uuid", "title", "description"):
        element = root.find(child)
        if element is not None:
            root.remove(element)
    name_el = root.find("name")
    if name_el is None:
        raise PlatformError("template XML has no <name>")
    name_el.text = name
    disk = next(
        (d for d in root.findall("devices/disk") if d.get("device", "disk") == "disk"), None
    )
    if disk is None:
        raise PlatformError("template has no disk to clone")
    disk.set("type", "file")
    for sub in list(disk):
        if sub.tag in ("source", "backingStore"):
            disk.remove(sub)
    driver = disk.find("driver")
    if driver is None:
        driver = ET.SubElement(disk, "driver", {"name": "qemu"})
    driver.set("type", "qcow2")
    ET.SubElement(disk, "source", {"file": disk_path})
    for device in root.findall("devices/*"):
        for log in device.findall("log"):
            device.remove(log)
    for arg in root.iter(f"{{{_QEMU_NS}}}arg"):
        value = arg.get("value", "")
        if "hostfwd=" in value:
            arg.set("value", _HOSTFWD.sub("", value))
    return with_tag(ET.tostring(root, "unicode"), tag)


# --- files through libvirt's storage API -----------------------------------------------------


@contextmanager
def dir_pool(platform: LibvirtPlatform, directory: str) -> Iterator[libvirt.virStoragePool]:
    """A storage pool on ``directory``: an existing one, else a transient one for the block.

    The controller may not see the host's file system; libvirt's storage API makes and
    deletes files there. A transient pool leaves nothing defined when it is destroyed.
    """
    conn = platform.conn
    directory = directory.rstrip("/")
    for pool in platform._call("list", "storage pools", conn.listAllStoragePools, 0):
        target = ET.fromstring(pool.XMLDesc(0)).findtext("target/path") or ""
        if target.rstrip("/") == directory and pool.isActive():
            pool.refresh(0)
            yield pool
            return
    name = f"vqual-tmp-pool-{os.getpid()}-{os.urandom(3).hex()}"
    pool_xml = (
        f"<pool type='dir'><name>{name}</name><target><path>{directory}</path></target></pool>"
    )
    pool = platform._call("create pool on", directory, conn.storagePoolCreateXML, pool_xml, 0)
    try:
        yield pool
    finally:
        try:
            pool.destroy()
        except libvirt.libvirtError:
            pass  # a transient pool that is already gone is what we wanted


def _delete_files(platform: LibvirtPlatform, paths: tuple[str, ...]) -> list[str]:
    """Delete files through a pool on their directory; the ones that could not be deleted."""
    left: list[str] = []
    for directory in sorted({os.path.dirname(p) for p in paths}):
        try:
            with dir_pool(platform, directory) as pool:
                for path in (p for p in paths if os.path.dirname(p) == directory):
                    try:
                        pool.storageVolLookupByName(os.path.basename(path)).delete(0)
                    except libvirt.libvirtError as exc:
                        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                            left.append(path)
        except PlatformError:
            left.extend(p for p in paths if os.path.dirname(p) == directory)
    return left


# --- the guest agent -------------------------------------------------------------------------


#: libvirt's errors for an agent that does not answer (or is not connected) at the moment,
#: as opposed to an answer that is an error (a file that is not there).
_AGENT_SILENT = frozenset({libvirt.VIR_ERR_AGENT_UNRESPONSIVE, libvirt.VIR_ERR_AGENT_UNSYNCED})


class AgentNotAnswering(PlatformError):
    """The guest agent did not answer (libvirt: "Guest agent is not responding")."""


class Agent:
    """The QEMU guest agent of a running domain, through libvirt (no guest network)."""

    def __init__(self, dom: libvirt.virDomain) -> None:
        self.dom = dom

    def command(
        self, execute: str, arguments: dict[str, Any] | None = None, timeout: int = 10
    ) -> Any:
        request: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            request["arguments"] = arguments
        try:
            text = libvirt_qemu.qemuAgentCommand(self.dom, json.dumps(request), timeout, 0)
        except libvirt.libvirtError as exc:
            error = AgentNotAnswering if exc.get_error_code() in _AGENT_SILENT else PlatformError
            raise error(
                f"guest agent {execute}: {exc.get_error_message()}", where=self.dom.name()
            ) from None
        return json.loads(text).get("return")

    def wait(self, timeout: float) -> float:
        """Wait until the agent answers ``guest-ping``; the seconds it took."""
        started = time.monotonic()
        last = ""
        while True:
            try:
                self.command("guest-ping", timeout=5)
                return time.monotonic() - started
            except PlatformError as exc:
                last = exc.one_line()
                if time.monotonic() - started > timeout:
                    raise PlatformError(
                        f"guest agent did not answer within {timeout:.0f} s "
                        f"(waited {time.monotonic() - started:.1f} s; last: {last})",
                        where=self.dom.name(),
                    ) from None
                time.sleep(1.0)

    def read_when_answering(self, path: str, bound: float = AGENT_STALL_S) -> tuple[bytes, float]:
        """:meth:`read`, and if the agent does not answer, wait for it (``guest-ping``, at
        most ``bound`` seconds in all) and read again. Only for reads: a read repeated after
        a lost answer changes nothing in the guest. Returns the data and the seconds spent
        waiting for the agent (0.0 when it answered at once)."""
        started = time.monotonic()
        waited = 0.0
        while True:
            try:
                return self.read(path), waited
            except AgentNotAnswering:
                left = bound - (time.monotonic() - started)
                if left <= 0:
                    raise
                waited += self.wait(left)

    def run(self, argv: list[str], timeout: float = 60.0) -> tuple[int, bytes]:
        """Run ``argv`` in the guest; exit code and stdout."""
        pid = self.command(
            "guest-exec", {"path": argv[0], "arg": argv[1:], "capture-output": True}
        )["pid"]
        deadline = time.monotonic() + timeout
        while True:
            status = self.command("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                return int(status.get("exitcode", -1)), base64.b64decode(status.get("out-data", ""))
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"{argv[0]} still running after {timeout:.0f} s", where=self.dom.name()
                )
            time.sleep(0.1)

    def read(self, path: str) -> bytes:
        handle = self.command("guest-file-open", {"path": path, "mode": "r"})
        chunks: list[bytes] = []
        try:
            while True:
                part = self.command("guest-file-read", {"handle": handle, "count": 1 << 16})
                data = base64.b64decode(part.get("buf-b64", ""))
                chunks.append(data)
                if part.get("eof") or not data:
                    break
        finally:
            self.command("guest-file-close", {"handle": handle})
        return b"".join(chunks)

    def write(self, path: str, data: bytes) -> None:
        handle = self.command("guest-file-open", {"path": path, "mode": "w"})
        try:
            self.command(
                "guest-file-write", {"handle": handle, "buf-b64": base64.b64encode(data).decode()}
            )
            self.command("guest-file-flush", {"handle": handle})
        finally:
            self.command("guest-file-close", {"handle": handle})


# --- heartbeat arithmetic ----------------------------------------------------------------------


@dataclass(frozen=True)
class Beat:
    counter: int
    mono_ns: int


def parse_heartbeat(data: bytes) -> list[Beat]:
    """Beats of a heartbeat file; a torn last line is dropped."""
    beats: list[Beat] = []
    # Only whole lines: the last one is torn unless the file ends with a newline.
    complete = data[: data.rfind(b"\n") + 1]
    for line in complete.decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            beats.append(Beat(int(parts[0]), int(parts[1])))
    return beats


def max_gap_s(beats: list[Beat], since_ns: int | None = None) -> float:
    """The largest gap between consecutive beats (guest clock), from ``since_ns`` on."""
    window = [b for b in beats if since_ns is None or b.mono_ns >= since_ns]
    gaps = [(b.mono_ns - a.mono_ns) / 1e9 for a, b in itertools.pairwise(window)]
    return max(gaps) if gaps else 0.0


def frozen_s(
    host_before: float, host_after: float, guest_before_ns: int, guest_after_ns: int
) -> float:
    """Host seconds between two reads minus guest seconds between the last beats read.

    Positive when the guest's clock stood still (paused) while the host's ran on.
    """
    return (host_after - host_before) - (guest_after_ns - guest_before_ns) / 1e9


# --- the OQ runs ----------------------------------------------------------------------------


@dataclass
class GuestOqResult:
    """Observation parts of a guest OQ run: its value, actions and a not-executed reason."""

    value: dict[str, Any]
    actions: list[dict[str, Any]] = field(default_factory=list)
    not_executed: str | None = None


def _cannot_run_guests(platform: LibvirtPlatform, what: str) -> str | None:
    """Why no guest OS can run here (libvirt's test driver), or None."""
    if platform.about().product.lower() == "test":
        return NotSupported(
            what,
            "libvirt's test driver runs no guest OS: no guest agent to read a heartbeat or "
            "marker through, so nothing is measured",
            where=platform.endpoint,
        ).one_line()
    return None


def _require_template(platform: LibvirtPlatform, template: str) -> None:
    """A configured template that is not there is a platform error, not a skipped test."""
    if not platform.vm_exists(template):
        raise PlatformError(f"template domain {template} not found", where=platform.endpoint)


def _template_disk(platform: LibvirtPlatform, template: str) -> tuple[str, str, str]:
    """Template XML (inactive), its first disk's path and format."""
    xml = platform.vm_xml(template, inactive=True)
    root = ET.fromstring(xml)
    for disk in root.findall("devices/disk"):
        if disk.get("device", "disk") != "disk":
            continue
        source = disk.find("source")
        driver = disk.find("driver")
        path = source.get("file") if source is not None else None
        if path:
            return xml, path, (driver.get("type") if driver is not None else None) or "raw"
    raise PlatformError(f"template {template} has no file disk to clone", where=platform.endpoint)


class _Recorder:
    """Collects action records with before/after state and times."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.actions: list[dict[str, Any]] = []
        #: the step that failed, for the run's reason
        self.failed: str | None = None

    def reason(self, exc: PlatformError) -> str:
        """The run's reason for a failure: the failed step's name and its error."""
        return f"{self.failed}: {exc.one_line()}" if self.failed else exc.one_line()

    def step(
        self, name: str, before: dict[str, Any], fn: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        started = utc_stamp()
        try:
            after = fn()
        except PlatformError as exc:
            self.failed = name
            self.actions.append(
                {
                    "name": name,
                    "target": self.target,
                    "before": before,
                    "after": {"error": exc.one_line()},
                    "verdict": "fail",
                    "reason": exc.one_line(),
                    "started": started,
                    "finished": utc_stamp(),
                }
            )
            raise
        self.actions.append(
            {
                "name": name,
                "target": self.target,
                "before": before,
                "after": after,
                "verdict": "pass",
                "reason": None,
                "started": started,
                "finished": utc_stamp(),
            }
        )
        return after


def _power(platform: LibvirtPlatform, name: str) -> str:
    return platform.vm(name).power_state if platform.vm_exists(name) else "absent"


def _clone(
    platform: LibvirtPlatform,
    rec: _Recorder,
    template: str,
    name: str,
    run_id: str,
    purpose: str,
) -> ThrowawayTag:
    """Clone from the template: a tagged definition and a qcow2 overlay on its disk.

    Recorded as ``vm.clone``: template and its UUID and MACs before, the clone's UUID, MACs,
    overlay and backing file after, read back from the platform.
    """
    xml, base, base_format = _template_disk(platform, template)
    directory = os.path.dirname(base)
    overlay = f"{directory}/{name}.qcow2"
    tag = ThrowawayTag(run_id, purpose, utc_stamp(), (overlay,))
    template_uuid = ET.fromstring(xml).findtext("uuid")

    def make() -> dict[str, Any]:
        with dir_pool(platform, directory) as pool:
            info = platform._call(
                "read disk", base, pool.storageVolLookupByName, os.path.basename(base)
            ).info()
            vol_xml = (
                f"<volume><name>{name}.qcow2</name><capacity unit='bytes'>{info[1]}"
                "</capacity><target><format type='qcow2'/></target><backingStore>"
                f"<path>{base}</path><format type='{base_format}'/></backingStore></volume>"
            )
            # Tag first, file second: a crash between the two leaves a tag naming a file
            # that is not there (harmless), never a file no tag names.
            platform._call(
                "define vm",
                name,
                platform.conn.defineXML,
                throwaway_xml(xml, name, overlay, tag, mac=new_mac()),
            )
            volume = platform._call("create overlay", overlay, pool.createXML, vol_xml, 0)
            backing = ET.fromstring(volume.XMLDesc(0)).findtext("backingStore/path")
        dom = platform._domain(name)
        clone_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        return {
            "exists": True,
            "power_state": _power(platform, name),
            "template": template,
            "uuid": dom.UUIDString(),
            "macs": effective_macs(clone_xml),
            "disk": overlay,
            "disk_format": "qcow2",
            "backing": backing or base,
            "tag": {"run_id": run_id, "purpose": purpose},
        }

    rec.step(
        "vm.clone",
        {
            "exists": False,
            "template": template,
            "template_uuid": template_uuid,
            "template_macs": effective_macs(xml),
            "template_disk": base,
        },
        make,
    )
    return tag


def _boot(
    platform: LibvirtPlatform, rec: _Recorder, name: str, boot_timeout: float
) -> tuple[Agent, dict[str, Any]]:
    """Start the guest and wait for its agent (``vm.start``); after: state, wait, boot id."""

    def boot() -> dict[str, Any]:
        dom = platform._domain(name)
        platform._refuse_if_not_placeable("start", name, platform.vm(name).placement)
        platform._call("start vm", name, dom.create)
        agent = Agent(dom)
        waited = agent.wait(boot_timeout)
        return {
            "power_state": _power(platform, name),
            "agent": "answers",
            "agent_after_s": round(waited, 1),
            "boot_id": _boot_id(agent),
        }

    after = rec.step("vm.start", {"power_state": _power(platform, name)}, boot)
    return Agent(platform._domain(name)), after


def _clone_and_boot(
    platform: LibvirtPlatform,
    rec: _Recorder,
    template: str,
    name: str,
    run_id: str,
    purpose: str,
    boot_timeout: float,
) -> tuple[Agent, ThrowawayTag]:
    """Overlay on the template's disk, define tagged, start, wait for the agent."""
    tag = _clone(platform, rec, template, name, run_id, purpose)
    agent, _after = _boot(platform, rec, name, boot_timeout)
    return agent, tag


def _remove(platform: LibvirtPlatform, name: str) -> list[str]:
    """Destroy, undefine and delete the files a throwaway's tag names; files left behind."""
    if not platform.vm_exists(name):
        return []
    dom = platform._domain(name)
    tag = tag_of(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    if tag is None:
        raise PlatformError(f"{name} carries no vqual tag: not removed", where=platform.endpoint)
    if dom.isActive():
        platform._call("destroy vm", name, dom.destroy)
    platform._call(
        "undefine vm",
        name,
        dom.undefineFlags,
        libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE,
    )
    return _delete_files(platform, tag.files)


def _cleanup_action(
    rec: _Recorder, platforms: list[LibvirtPlatform], names: list[str]
) -> dict[str, Any]:
    left: list[str] = []
    errors: list[str] = []
    started = utc_stamp()
    before = {n: _safe_power(platforms, n) for n in names}
    if all(state == "absent" for state in before.values()):
        return {"verdict": "pass", "reason": None}  # nothing was made: nothing to record
    for platform in platforms:
        for name in names:
            try:
                left += _remove(platform, name)
            except PlatformError as exc:
                errors.append(exc.one_line())
    after = {n: _safe_power(platforms, n) for n in names}
    if left:
        errors.append(f"files left: {', '.join(left)}")
    verdict = "fail" if errors else "pass"
    reason = "; ".join(errors) or None
    rec.actions.append(
        {
            "name": "vm.cleanup",
            "target": rec.target,
            "before": before,
            "after": after,
            "verdict": verdict,
            "reason": reason,
            "started": started,
            "finished": utc_stamp(),
        }
    )
    return {"verdict": verdict, "reason": reason}


def _safe_power(platforms: list[LibvirtPlatform], name: str) -> str:
    for platform in platforms:
        try:
            if platform.vm_exists(name):
                return f"{platform.vm(name).power_state} on {platform.endpoint}"
        except PlatformError:
            continue
    return "absent"


def _boot_id(agent: Agent) -> str:
    return agent.read_when_answering("/proc/sys/kernel/random/boot_id")[0].decode().strip()




# --- cleanup by tag -------------------------------------------------------------------------


@dataclass
class CleanupReport:
    """What :func:`cleanup_run` found and removed on one libvirt host."""

    endpoint: str
    removed: list[str] = field(default_factory=list)
    files_left: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def tagged_domains(
    platform: LibvirtPlatform, run_id: str | None = None
) -> list[tuple[str, ThrowawayTag]]:
    """Domains carrying the vqual throwaway tag (of ``run_id``, or of any run)."""
    found: list[tuple[str, ThrowawayTag]] = []
    for dom in platform._call("list", "domains", platform.conn.listAllDomains, 0):
        try:
            tag = tag_of(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        except libvirt.libvirtError:
            continue  # gone between list and read
        if tag is not None and (run_id is None or tag.run_id == run_id):
            found.append((dom.name(), tag))
    return sorted(found, key=lambda item: item[0])


def cleanup_run(uri: str, run_id: str) -> CleanupReport:
    """Remove every throwaway guest tagged with ``run_id`` on one host, with its files.

    Only tagged domains are touched; a domain whose name looks like a throwaway but carries
    no tag is left alone. Never raises for a platform failure: errors are in the report.
    """
    report = CleanupReport(endpoint=redact_endpoint(uri))
    try:
        with LibvirtPlatform(uri) as platform:
            report.endpoint = platform.endpoint
            # The restored guest's disk is the backup another tag also names: remove guests
            # first, files after, so a disk is not deleted under a guest that still runs.
            tagged = tagged_domains(platform, run_id)
            files: list[str] = []
            for name, tag in tagged:
                try:
                    dom = platform._domain(name)
                    if dom.isActive():
                        platform._call("destroy vm", name, dom.destroy)
                    platform._call(
                        "undefine vm",
                        name,
                        dom.undefineFlags,
                        libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                        | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE,
                    )
                    report.removed.append(name)
                    files += [f for f in tag.files if f not in files]
                except PlatformError as exc:
                    report.errors.append(exc.one_line())
            report.files_left = _delete_files(platform, tuple(files))
    except PlatformError as exc:
        report.errors.append(exc.one_line())
    return report
