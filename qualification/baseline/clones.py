"""Clone qualification by difference: the master bundle a clone run relies on, and clones.

A clone of a qualified Master-VM needs only the reduced set of tests (the spec's tests whose
``scope`` includes ``clone``), and its fingerprint is compared with the master's (check type
``clone_fingerprint``). Everything a clone run relies on is checked here before anything
runs (:func:`load_master`): the master bundle must verify, its run must have passed, it must
carry an ``approved`` signature where the spec requires one, and it must hold the master's
fingerprint. The reference to it (seal digest, fingerprint digest) goes into the clone
run's ``run.start`` (``clone`` block).

Clones can be made from the master first: on libvirt a qcow2 overlay of each master disk
under a new name, UUID and MAC (:func:`create_libvirt_clone`); on vSphere a clone of the
template (``CloneVM_Task``, through the ``vm_clone`` module in ``playbooks/clone_qualify.yml``).

Exit codes of the refusals: a master bundle that does not verify (invalid or incomplete) is
evidence that cannot be trusted, exit 1; a master that is not approved where approval is
required, whose run did not pass, or that has no usable fingerprint is bad input, exit 2.
Docs: docs/clones.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from qualification.baseline.fingerprint import Fingerprint
from qualification.errors import (
    BadInputError,
    EvidenceInvalidError,
    NotSupported,
    PlatformError,
)
from qualification.signing import TrustStore
from qualification.spec.plan import MasterBaseline

#: Safe VM names for created clones (also a libvirt domain and file name).
CLONE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _first(problems: Sequence[str]) -> str:
    if not problems:
        return "no reason given"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def approval_of(signatures: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The approval that stands on a verified bundle, and if none, why.

    The latest ``approved`` or ``rejected`` signature decides: a rejection after an
    approval withdraws it. Only signatures of a bundle that verified count (the verifier
    already checked the signer's role and separation of duties).

    Returns:
        ({name, keyid, identity, time, seal} or None, reason when None).
    """
    decisive = [s for s in signatures if s.get("meaning") in ("approved", "rejected")]
    if not decisive:
        return None, "it carries no 'approved' signature (vqual sign BUNDLE --meaning approved)"
    last = max(decisive, key=lambda s: int(s.get("seq", 0)))
    if last.get("meaning") == "rejected":
        return None, f"it was rejected by {last.get('name')} at {last.get('time')}"
    return (
        {
            "name": last.get("name"),
            "keyid": last.get("keyid"),
            "identity": last.get("identity"),
            "time": last.get("time"),
            "seal": last.get("seal"),
        },
        "",
    )


def select_fingerprint(
    fingerprints: Mapping[str, Fingerprint], subject: str | None, *, where: str
) -> Fingerprint:
    """The master's fingerprint: ``subject``'s, else the bundle's only VM fingerprint.

    Raises:
        BadInputError: none, not the subject asked for, or several VMs and no subject.
    """
    if not fingerprints:
        raise BadInputError(
            "the master bundle has no fingerprint record: qualify the master with a "
            "fingerprint test (specs/master-vm.yaml) first",
            where=where,
        )
    if subject is not None:
        found = fingerprints.get(subject)
        if found is None:
            raise BadInputError(
                f"the master bundle has no fingerprint of {subject!r} "
                f"(it has: {', '.join(sorted(fingerprints))})",
                where=where,
            )
        return found
    vms = sorted(name for name, fp in fingerprints.items() if fp.kind == "vm")
    if len(vms) == 1:
        return fingerprints[vms[0]]
    if not vms:
        raise BadInputError(
            f"the master bundle has no VM fingerprint (it has: {', '.join(sorted(fingerprints))})",
            where=where,
        )
    raise BadInputError(
        f"the master bundle has fingerprints of several VMs ({', '.join(vms)}): "
        "name one with clone.master.subject in the spec or --master-subject",
        where=where,
    )


def load_master(
    bundle: Path,
    *,
    state_dir: Path,
    require_approval: bool,
    subject: str | None = None,
    trust: TrustStore | None = None,
) -> MasterBaseline:
    """Check the master bundle a clone run relies on, and return its reference.

    Args:
        bundle: the master run's bundle directory.
        state_dir: the state directory whose trust store judges the bundle.
        require_approval: the bundle must carry a standing ``approved`` signature.
        subject: the master's inventory name in the bundle; None: its only VM fingerprint.
        trust: the trust store already loaded for the run; None: ``state_dir``'s is loaded.

    Raises:
        BadInputError: not a bundle directory; not approved where required; its run did not
            pass; no usable fingerprint (exit 2).
        EvidenceInvalidError: the bundle does not verify or is incomplete (exit 1).
        TrustError: no usable trust store.
    """
    from qualification.baseline import FINGERPRINT_KIND, fingerprints_from_records
    from qualification.evidence.reader import read_bundle
    from qualification.evidence.verify import INCOMPLETE, VALID, verify_bundle
    from qualification.review.signed import load_trust

    where = f"master bundle {bundle}"
    if not (bundle / "records.jsonl").is_file():
        raise BadInputError("not an evidence bundle (no records.jsonl)", where=where)
    result = verify_bundle(bundle, trust if trust is not None else load_trust(state_dir))
    if result.status == INCOMPLETE:
        raise EvidenceInvalidError(
            "the master run did not finish (no run.end): it cannot serve as a master", where=where
        )
    if result.status != VALID:
        raise EvidenceInvalidError(f"does not verify: {_first(result.problems)}", where=where)
    if result.verdict != "pass":
        raise BadInputError(
            f"the master run's verdict is {result.verdict!r}: only a master that passed "
            "can be cloned",
            where=where,
        )
    approval, why = approval_of(result.signatures)
    if require_approval and approval is None:
        raise BadInputError(
            f"is not approved, and the spec requires an approved master: {why}", where=where
        )
    read = read_bundle(bundle)
    fingerprints = fingerprints_from_records(
        [(r.line, r.data) for r in read.of_kind(FINGERPRINT_KIND)],
        where=f"{bundle}/records.jsonl",
    )
    chosen = select_fingerprint(fingerprints, subject, where=where)
    assert result.seal_digest is not None  # a valid bundle is sealed
    return MasterBaseline(
        bundle=str(bundle.resolve()),
        seal=result.seal_digest,
        change_id=str(result.change_id),
        run_id=str(result.run_id),
        subject=chosen.subject,
        fingerprint_digest=chosen.digest(),
        approval=approval,
    )


def clone_names(count: int, prefix: str) -> list[str]:
    """``count`` clone names ``<prefix>-1`` .. ``<prefix>-<count>``.

    Raises:
        BadInputError: a count below 1 or a name that is not a safe VM name.
    """
    if count < 1:
        raise BadInputError(f"--create needs a count of at least 1, not {count}")
    names = [f"{prefix}-{i}" for i in range(1, count + 1)]
    for name in names:
        if not CLONE_NAME.match(name):
            raise BadInputError(f"clone name {name!r} is not a safe VM name ({CLONE_NAME.pattern})")
    return names


@dataclass(frozen=True)
class CreatedClone:
    """A clone made by :func:`create_libvirt_clone`: its domain and its overlay disks."""

    name: str
    uuid: str
    macs: tuple[str, ...]
    disks: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uuid": self.uuid,
            "macs": list(self.macs),
            "disks": list(self.disks),
        }


def overlay_xml(master_xml: str, name: str, overlays: Mapping[str, str]) -> str:
    """The clone's domain XML from the master's: new name, no UUID and no MAC addresses
    (libvirt assigns new ones), each disk in ``overlays`` (target dev -> overlay path)
    pointing at its qcow2 overlay. Everything else stays the master's: that is the point."""
    root = ET.fromstring(master_xml)
    name_el = root.find("name")
    if name_el is None:
        raise BadInputError("the master's domain XML has no <name>")
    name_el.text = name
    for element in root.findall("uuid"):
        root.remove(element)
    for iface in root.findall("devices/interface"):
        for mac in iface.findall("mac"):
            iface.remove(mac)
    for disk in root.findall("devices/disk"):
        target = disk.find("target")
        dev = target.get("dev") if target is not None else None
        if dev is None or dev not in overlays:
            continue
        source = disk.find("source")
        driver = disk.find("driver")
        if source is None:
            continue
        source.set("file", overlays[dev])
        if driver is not None:
            driver.set("type", "qcow2")
        for backing in disk.findall("backingStore"):
            disk.remove(backing)
    return ET.tostring(root, encoding="unicode")


def _file_disks(xml: str) -> list[tuple[str, str, str]]:
    """(target dev, source file, format) of each file-backed disk of a domain XML."""
    root = ET.fromstring(xml)
    out = []
    for disk in root.findall("devices/disk"):
        if disk.get("device", "disk") != "disk" or disk.get("type", "file") != "file":
            continue
        source, target, driver = disk.find("source"), disk.find("target"), disk.find("driver")
        if source is None or target is None or not source.get("file") or not target.get("dev"):
            continue
        fmt = (driver.get("type") if driver is not None else None) or "raw"
        out.append((str(target.get("dev")), str(source.get("file")), fmt))
    return out


@contextlib.contextmanager
def _volume_at(conn: Any, path: str) -> Iterator[Any | None]:
    """The libvirt storage volume at ``path``, or None.

    From the pool that holds it; else through a transient ``dir`` pool on its directory, so
    a disk file on a remote hypervisor can still be handled through libvirt. The transient
    pool is destroyed afterwards (a transient pool leaves no definition; the files stay).
    """
    import libvirt

    try:
        found = conn.storageVolLookupByPath(path)
    except libvirt.libvirtError:
        found = None
    if found is not None:
        yield found
        return
    directory = str(Path(path).parent)
    name = "vqual-tmp-pool-" + hashlib.sha256(directory.encode()).hexdigest()[:12]
    try:
        pool = conn.storagePoolCreateXML(
            f"<pool type='dir'><name>{name}</name><target><path>{escape(directory)}</path>"
            "</target></pool>",
            0,
        )
    except libvirt.libvirtError:
        pool = None
    if pool is None:
        yield None
        return
    try:
        try:
            vol = pool.storageVolLookupByName(Path(path).name)
        except libvirt.libvirtError:
            vol = None
        yield vol
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            pool.destroy()


def _delete_file(conn: Any, path: str) -> None:
    """Delete a clone's overlay through libvirt, else on this machine."""
    import libvirt

    with _volume_at(conn, path) as vol:
        if vol is not None:
            with contextlib.suppress(libvirt.libvirtError):
                vol.delete(0)
                return
    Path(path).unlink(missing_ok=True)


def _quiet_errors(_ctx: Any, _err: Any) -> None:
    """libvirt prints every error to stderr by default; each is raised as an exception."""


def create_libvirt_clone(uri: str, master: str, name: str) -> CreatedClone:
    """Define ``name`` as a clone of the stopped domain ``master``: each file disk becomes a
    qcow2 overlay ``<name>-<dev>.qcow2`` beside the master's disk, with a new UUID and MAC
    addresses. The clone is defined, not started.

    The overlay is made through libvirt (the disk's storage pool, else a transient ``dir``
    pool on its directory), so it works on a remote hypervisor; where libvirt cannot, with
    ``qemu-img`` when the disk is a file on this machine (relative backing path).

    Raises:
        BadInputError: an unsafe name.
        PlatformError: the master runs (its clones would read blocks it changes), a domain
            ``name`` exists, or libvirt refuses a step.
        NotSupported: a master disk that libvirt cannot reach and that is not a local file.
    """
    import libvirt

    if not CLONE_NAME.match(name):
        raise BadInputError(f"clone name {name!r} is not a safe VM name ({CLONE_NAME.pattern})")
    libvirt.registerErrorHandler(_quiet_errors, None)
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise PlatformError(f"cannot connect: {exc.get_error_message()}", where=uri) from None
    created: list[str] = []  # overlays made so far: removed again if the clone fails
    try:
        dom = _stopped_master(conn, uri, master, name)
        master_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        overlays: dict[str, str] = {}
        for dev, path, fmt in _file_disks(master_xml):
            overlays[dev] = _overlay(conn, uri, master, name, dev, path, fmt, created)
        new_dom = conn.defineXML(overlay_xml(master_xml, name, overlays))
        root = ET.fromstring(new_dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        macs = tuple(
            str(mac.get("address")) for mac in root.findall("devices/interface/mac") if mac.get("address")
        )
        created.clear()  # defined: the overlays now belong to the clone
        return CreatedClone(name=name, uuid=new_dom.UUIDString(), macs=macs, disks=tuple(overlays.values()))
    except libvirt.libvirtError as exc:
        raise PlatformError(f"clone {master} to {name} failed: {exc.get_error_message()}", where=uri) from None
    finally:
        for path in created:  # a failed clone leaves no overlay behind
            with contextlib.suppress(libvirt.libvirtError, OSError):
                _delete_file(conn, path)
        conn.close()


def _stopped_master(conn: Any, uri: str, master: str, name: str) -> Any:
    """The master's domain; refused when it is missing or running, or ``name`` is taken."""
    import libvirt

    try:
        dom = conn.lookupByName(master)
    except libvirt.libvirtError:
        raise PlatformError(f"clone {master} to {name} refused: no domain {master}", where=uri) from None
    if dom.isActive():
        raise PlatformError(
            f"clone {master} to {name} refused: the master is running, and overlays must "
            "not read a disk that changes under them",
            where=uri,
        )
    try:
        conn.lookupByName(name)
    except libvirt.libvirtError:
        pass
    else:
        raise PlatformError(f"clone {master} to {name} refused: {name} exists", where=uri)
    return dom


def _overlay(
    conn: Any,
    uri: str,
    master: str,
    name: str,
    dev: str,
    path: str,
    fmt: str,
    created: list[str],
) -> str:
    """A qcow2 overlay on one master disk; its path, also appended to ``created``.

    Through libvirt storage where it reaches the disk, else with ``qemu-img`` on a file of
    this machine.
    """
    overlay = str(Path(path).with_name(f"{name}-{dev}.qcow2"))
    with _volume_at(conn, path) as vol:
        if vol is not None:
            capacity = vol.info()[1]
            new = vol.storagePoolLookupByVolume().createXML(
                f"<volume><name>{name}-{dev}.qcow2</name><capacity>{capacity}</capacity>"
                "<target><format type='qcow2'/></target>"
                f"<backingStore><path>{escape(path)}</path><format type='{fmt}'/>"
                "</backingStore></volume>",
                0,
            )
            overlay = new.path()
            created.append(overlay)
    if vol is None:
        if not (Path(path).is_file() and shutil.which("qemu-img")):
            raise NotSupported(
                f"clone {master}",
                f"disk {path} is neither reachable through libvirt storage nor a file "
                "on this machine",
                where=uri,
            )
        # relative backing path, as the lab's clones: the pair can move together
        done = subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt,
             "-b", Path(path).name, overlay],
            capture_output=True, text=True, check=False, timeout=120,
        )
        if done.returncode != 0:
            raise PlatformError(
                f"clone {master} to {name}: qemu-img failed: {done.stderr.strip()}",
                where=uri,
            )
        created.append(overlay)
    return overlay


def remove_libvirt_clone(uri: str, name: str) -> None:
    """Undefine a clone made by :func:`create_libvirt_clone` and delete its overlays
    (destroying it first if it runs). Only ``<name>-<dev>.qcow2`` overlays are deleted,
    never a backing file.

    Raises:
        PlatformError: libvirt refuses a step.
    """
    import libvirt

    libvirt.registerErrorHandler(_quiet_errors, None)
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise PlatformError(f"cannot connect: {exc.get_error_message()}", where=uri) from None
    try:
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            return
        disks = _file_disks(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if dom.isActive():
            dom.destroy()
        dom.undefine()
        for dev, path, _fmt in disks:
            if Path(path).name == f"{name}-{dev}.qcow2":
                _delete_file(conn, path)
    except libvirt.libvirtError as exc:
        raise PlatformError(f"remove clone {name} failed: {exc.get_error_message()}", where=uri) from None
    finally:
        conn.close()


# --------------------------------------------------------------------------- vqual clone


def platform_tests(spec: Any) -> list[str]:
    """Ids of the spec's clone-scope tests observed through the platform (not the guest):
    what can run on a clone that was just created and has not booted."""
    from qualification import checks

    ids = []
    for test in spec.tests:
        if not test.for_clones:
            continue
        if checks.get_check(test.check).request(test.params).probe != "host":
            ids.append(test.id)
    return ids


@dataclass
class CloneRequest:
    """What ``vqual clone`` was asked to do.

    Attributes:
        inventory: the Ansible inventory with the master and (for ``clones``) the clones.
        spec: the Master-VM spec whose ``clone``-scope tests are the reduced set.
        master_bundle: the master's bundle; None: the spec's ``clone.master.bundle``.
        clones: inventory hosts or groups to qualify (``--clones``), or None.
        create: names of clones to create first (``--create N``), or None.
        master_host: the master's inventory host, where clones are created from.
        master_subject: the master's subject in the bundle; None: its only VM fingerprint.
        base: the :class:`qualification.execution.qualify.QualifyRequest` fields shared
            with ``vqual qualify`` (change, key, evidence and state directories...).
    """

    inventory: Path
    spec: Path
    master_bundle: Path | None
    clones: list[str] | None
    create: list[str] | None
    master_host: str | None
    master_subject: str | None
    base: dict[str, Any]


def run_clone(request: CloneRequest) -> tuple[Any, MasterBaseline]:
    """Check the master, then create and qualify the clones; returns the run summary
    (``QualifySummary``) and the master it was compared with.

    Raises:
        BadInputError: bad arguments, a spec without clone-scope tests, or a master that
            is not approved where required, did not pass or has no fingerprint (exit 2).
        EvidenceInvalidError: the master bundle does not verify (exit 1).
    """
    from qualification.execution.qualify import QualifyRequest, run_qualify
    from qualification.spec.loader import load_spec

    if bool(request.clones) == bool(request.create):
        raise BadInputError(
            "give either --clones (existing clones) or --create N, not both or neither"
        )
    if request.create and not request.master_host:
        raise BadInputError("--create needs --master-host (the master's inventory host)")
    spec = load_spec(request.spec)
    section = spec.clone_section
    bundle = request.master_bundle or section.master.bundle
    if bundle is None:
        raise BadInputError(
            f"no master bundle: give --master-bundle, or clone.master.bundle in {request.spec}"
        )
    if not any(t.for_clones for t in spec.tests):
        raise BadInputError(
            f"{request.spec}: no test has scope clone (or applies to clones): nothing to qualify"
        )
    # Before anything runs, creation included: the master must be one a clone may rely on.
    master = load_master(
        bundle,
        state_dir=Path(request.base["state_dir"]),
        require_approval=section.master.require_approval,
        subject=request.master_subject or section.master.subject,
    )
    extravars: dict[str, Any] = dict(request.base.pop("extravars", {}) or {})
    extravars["vqual_master_bundle"] = master.bundle
    extravars["vqual_master_subject"] = master.subject
    tests = request.base.pop("tests", None)
    if request.create:
        extravars["vqual_create_clones"] = list(request.create)
        extravars["vqual_master_host"] = request.master_host
        extravars["vqual_clone_hosts"] = "vqual_created_clones"
        # a created clone is stopped: only what the platform observes can run on it
        platform_ids = platform_tests(spec)
        if not platform_ids:
            raise BadInputError(
                f"{request.spec}: no clone-scope test is observed through the platform, and "
                "created clones have not booted (qualify started clones with --clones)"
            )
        tests = [t for t in tests if t in platform_ids] if tests else platform_ids
    else:
        extravars["vqual_clone_hosts"] = ":".join(request.clones or [])
    summary = run_qualify(
        QualifyRequest(
            inventory=request.inventory,
            spec=request.spec,
            playbook="clone_qualify.yml",
            extravars=extravars,
            tests=tests,
            **request.base,
        )
    )
    return summary, master


def _main(argv: Sequence[str]) -> int:
    """``python -m qualification.baseline.clones create-libvirt URI MASTER NAME`` and
    ``remove-libvirt URI NAME``: the libvirt steps of ``playbooks/clone_qualify.yml``
    (run on the controller), printing JSON; one line on stderr and the exit code on error."""
    import json
    import sys

    from qualification.errors import VqualError

    try:
        if len(argv) == 4 and argv[0] == "create-libvirt":
            print(json.dumps(create_libvirt_clone(argv[1], argv[2], argv[3]).to_json()))
            return 0
        if len(argv) == 3 and argv[0] == "remove-libvirt":
            remove_libvirt_clone(argv[1], argv[2])
            print(json.dumps({"removed": argv[2]}))
            return 0
        raise BadInputError(
            "usage: python -m qualification.baseline.clones "
            "create-libvirt URI MASTER NAME | remove-libvirt URI NAME"
        )
    except VqualError as exc:
        print(f"vqual: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
