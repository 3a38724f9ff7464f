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
from qualification.platforms.base import PAUSED, RUNNING, STOPPED, STOPPING, redact_endpoint
from qualification.platforms.libvirt.adapter import VQUAL_NS, LibvirtPlatform
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


@dataclass
class _Migration:
    """What the steps of one migration heartbeat run share."""

    platform: LibvirtPlatform
    dest: LibvirtPlatform
    rec: _Recorder
    name: str
    dest_endpoint: str
    settle_s: float
    #: the observation's value; the steps add their measurements to it as they take them
    value: dict[str, Any]


@dataclass
class _HeartbeatRead:
    """One read of the heartbeat: the host's clock at the read, the beats, the boot id."""

    host: float = 0.0
    beats: list[Beat] = field(default_factory=list)
    boot: str = ""


def run_migration_heartbeat(
    platform: LibvirtPlatform,
    destination: str,
    *,
    template: str,
    run_id: str,
    unsafe: bool = False,
    boot_timeout: float = BOOT_TIMEOUT_S,
    settle_s: float = 2.0,
    load_mib: int = 0,
) -> GuestOqResult:
    """Live-migrate a throwaway guest to ``destination`` and measure the interruption.

    Args:
        platform: session on the source host.
        destination: libvirt URI of the destination host.
        template: defined domain whose disk the throwaway overlays (read only).
        run_id: the run's id; names and tags the throwaway guest.
        unsafe: pass ``VIR_MIGRATE_UNSAFE`` (storage shared in a way libvirt does not
            recognise, e.g. a bind mount); a site decision, off by default.
        boot_timeout: seconds to wait for the guest agent after start.
        settle_s: heartbeat seconds recorded before and after the migration.
        load_mib: if > 0, a process in the guest writes to every page of this many MiB
            over and over during the migration (OQ-04 "under load": pages keep getting
            dirty while memory is copied).
    """
    name = throwaway_name(run_id, "mig")
    rec = _Recorder(name)
    dest_endpoint = redact_endpoint(destination)
    value: dict[str, Any] = {
        "vm": name,
        "source": platform.endpoint,
        "destination": dest_endpoint,
        "verdict": "fail",
        "reason": None,
    }
    not_executed = _cannot_run_guests(platform, "migration heartbeat")
    if not_executed is not None:
        value.update({"verdict": "not-executed", "reason": not_executed})
        return GuestOqResult(value=value, not_executed=not_executed)
    # Before anything is made: a missing template or an unreachable destination is a
    # platform error of the whole test (error verdicts), raised to the probe.
    _require_template(platform, template)
    dest = LibvirtPlatform(destination, state_dir=platform._state_dir)
    run = _Migration(platform, dest, rec, name, dest_endpoint, settle_s, value)
    try:
        agent, _tag = _clone_and_boot(platform, rec, template, name, run_id, "mig", boot_timeout)
        value["agent_after_boot_s"] = rec.actions[-1]["after"]["agent_after_s"]
        _migrate_under_heartbeat(run, agent, unsafe, load_mib)
    except NotSupported as exc:
        not_executed = exc.one_line()
        value.update({"verdict": "not-executed", "reason": not_executed})
    except PlatformError as exc:
        value.update({"verdict": "fail", "reason": rec.reason(exc)})
    finally:
        value["cleanup"] = _cleanup_action(rec, [platform, dest], [name])
        dest.close()
    return GuestOqResult(value=value, actions=rec.actions, not_executed=not_executed)


def _migrate_under_heartbeat(run: _Migration, agent: Agent, unsafe: bool, load_mib: int) -> None:
    """Heartbeat (and load) in the booted guest, migrate, read the heartbeat on both sides."""
    rec, value = run.rec, run.value
    rec.step("guest.heartbeat_start", {"heartbeat": None}, lambda: _start_heartbeat(run, agent))
    if load_mib > 0:
        rec.step("guest.load_start", {"load": None}, lambda: _start_load(run, agent, load_mib))
    before = _HeartbeatRead()
    rec.step(
        "guest.heartbeat_read_before",
        {"heartbeat": HEARTBEAT_FILE},
        lambda: _read_heartbeat_before(run, agent, before),
    )
    last_before = before.beats[-1]
    # The same guest's largest gap in the settle time just before the migration (under
    # the same load): what the heartbeat shows without one, to read the interruption
    # against.
    baseline = max_gap_s(before.beats, since_ns=last_before.mono_ns - int(run.settle_s * 1e9))
    value["baseline_gap_s"] = round(baseline, 3)
    src_host = run.platform.hostname()
    after = rec.step(
        "vm.migrate_live",
        {"host": src_host, "endpoint": run.platform.endpoint, "power_state": RUNNING},
        lambda: _migrate_guest(run, unsafe),
    )
    dest_agent = Agent(run.dest._domain(run.name))
    read = _HeartbeatRead()
    rec.step(
        "guest.heartbeat_read_after",
        {"heartbeat": HEARTBEAT_FILE},
        lambda: _read_heartbeat_after(run, dest_agent, read),
    )
    beats = read.beats
    window = [b for b in beats if b.mono_ns >= last_before.mono_ns]
    gap = max_gap_s(beats, since_ns=last_before.mono_ns)
    frozen = frozen_s(before.host, read.host, last_before.mono_ns, beats[-1].mono_ns)
    interruption = max(gap, frozen)
    problems = []
    if after["power_state"] != RUNNING:
        problems.append(f"guest is {after['power_state']} on the destination")
    if after["on_source"]:
        problems.append("guest is still defined on the source")
    if read.boot != before.boot:
        problems.append("guest rebooted (boot id changed): not a live migration")
    if not window or window[-1].counter <= last_before.counter:
        problems.append("heartbeat did not advance after the migration")
    value.update(
        {
            "verdict": "fail" if problems else "pass",
            "reason": "; ".join(problems) or None,
            "interruption_s": round(interruption, 3),
            "max_gap_s": round(gap, 3),
            "guest_frozen_s": round(frozen, 3),
            "baseline_gap_s": round(baseline, 3),
            "migration_s": value["migration_s"],
            "beats_in_window": len(window),
            "same_boot": read.boot == before.boot,
            "resolution_s": HEARTBEAT_PERIOD_S,
            "load_mib": load_mib,
        }
    )


def _start_heartbeat(run: _Migration, agent: Agent) -> dict[str, Any]:
    """``guest.heartbeat_start``: the script started, and settle_s of beats written."""
    agent.write(HEARTBEAT_SCRIPT, _HEARTBEAT_PY.encode())
    code, _out = agent.run(
        ["/bin/sh", "-c", f"python3 {HEARTBEAT_SCRIPT} </dev/null >/dev/null 2>&1 &"]
    )
    if code != 0:
        raise PlatformError(f"heartbeat did not start (exit {code})", where=run.name)
    # Five beats, then settle_s of them by the guest's own clock: the window the
    # baseline gap is read from (host time would give a starved guest fewer beats).
    beats, took = _poll_beats(
        agent,
        "heartbeat wrote fewer than 5 beats",
        HEARTBEAT_START_S,
        run.name,
        lambda b: len(b) >= 5,
    )
    first = beats[0].mono_ns
    _poll_beats(
        agent,
        f"heartbeat did not cover {run.settle_s:g} s",
        HEARTBEAT_START_S,
        run.name,
        lambda b: b[-1].mono_ns - first >= run.settle_s * 1e9,
    )
    run.value["heartbeat_start_s"] = round(took, 1)
    return {
        "heartbeat": HEARTBEAT_FILE,
        "period_s": HEARTBEAT_PERIOD_S,
        "first_beats_after_s": round(took, 1),
    }


def _start_load(run: _Migration, agent: Agent, load_mib: int) -> dict[str, Any]:
    """``guest.load_start``: the memory load running, and settle_s of beats under it."""
    name, settle_s = run.name, run.settle_s
    agent.write(LOAD_SCRIPT, _LOAD_PY.replace("MIB", str(int(load_mib))).encode())
    code, _out = agent.run(["/bin/sh", "-c", f"python3 {LOAD_SCRIPT} </dev/null >/dev/null 2>&1 &"])
    if code != 0:
        raise PlatformError(f"memory load did not start (exit {code})", where=name)
    t0 = time.monotonic()
    while True:
        code, out = agent.run(["/bin/sh", "-c", f"pgrep -f {LOAD_SCRIPT} || true"])
        if out.strip():
            break
        if time.monotonic() - t0 > LOAD_START_S:
            raise PlatformError(
                f"memory load process not running after {LOAD_START_S:.0f} s",
                where=name,
            )
        time.sleep(0.2)
    running_after = time.monotonic() - t0
    # settle_s of heartbeat under the load (guest clock): the baseline window.
    since = _poll_beats(agent, "heartbeat stopped", AGENT_STALL_S, name, lambda b: True)[0][
        -1
    ].mono_ns
    _poll_beats(
        agent,
        f"heartbeat did not cover {settle_s:g} s under the load",
        AGENT_STALL_S,
        name,
        lambda b: b[-1].mono_ns - since >= settle_s * 1e9,
    )
    run.value["load_running_after_s"] = round(running_after, 1)
    return {
        "load": "dirtying memory",
        "load_mib": load_mib,
        "running_after_s": round(running_after, 1),
    }


def _read_heartbeat_before(run: _Migration, agent: Agent, into: _HeartbeatRead) -> dict[str, Any]:
    """``guest.heartbeat_read_before``: the beats and boot id before the migration."""
    # Reads only, so they may wait for an agent the load keeps busy.
    data, waited = agent.read_when_answering(HEARTBEAT_FILE)
    into.host = time.monotonic()
    into.beats = parse_heartbeat(data)
    into.boot = _boot_id(agent)
    if not into.beats:
        raise PlatformError("no heartbeat read before the migration", where=run.name)
    return {
        "beats": len(into.beats),
        "last_counter": into.beats[-1].counter,
        "boot_id": into.boot,
        "agent_waited_s": round(waited, 1),
    }


def _migrate_guest(run: _Migration, unsafe: bool) -> dict[str, Any]:
    """``vm.migrate_live``: the guest moved to the destination; where it runs after."""
    platform, dest, name = run.platform, run.dest, run.name
    flags = (
        libvirt.VIR_MIGRATE_LIVE
        | libvirt.VIR_MIGRATE_PERSIST_DEST
        | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    )
    if unsafe:
        flags |= libvirt.VIR_MIGRATE_UNSAFE
    dom = platform._domain(name)
    t0 = time.monotonic()
    platform._call(
        "migrate",
        f"{name} to {run.dest_endpoint}",
        dom.migrate,
        dest.conn,
        flags,
        None,
        None,
        0,
    )
    run.value["migration_s"] = round(time.monotonic() - t0, 3)
    return {
        "host": dest.hostname(),
        "endpoint": run.dest_endpoint,
        "power_state": _power(dest, name),
        "on_source": platform.vm_exists(name),
        "migration_s": run.value["migration_s"],
    }


def _read_heartbeat_after(
    run: _Migration, dest_agent: Agent, into: _HeartbeatRead
) -> dict[str, Any]:
    """``guest.heartbeat_read_after``: settle_s of beats on the destination, and the boot id."""
    name, settle_s = run.name, run.settle_s
    # The agent may not answer for a while after the switch-over on a busy machine:
    # wait for it (bounded), then for settle_s of heartbeat on the destination by the
    # guest's clock, so the window after the migration is as long as the one before.
    waited = dest_agent.wait(AGENT_STALL_S)
    run.value["agent_after_migration_s"] = round(waited, 1)
    first, more = dest_agent.read_when_answering(HEARTBEAT_FILE)
    seen = parse_heartbeat(first)
    if not seen:
        raise PlatformError("no heartbeat read after the migration", where=name)
    since = seen[-1].mono_ns
    got, _took = _poll_beats(
        dest_agent,
        f"heartbeat did not advance {settle_s:g} s after the migration",
        AGENT_STALL_S,
        name,
        lambda b: b[-1].mono_ns - since >= settle_s * 1e9,
    )
    into.host = time.monotonic()
    into.beats = got
    into.boot = _boot_id(dest_agent)
    return {
        "beats": len(got),
        "last_counter": got[-1].counter,
        "boot_id": into.boot,
        "agent_after_s": round(waited, 1),
        "agent_waited_s": round(more, 1),
    }


def _poll_beats(
    agent: Agent,
    what: str,
    bound: float,
    where: str,
    done: Callable[[list[Beat]], bool],
) -> tuple[list[Beat], float]:
    """Read the heartbeat until ``done(beats)`` holds (beats never empty); the beats and the
    seconds it took. A file not there yet reads as no beats; an agent that stops answering
    is waited for, all within ``bound`` seconds.

    Raises:
        PlatformError: ``what`` (and the beats seen) when ``bound`` passed first.
    """
    started = time.monotonic()
    beats: list[Beat] = []
    while True:
        left = bound - (time.monotonic() - started)
        try:
            data, _waited = agent.read_when_answering(HEARTBEAT_FILE, max(left, 0.0))
            beats = parse_heartbeat(data)
        except AgentNotAnswering:
            raise  # read_when_answering waited the bound out already
        except PlatformError:
            if time.monotonic() - started > bound:
                raise
            beats = []  # the script has not created its file yet
        if beats and done(beats):
            return beats, time.monotonic() - started
        if time.monotonic() - started > bound:
            raise PlatformError(
                f"{what} within {bound:.0f} s ({len(beats)} beats read)", where=where
            )
        time.sleep(HEARTBEAT_PERIOD_S * 2)


def _wait_job(dom: libvirt.virDomain, timeout: float) -> dict[str, Any]:
    """Wait for the domain's backup job to end; its completed-job statistics."""
    deadline = time.monotonic() + timeout
    while dom.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE:
        if time.monotonic() > deadline:
            dom.abortJob()
            raise PlatformError(f"backup still running after {timeout:.0f} s", where=dom.name())
        time.sleep(0.2)
    stats: dict[str, Any] = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    return stats


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


# --- power cycle, snapshot, clone and maintenance on one throwaway guest --------------------

CYCLE_PARTS = ("clone", "power_cycle", "snapshot", "maintenance")
_NOT_REACHED = "not reached: an earlier step of the run failed"


def _wait_stopped(platform: LibvirtPlatform, name: str, timeout: float) -> float:
    """Wait until the domain is shut off; the seconds it took."""
    started = time.monotonic()
    while _power(platform, name) != STOPPED:
        if time.monotonic() - started > timeout:
            raise PlatformError(f"still {_power(platform, name)} after {timeout:.0f} s", where=name)
        time.sleep(0.2)
    return time.monotonic() - started


def _running_elsewhere(platform: LibvirtPlatform, own: set[str]) -> list[str]:
    """Guests running on the host that are not this run's own throwaway guests."""
    return sorted(
        v.name
        for v in platform.vms()
        if v.power_state in (RUNNING, PAUSED, STOPPING) and v.name not in own
    )


def _live_migrate(
    src: LibvirtPlatform, dst: LibvirtPlatform, name: str, unsafe: bool
) -> dict[str, Any]:
    """Live-migrate ``name`` from ``src`` to ``dst``, honouring the destination's marker."""
    dom = src._domain(name)
    dst._refuse_if_not_placeable("migrate", name, src.vm(name).placement)
    flags = (
        libvirt.VIR_MIGRATE_LIVE
        | libvirt.VIR_MIGRATE_PERSIST_DEST
        | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    )
    if unsafe:
        flags |= libvirt.VIR_MIGRATE_UNSAFE
    t0 = time.monotonic()
    src._call("migrate", f"{name} to {dst.endpoint}", dom.migrate, dst.conn, flags, None, None, 0)
    return {
        "host": dst.hostname(),
        "endpoint": dst.endpoint,
        "power_state": _power(dst, name),
        "on_source": src.vm_exists(name),
        "migration_s": round(time.monotonic() - t0, 3),
    }


@dataclass
class _Cycle:
    """What the parts of one guest cycle run share."""

    platform: LibvirtPlatform
    dest: LibvirtPlatform | None
    rec: _Recorder
    template: str
    name: str
    #: the diskless guest whose start on the marked host must be refused
    probe_vm: str
    run_id: str
    unsafe: bool
    boot_timeout: float
    stop_timeout: float
    #: the observation's value: one entry per part, filled in as the parts run
    value: dict[str, Any]
    #: the part running now: an error is that part's verdict
    current: str = "clone"
    #: the power cycle's problems so far; the hard power off at the end adds its own
    cycle_problems: list[str] = field(default_factory=list)


def run_guest_cycle(
    platform: LibvirtPlatform,
    destination: str | None,
    *,
    template: str,
    run_id: str,
    unsafe: bool = False,
    boot_timeout: float = BOOT_TIMEOUT_S,
    stop_timeout: float = 120.0,
) -> GuestOqResult:
    """Clone, power cycle, snapshot round trip and maintenance round trip on one guest.

    One throwaway guest serves all four parts, one after the other (the lab's VM budget
    allows one throwaway at a time):

    - ``clone``: the throwaway is cloned from the template (``vm.clone``): pass when its UUID
      and every NIC's MAC differ from the template's, the MAC the guest sees is the
      configured one, and its disk is a qcow2 overlay on the template's disk;
    - ``power_cycle``: start (agent answers), graceful shutdown through the agent, start
      (agent answers, new boot id), hard power off, start (agent answers, new boot id);
    - ``snapshot``: marker written through the agent, snapshot with memory (internal, the
      disk is qcow2), marker changed, revert, marker read back: the first value; the
      snapshot deleted;
    - ``maintenance`` (needs ``destination``): the guest is evacuated to the destination
      (live), the source host enters vqual's maintenance mode, migrating the guest back and
      starting a VM there are refused, the host leaves maintenance and the guest migrates
      back. Only this run's guests are moved: a source host running other guests gives
      ``not-executed`` naming them, and nothing is marked.

    Each part's value is ``{verdict, reason, ...}``; a part after a failed step is
    ``not-executed`` (not reached). Every step is an action with state before and after.
    """
    name = throwaway_name(run_id, "cyc")
    rec = _Recorder(name)
    value: dict[str, Any] = {
        "vm": name,
        "template": template,
        "source": platform.endpoint,
        "destination": redact_endpoint(destination) if destination else None,
        **{p: {"verdict": "not-executed", "reason": _NOT_REACHED} for p in CYCLE_PARTS},
    }
    not_executed = _cannot_run_guests(platform, "guest power cycle, snapshot and maintenance")
    if not_executed is not None:
        for part in CYCLE_PARTS:
            value[part] = {"verdict": "not-executed", "reason": not_executed}
        return GuestOqResult(value=value, not_executed=not_executed)
    _require_template(platform, template)
    # Connect before anything is made: an unreachable destination is a platform error.
    dest = LibvirtPlatform(destination, state_dir=platform._state_dir) if destination else None
    cycle = _Cycle(
        platform=platform,
        dest=dest,
        rec=rec,
        template=template,
        name=name,
        probe_vm=throwaway_name(run_id, "mnt"),
        run_id=run_id,
        unsafe=unsafe,
        boot_timeout=boot_timeout,
        stop_timeout=stop_timeout,
        value=value,
    )
    try:
        _run_cycle_parts(cycle)
    except NotSupported as exc:
        value[cycle.current] = {"verdict": "not-executed", "reason": exc.one_line()}
    except PlatformError as exc:
        value[cycle.current] = {
            **value[cycle.current],
            "verdict": "fail",
            "reason": rec.reason(exc),
        }
    finally:
        _end_cycle(cycle)
    failed = [p for p in CYCLE_PARTS if value[p]["verdict"] == "fail"]
    value["verdict"] = "fail" if failed else "pass"
    value["reason"] = "; ".join(f"{p}: {value[p]['reason']}" for p in failed) or None
    return GuestOqResult(value=value, actions=rec.actions, not_executed=None)


def _end_cycle(cycle: _Cycle) -> None:
    """Out of maintenance if this run marked the host; the run's guests removed."""
    platform, dest = cycle.platform, cycle.dest
    # Never leave this run's marker behind: a host left marked refuses every VM.
    if _marked_by(platform, cycle.run_id):
        try:
            platform.exit_maintenance()
        except PlatformError as exc:
            cycle.value["maintenance"]["reason"] = f"left in maintenance: {exc.one_line()}"
    where = [platform] + ([dest] if dest is not None else [])
    cycle.value["cleanup"] = _cleanup_action(cycle.rec, where, [cycle.probe_vm, cycle.name])
    if dest is not None:
        dest.close()


def _run_cycle_parts(cycle: _Cycle) -> None:
    """The parts in order; ``cycle.current`` names the one running, for its verdict."""
    cycle.current = "clone"
    boot1 = _cycle_clone(cycle)
    cycle.current = "power_cycle"
    agent, boot2 = _cycle_restart(cycle, boot1)
    cycle.current = "snapshot"
    _cycle_snapshot(cycle, agent, boot2["boot_id"])
    cycle.current = "maintenance"
    _cycle_maintenance(cycle, boot2["boot_id"])
    # The power cycle's last step: a hard power off where the guest runs now.
    cycle.current = "power_cycle"
    _cycle_power_off(cycle)


def _cycle_clone(cycle: _Cycle) -> dict[str, Any]:
    """Clone and first start; the ``clone`` part judged. The start's ``vm.start`` after."""
    platform, rec = cycle.platform, cycle.rec
    _clone(platform, rec, cycle.template, cycle.name, cycle.run_id, "cyc")
    clone = rec.actions[-1]
    agent, boot1 = _boot(platform, rec, cycle.name, cycle.boot_timeout)
    seen = _guest_macs(agent)
    problems = []
    if clone["after"]["uuid"] == clone["before"]["template_uuid"]:
        problems.append("clone has the template's UUID")
    shared = sorted(set(clone["after"]["macs"]) & set(clone["before"]["template_macs"]))
    if shared:
        problems.append(f"clone shares MAC {', '.join(shared)} with the template")
    if not set(clone["after"]["macs"]) <= set(seen):
        problems.append(f"guest sees MACs {seen}, configured {clone['after']['macs']}")
    if clone["after"]["backing"] != clone["before"]["template_disk"]:
        problems.append(f"overlay backing file is {clone['after']['backing']}")
    cycle.value["clone"] = {
        "verdict": "fail" if problems else "pass",
        "reason": "; ".join(problems) or None,
        "template_uuid": clone["before"]["template_uuid"],
        "uuid": clone["after"]["uuid"],
        "template_macs": clone["before"]["template_macs"],
        "macs": clone["after"]["macs"],
        "macs_in_guest": seen,
        "disk": clone["after"]["disk"],
        "backing": clone["after"]["backing"],
    }
    return boot1


def _cycle_restart(cycle: _Cycle, boot1: dict[str, Any]) -> tuple[Agent, dict[str, Any]]:
    """Graceful shutdown and start: the ``power_cycle`` part so far; the agent, start after."""
    rec = cycle.rec
    rec.step(
        "vm.shutdown_graceful",
        {"power_state": RUNNING, "boot_id": boot1["boot_id"], "how": "guest agent"},
        lambda: _shutdown_graceful(cycle),
    )
    agent, boot2 = _boot(cycle.platform, rec, cycle.name, cycle.boot_timeout)
    boots = [boot1["boot_id"], boot2["boot_id"]]
    stopped = rec.actions[-2]["after"]["power_state"]
    cycle.cycle_problems = [] if stopped == STOPPED else [f"guest is {stopped} after the shutdown"]
    if boots[0] == boots[1]:
        cycle.cycle_problems.append(f"boot id did not change on the restart: {boots[0]}")
    # The hard power off ends the run (after the maintenance round trip), which saves
    # a third boot; until then the part is not complete.
    cycle.value["power_cycle"] = {
        "verdict": "fail" if cycle.cycle_problems else "not-executed",
        "reason": "; ".join(cycle.cycle_problems) or "not reached: the hard power off",
        "boot_ids": boots,
        "agent_after_s": [boot1["agent_after_s"], boot2["agent_after_s"]],
        "graceful_stop_s": rec.actions[-2]["after"].get("stopped_after_s"),
    }
    return agent, boot2


def _shutdown_graceful(cycle: _Cycle) -> dict[str, Any]:
    """``vm.shutdown_graceful``: shut down through the guest agent, waited for."""
    platform, name = cycle.platform, cycle.name
    dom = platform._domain(name)
    platform._call("shut down vm", name, dom.shutdownFlags, libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT)
    waited = _wait_stopped(platform, name, cycle.stop_timeout)
    return {"power_state": _power(platform, name), "stopped_after_s": round(waited, 1)}


def _cycle_snapshot(cycle: _Cycle, agent: Agent, boot_id: str) -> None:
    """Marker, snapshot with memory, marker changed, revert, marker read back, delete."""
    platform, rec, name, run_id = cycle.platform, cycle.rec, cycle.name, cycle.run_id
    first = f"vqual-oq {run_id} before-snapshot {os.urandom(8).hex()}"
    second = f"vqual-oq {run_id} after-snapshot {os.urandom(8).hex()}"
    snap_name = f"vqual-oq-{run_id}"
    rec.step(
        "guest.marker_write", {"marker_file": MARKER_FILE}, lambda: _write_marker(agent, first)
    )
    rec.step(
        "vm.snapshot_create",
        {"power_state": _power(platform, name), "snapshots": [], "disk_format": "qcow2"},
        lambda: _snapshot_create(cycle, snap_name),
    )
    rec.step("guest.marker_change", {"marker": first}, lambda: _write_marker(agent, second))
    reverted = rec.step(
        "vm.snapshot_revert",
        {"snapshot": snap_name, "marker": second},
        lambda: _snapshot_revert(cycle, snap_name),
    )
    reverted_agent = Agent(platform._domain(name))
    read_back: list[str] = []
    rec.step(
        "guest.marker_read",
        {"marker_file": MARKER_FILE},
        lambda: _read_marker(reverted_agent, read_back),
    )
    rec.step(
        "vm.snapshot_delete",
        {"snapshots": [snap_name]},
        lambda: _snapshot_delete(cycle, snap_name),
    )
    problems = []
    if read_back[0] != first:
        problems.append(f"marker read back {read_back[0]!r}, written before the snapshot {first!r}")
    if reverted["power_state"] != RUNNING:
        problems.append(f"guest is {reverted['power_state']} after the revert")
    if reverted["boot_id"] != boot_id:
        problems.append("boot id changed: the revert booted the guest instead of restoring memory")
    if rec.actions[-1]["after"]["snapshots"]:
        problems.append("snapshot still listed after delete")
    cycle.value["snapshot"] = {
        "verdict": "fail" if problems else "pass",
        "reason": "; ".join(problems) or None,
        "marker_written": first,
        "marker_changed_to": second,
        "marker_read": read_back[0],
        "memory": True,
    }


def _snapshot_create(cycle: _Cycle, snap_name: str) -> dict[str, Any]:
    """``vm.snapshot_create``: an internal snapshot with memory; what libvirt lists after."""
    platform, name = cycle.platform, cycle.name
    dom = platform._domain(name)
    xml = (
        f"<domainsnapshot><name>{snap_name}</name><description>vqual OQ snapshot round "
        f"trip, run {cycle.run_id}</description><memory snapshot='internal'/>"
        "</domainsnapshot>"
    )
    snap = platform._call("snapshot", name, dom.snapshotCreateXML, xml, 0)
    root = ET.fromstring(snap.getXMLDesc(0))
    memory = root.find("memory")
    return {
        "snapshot": snap_name,
        "state": root.findtext("state"),
        "memory": memory.get("snapshot") if memory is not None else None,
        "snapshots": [s.getName() for s in dom.listAllSnapshots(0)],
    }


def _snapshot_revert(cycle: _Cycle, snap_name: str) -> dict[str, Any]:
    """``vm.snapshot_revert``: reverted, the agent answering; state and boot id after."""
    platform, name = cycle.platform, cycle.name
    dom = platform._domain(name)
    snap = platform._call("find snapshot", snap_name, dom.snapshotLookupByName, snap_name, 0)
    platform._call("revert", f"{name} to {snap_name}", dom.revertToSnapshot, snap, 0)
    waited = Agent(dom).wait(cycle.boot_timeout)
    return {
        "power_state": _power(platform, name),
        "agent_after_s": round(waited, 1),
        "boot_id": _boot_id(Agent(dom)),
    }


def _snapshot_delete(cycle: _Cycle, snap_name: str) -> dict[str, Any]:
    """``vm.snapshot_delete``: the snapshot deleted; the snapshots listed after."""
    platform = cycle.platform
    dom = platform._domain(cycle.name)
    snap = platform._call("find snapshot", snap_name, dom.snapshotLookupByName, snap_name, 0)
    platform._call("delete snapshot", snap_name, snap.delete, 0)
    return {"snapshots": [s.getName() for s in dom.listAllSnapshots(0)]}


def _cycle_maintenance(cycle: _Cycle, boot_id: str) -> None:
    """Evacuate and run the maintenance round trip, or say why it is not executed."""
    platform, dest, name = cycle.platform, cycle.dest, cycle.name
    if dest is None:
        cycle.value["maintenance"] = {
            "verdict": "not-executed",
            "reason": "no destination host configured for this host "
            "(vqual_libvirt_oq.destination): nowhere to evacuate to",
        }
        return
    if platform.maintenance_marker().exists():
        cycle.value["maintenance"] = {
            "verdict": "not-executed",
            "reason": f"host {platform.hostname()} is already in maintenance "
            f"({platform.maintenance_marker()}): not this run's to change",
        }
        return
    src_host = platform.hostname()
    evacuated = cycle.rec.step(
        "vm.evacuate",
        {
            "host": src_host,
            "endpoint": platform.endpoint,
            "power_state": RUNNING,
            "boot_id": boot_id,
        },
        lambda: _live_migrate(platform, dest, name, cycle.unsafe),
    )
    others = _running_elsewhere(platform, {name})
    if others:
        cycle.value["maintenance"] = {
            "verdict": "not-executed",
            "reason": f"host {src_host} still runs guests this OQ may not move: "
            f"{', '.join(others)} (it evacuates only its own throwaway guests)",
            "evacuated": evacuated["host"],
        }
    else:
        cycle.value["maintenance"] = _maintenance_round_trip(cycle, dest, boot_id)


def _cycle_power_off(cycle: _Cycle) -> None:
    """Hard power off where the guest runs now; the ``power_cycle`` part judged."""
    platform, dest, name = cycle.platform, cycle.dest, cycle.name
    here = platform if platform.vm_exists(name) or dest is None else dest

    def power_off() -> dict[str, Any]:
        here._call("power off vm", name, here._domain(name).destroy)
        return {"power_state": _power(here, name), "host": here.hostname()}

    off = cycle.rec.step(
        "vm.power_off_hard",
        {"power_state": _power(here, name), "host": here.hostname()},
        power_off,
    )
    if off["power_state"] != STOPPED:
        cycle.cycle_problems.append(f"guest is {off['power_state']} after the hard power off")
    cycle.value["power_cycle"].update(
        {
            "verdict": "fail" if cycle.cycle_problems else "pass",
            "reason": "; ".join(cycle.cycle_problems) or None,
        }
    )


def _marked_by(platform: LibvirtPlatform, run_id: str) -> bool:
    """Whether the host's maintenance marker was written by this run."""
    try:
        body = json.loads(platform.maintenance_marker().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and body.get("run_id") == run_id


def _guest_macs(agent: Agent) -> list[str]:
    """MACs of the guest's NICs as the guest sees them (``guest-network-get-interfaces``)."""
    found = agent.command("guest-network-get-interfaces") or []
    return sorted(
        str(i.get("hardware-address", "")).lower()
        for i in found
        if i.get("name") != "lo" and i.get("hardware-address")
    )


def _maintenance_round_trip(cycle: _Cycle, dest: LibvirtPlatform, boot_id: str) -> dict[str, Any]:
    """Enter maintenance on the (evacuated) source, show VMs refused there, leave, return.

    Every state is read back from the platform: the host's maintenance state, where the
    guest runs, whether the VM that was refused is still stopped.
    """
    platform, rec, name, probe_vm = cycle.platform, cycle.rec, cycle.name, cycle.probe_vm
    host = platform.hostname()
    marker = platform.maintenance_marker()

    def enter() -> dict[str, Any]:
        facts = platform.enter_maintenance(run_id=cycle.run_id)
        return {
            "in_maintenance": facts.in_maintenance,
            "marker": str(marker),
            "running": _running_elsewhere(platform, set()),
        }

    rec.step(
        "host.enter_maintenance", {"host": host, "in_maintenance": False, "running": []}, enter
    )
    moved = rec.step(
        "vm.migrate_onto_maintenance_host",
        {"vm": name, "on_destination": RUNNING, "host": host, "in_maintenance": True},
        lambda: _migrate_onto_marked_host(cycle, dest),
    )
    started = rec.step(
        "vm.start_on_maintenance_host",
        {"vm": probe_vm, "power_state": STOPPED, "host": host, "in_maintenance": True},
        lambda: _start_on_marked_host(cycle, dest),
    )
    for path in _remove(platform, probe_vm):
        raise PlatformError(f"file of {probe_vm} left: {path}", where=platform.endpoint)

    def leave() -> dict[str, Any]:
        facts = platform.exit_maintenance()
        return {"in_maintenance": facts.in_maintenance, "marker_exists": marker.exists()}

    left = rec.step("host.exit_maintenance", {"host": host, "in_maintenance": True}, leave)
    back = rec.step(
        "vm.migrate_back",
        {"host": dest.hostname(), "endpoint": dest.endpoint, "power_state": RUNNING},
        lambda: _live_migrate(dest, platform, name, cycle.unsafe),
    )
    back["boot_id"] = _boot_id(Agent(platform._domain(name)))
    entered = next(a for a in rec.actions if a["name"] == "host.enter_maintenance")
    evacuated = next(a for a in rec.actions if a["name"] == "vm.evacuate")
    problems = []
    if evacuated["after"]["power_state"] != RUNNING or evacuated["after"]["on_source"]:
        problems.append("evacuation: guest not running on the destination only")
    if not entered["after"]["in_maintenance"]:
        problems.append("host does not report maintenance after entering it")
    if not moved["refused"] or moved["on_host"] != "absent":
        problems.append(f"migration onto the marked host not refused ({moved['reason']})")
    if not started["refused"] or started["power_state"] != STOPPED:
        problems.append(f"start on the marked host not refused ({started['reason']})")
    if left["in_maintenance"] or left["marker_exists"]:
        problems.append("host still in maintenance after leaving it")
    if back["power_state"] != RUNNING or back["on_source"] or back["boot_id"] != boot_id:
        problems.append("guest did not migrate back live after maintenance")
    return {
        "verdict": "fail" if problems else "pass",
        "reason": "; ".join(problems) or None,
        "host": host,
        "evacuated_to": evacuated["after"]["host"],
        "migrate_refused": moved["reason"],
        "start_refused": started["reason"],
        "returned": back["host"],
    }


def _migrate_onto_marked_host(cycle: _Cycle, dest: LibvirtPlatform) -> dict[str, Any]:
    """``vm.migrate_onto_maintenance_host``: the migration back tried; whether refused."""
    platform, name = cycle.platform, cycle.name
    refusal: str | None = None
    try:
        _live_migrate(dest, platform, name, cycle.unsafe)
    except PlatformError as exc:
        refusal = exc.one_line()
    return {
        "refused": "maintenance" in (refusal or ""),
        "reason": refusal,
        "on_destination": _power(dest, name),
        "on_host": _power(platform, name),
    }


def _start_on_marked_host(cycle: _Cycle, dest: LibvirtPlatform) -> dict[str, Any]:
    """``vm.start_on_maintenance_host``: a VM start tried on the host; whether refused."""
    platform, probe_vm = cycle.platform, cycle.probe_vm
    # A diskless copy of the guest, defined (tagged) on the marked host: if the refusal
    # failed it would boot nothing, and the cleanup removes it either way.
    root = ET.fromstring(dest.vm_xml(cycle.name, inactive=True))
    name_el = root.find("name")
    assert name_el is not None
    name_el.text = probe_vm
    for element in root.findall("uuid"):
        root.remove(element)
    devices = root.find("devices")
    if devices is not None:
        for disk in devices.findall("disk"):
            devices.remove(disk)
    xml = with_tag(ET.tostring(root, "unicode"), ThrowawayTag(cycle.run_id, "mnt", utc_stamp()))
    platform._call("define vm", probe_vm, platform.conn.defineXML, xml)
    refusal: str | None = None
    try:
        platform.power_on(probe_vm)
    except PlatformError as exc:
        refusal = exc.one_line()
    state = _power(platform, probe_vm)
    if state == RUNNING:
        platform._call("power off vm", probe_vm, platform._domain(probe_vm).destroy)
    return {
        "refused": "maintenance" in (refusal or ""),
        "reason": refusal,
        "power_state": state,
    }


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
