"""The lab's Master-VM image, its clones and the VM budget.

The Master-VM is a small Debian guest built from the machine's own apt repositories
(debootstrap minbase, then an ext4 image made with ``mkfs.ext4 -d``, so no loop mount is
needed), booted by direct kernel boot: a Debian kernel and a busybox initrd that loads the
virtio/ext4 modules and switches to the ext4 root, where busybox init runs
``guest-boot.sh``. That script gives each guest its identity at first boot (hostname and
root SSH key from the kernel command line, a fresh machine id and SSH host keys), starts
sshd and the QEMU guest agent, and prints a ``ready`` line on the serial console.

Clones are qcow2 overlays on the master's disk. The master itself is defined but not run:
QEMU write-locks an overlay's backing file, and a master that ran would change the blocks
its clones read through. :data:`VM_BUDGET` says which guests exist and how many may run at
once; :func:`start_guest` enforces it.

Everything here is pure Python plus ``libvirt`` (no ``ansible``).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, PlatformError
from vqual_lab.component import (
    ComponentStatus,
    LabContext,
    file_lock,
    mounts_under,
    pid_alive,
    stop_pid,
    tail,
)

ASSETS = Path(__file__).parent / "assets" / "guest"

# What the image is made of. Changing any of these changes the image digest.
GUEST_PACKAGES = (
    "busybox",  # init (PID 1) and poweroff; the guest has no systemd
    "iproute2",
    "openssh-server",
    "procps",
    "python3",
    "qemu-guest-agent",
)
# Modules the initrd loads, by name; their dependencies are added from modules.dep.
INITRD_MODULES = (
    "crc32c_generic",  # ext4 checksums (a crypto-API soft dependency, not in modules.dep)
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_console",  # the guest agent's virtio-serial port
    "virtio_rng",  # entropy for first-boot key generation
    "ext4",
    # A converted guest (V2V, tests/lab/test_conversion.py) boots from a SATA disk with an
    # e1000 NIC: the drivers of the other bus and NIC model, as virt-v2v would install them.
    "crct10dif_generic",  # sd_mod's T10 checksums (crypto-API soft dependencies)
    "crc64_rocksoft_generic",
    "ahci",
    "sd_mod",
    "e1000",
)
IMAGE_SIZE_MIB = 2048  # sparse; the root holds about 250 MiB
GUEST_MEMORY_MIB = 384
BUILD_FORMAT = 3  # bump when the build steps change in a way the digest inputs would not show
READY_MARK = "vqual-guest: ready "
AGENT_CHANNEL = "org.qemu.guest_agent.0"
GUEST_SSH_PORT = 22


class VmBudgetError(PlatformError):
    """Starting a guest would break the published VM budget (nothing was started)."""


# --- the VM budget ------------------------------------------------------------------------


@dataclass(frozen=True)
class GuestSpec:
    """One guest of the lab.

    Attributes:
        name: Libvirt domain name, guest hostname and inventory host name.
        role: ``master`` (the template, not run while clones exist) or ``clone``.
        host: The KVM host (``kvm1``/``kvm2``) it is defined on.
        ssh_address: Loopback address of its SSH port forward.
        ssh_port: Port of the forward (>= 1024).
        autostart: Started by ``scripts/lab up``.
    """

    name: str
    role: str
    host: str
    ssh_address: str
    ssh_port: int
    autostart: bool


@dataclass(frozen=True)
class VmBudget:
    """Which guests exist, how many may run at once, and which are throwaway."""

    guests: tuple[GuestSpec, ...]
    max_running: int
    throwaway_prefix: str

    def spec(self, name: str) -> GuestSpec | None:
        return next((g for g in self.guests if g.name == name), None)

    def is_throwaway(self, name: str) -> bool:
        return name.startswith(self.throwaway_prefix) and len(name) > len(self.throwaway_prefix)

    def admits(self, name: str) -> bool:
        """True if ``name`` is a guest the lab may run at all."""
        return self.spec(name) is not None or self.is_throwaway(name)


# Published in docs/lab.md ("Guests and VM budget"). Two cores run TCG guests: three at once
# is the most that still boots each within seconds.
VM_BUDGET = VmBudget(
    guests=(
        GuestSpec("master", "master", "kvm1", "127.0.0.60", 2260, autostart=False),
        GuestSpec("clone1", "clone", "kvm1", "127.0.0.61", 2261, autostart=True),
        GuestSpec("clone2", "clone", "kvm2", "127.0.0.62", 2262, autostart=True),
    ),
    max_running=3,
    throwaway_prefix="vqual-tmp-",
)


def check_budget(
    name: str,
    running: Sequence[str],
    *,
    clones_of_master: Sequence[str] = (),
    budget: VmBudget = VM_BUDGET,
) -> None:
    """Refuse to start ``name`` if that breaks the budget.

    Args:
        name: The guest to start.
        running: Names of the lab guests running now, on every KVM host.
        clones_of_master: Guests whose disks are overlays on the master's disk (defined,
            running or not): the master may not run while any exists.
        budget: The budget to apply.

    Raises:
        VmBudgetError: The guest is unknown, is the master while it has clones, or would be
            one guest more than ``budget.max_running``.
    """
    if not budget.admits(name):
        raise VmBudgetError(
            f"guest {name!r} is not in the VM budget (known: "
            f"{', '.join(g.name for g in budget.guests)}; throwaway guests are named "
            f"{budget.throwaway_prefix}*)"
        )
    if name in running:
        return
    spec = budget.spec(name)
    if spec is not None and spec.role == "master" and clones_of_master:
        raise VmBudgetError(
            f"the master cannot run while overlays use its disk ({', '.join(clones_of_master)});"
            " remove those clones first"
        )
    if len(running) >= budget.max_running:
        raise VmBudgetError(
            f"VM budget: {len(running)} guests already run ({', '.join(sorted(running))}); "
            f"at most {budget.max_running} may run at once, {name!r} not started"
        )


# --- the machine's apt sources ------------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` entry of the machine's apt configuration."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    keyring: str | None = None


def _deb822_paragraphs(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key = ""
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif raw[0] in " \t" and key:
            fields[key] += " " + raw.strip()
        elif ":" in raw:
            key, value = raw.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()


def apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """The ``deb`` sources configured on this machine, in apt's reading order."""
    found: list[AptSource] = []
    files = [etc_apt / "sources.list"] if (etc_apt / "sources.list").is_file() else []
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    for path in files:
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for para in _deb822_paragraphs(text):
                if "deb" not in para.get("types", "").split():
                    continue
                if para.get("enabled", "yes").lower() == "no":
                    continue
                for uri in para.get("uris", "").split():
                    found.append(
                        AptSource(
                            uri=uri,
                            suites=tuple(para.get("suites", "").split()),
                            components=tuple(para.get("components", "").split()),
                            keyring=para.get("signed-by") or None,
                        )
                    )
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line.startswith("deb "):
                continue
            words = line.split()[1:]
            keyring = None
            if words and words[0].startswith("["):
                opts: list[str] = []
                while words:
                    word = words.pop(0)
                    opts.append(word)
                    if word.endswith("]"):
                        break
                for opt in " ".join(opts).strip("[] ").split():
                    if opt.startswith("signed-by="):
                        keyring = opt.split("=", 1)[1]
            if len(words) >= 2:
                found.append(AptSource(words[0], (words[1],), tuple(words[2:]), keyring))
    return found


def os_codename(os_release: Path = Path("/etc/os-release")) -> str:
    """``VERSION_CODENAME`` of this machine (``bookworm``)."""
    for line in os_release.read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise PlatformError("no VERSION_CODENAME", where=str(os_release))


def debian_mirror(codename: str | None = None, etc_apt: Path = Path("/etc/apt")) -> AptSource:
    """The machine's own Debian mirror for ``codename`` (never a hard-coded host).

    Raises:
        PlatformError: No configured ``deb`` source carries ``<codename> main``.
    """
    suite = codename or os_codename()
    for src in apt_sources(etc_apt):
        if suite in src.suites and "main" in src.components:
            return src
    raise PlatformError(f"no apt source for '{suite} main'", where=str(etc_apt))


# --- building the image -------------------------------------------------------------------


@dataclass(frozen=True)
class MasterImage:
    """The cached Master-VM: disk image, kernel and initrd, keyed by ``digest``.

    Attributes:
        digest: SHA-256 of every build input (packages, mirror, kernel, assets, format).
        directory: ``<lab dir>/cache/guest/image-<digest[:16]>``.
        image: The generalised ext4 root (raw).
        kernel: The Debian kernel.
        initrd: The busybox initrd.
        kernel_version: ``uname -r`` of the kernel.
        built: True if this call built it, False if it came from the cache.
        seconds: Time this call took.
    """

    digest: str
    directory: Path
    image: Path
    kernel: Path
    initrd: Path
    kernel_version: str
    built: bool
    seconds: float


@dataclass(frozen=True)
class _Kernel:
    version: str
    vmlinuz: Path
    modules: Path  # .../lib/modules/<version>


def _run(argv: Sequence[str], *, log: Callable[[str], None] | None = None, **kw: Any) -> str:
    """Run a command; on failure raise PlatformError with the end of its output."""
    proc = subprocess.run(
        list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, **kw
    )
    if proc.returncode != 0:
        out = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise PlatformError(f"{argv[0]} exited {proc.returncode}: {' | '.join(out)}")
    if log is not None:
        for line in proc.stdout.splitlines()[-2:]:
            log(line)
    return str(proc.stdout)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _kernel_package() -> str | None:
    """The package ``linux-image-amd64`` depends on (``linux-image-6.1.0-NN-amd64``).

    Asks dpkg first (installed: milliseconds), then apt-cache (seconds).
    """
    for argv in (
        ["dpkg-query", "-W", "-f", "${Status}|${Depends}", "linux-image-amd64"],
        ["apt-cache", "depends", "linux-image-amd64"],
    ):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                argv, capture_output=True, text=True, timeout=60, check=False
            ).stdout
            if argv[0] == "dpkg-query" and "install ok installed" not in out:
                continue
            m = re.search(r"(linux-image-\d[^\s,|]*)", out)
            if m:
                return m.group(1)
    return None


def _find_kernel(cache: Path, log: Callable[[str], None]) -> _Kernel:
    """The Debian kernel for the guests: the machine's own if installed, else the .deb.

    The .deb (from the machine's apt configuration) is extracted under ``cache/kernel``
    and ``depmod -b`` makes its modules.dep.
    """
    package = _kernel_package()
    if package is None:
        installed = sorted(Path("/boot").glob("vmlinuz-*"))
        if not installed:
            raise PlatformError("no linux-image-amd64 in apt and no kernel in /boot")
        package = "linux-image-" + installed[-1].name.removeprefix("vmlinuz-")
    version = package.removeprefix("linux-image-")
    vmlinuz = Path("/boot") / f"vmlinuz-{version}"
    modules = Path("/lib/modules") / version
    if vmlinuz.is_file() and (modules / "modules.dep").is_file():
        return _Kernel(version, vmlinuz, modules)
    root = cache / "kernel" / version
    if not (root / "lib" / "modules" / version / "modules.dep").is_file():
        log(f"guests: fetching {package} with apt-get download")
        debs = cache / "kernel" / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        _run(["apt-get", "download", "-q", package], cwd=debs)
        deb = max(debs.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        _run(["dpkg-deb", "-x", str(deb), str(tmp)])
        _run(["depmod", "-b", str(tmp), version])
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
    return _Kernel(version, root / "boot" / f"vmlinuz-{version}", root / "lib/modules" / version)


def initrd_modules(modules_dir: Path, names: Sequence[str] = INITRD_MODULES) -> list[Path]:
    """The module files to load for ``names``, dependencies first, built-ins left out.

    Raises:
        PlatformError: A module is neither a file in modules.dep nor built in.
    """
    deps: dict[str, list[str]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        if ":" in line:
            path, rest = line.split(":", 1)
            deps[path] = rest.split()
    by_name = {_module_name(p): p for p in deps}
    builtin_file = modules_dir / "modules.builtin"
    builtin = (
        {_module_name(p) for p in builtin_file.read_text().split()}
        if builtin_file.is_file()
        else set()
    )
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in names:
        key = name.replace("-", "_")
        if key in by_name:
            visit(by_name[key])
        elif key not in builtin:
            raise PlatformError(f"kernel module {name} not found", where=str(modules_dir))
    return [modules_dir / p for p in order]


def _module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    for suffix in (".xz", ".zst", ".gz"):
        base = base.removesuffix(suffix)
    return base.removesuffix(".ko").replace("-", "_")


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        raise PlatformError("zstd-compressed kernel modules are not supported", where=str(path))
    return data


def _static_busybox() -> Path:
    """A statically linked busybox (Debian ``busybox-static``) for the initrd."""
    for candidate in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if candidate.is_file() and not _elf_has_interpreter(candidate):
            return candidate
    raise PlatformError("no static busybox found; install busybox-static (scripts/setup --lab)")


def _elf_has_interpreter(path: Path) -> bool:
    """True if the ELF file asks for a dynamic loader (a PT_INTERP program header)."""
    with open(path, "rb") as fh:
        head = fh.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return True  # not a 64-bit ELF: treat as unusable
        (phoff,) = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        fh.seek(phoff)
        table = fh.read(phentsize * phnum)
    return any(struct.unpack_from("<I", table, i * phentsize)[0] == 3 for i in range(phnum))


def _cpio_newc(entries: Sequence[tuple[str, int, bytes]]) -> bytes:
    """A ``newc`` cpio archive of (path, mode, content) entries; directories have no content.

    Written here rather than with cpio(1) so the initrd is byte-for-byte reproducible.
    """
    out = io.BytesIO()

    def add(name: str, mode: int, data: bytes, ino: int) -> None:
        nlink = 2 if mode & 0o040000 else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0)
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        out.write(name.encode() + b"\0")
        out.write(b"\0" * (-out.tell() % 4))
        out.write(data)
        out.write(b"\0" * (-out.tell() % 4))

    for ino, (name, mode, data) in enumerate(entries, start=1):
        add(name, mode, data, ino)
    add("TRAILER!!!", 0, b"", 0)
    return out.getvalue()


def build_initrd(kernel_modules: Path, busybox: Path, init_script: Path) -> bytes:
    """The gzip'd initrd: static busybox, ``/init``, the modules and their load order."""
    modules = initrd_modules(kernel_modules)
    entries: list[tuple[str, int, bytes]] = [
        ("bin", 0o040755, b""),
        ("bin/busybox", 0o100755, busybox.read_bytes()),
        ("init", 0o100755, init_script.read_bytes()),
        ("modules", 0o040755, b""),
    ]
    order: list[str] = []
    for path in modules:
        name = _module_name(path.name) + ".ko"
        order.append(name)
        entries.append((f"modules/{name}", 0o100644, _module_bytes(path)))
    entries.append(("modules/order", 0o100644, ("\n".join(order) + "\n").encode()))
    return gzip.compress(_cpio_newc(entries), compresslevel=6, mtime=0)


# The assets that go into the image or initrd (domain.xml does not: it is not hashed).
IMAGE_ASSETS = ("initrd-init.sh", "guest-boot.sh", "guest-halt.sh", "guest-shutdown.sh")


def _asset_digest() -> dict[str, str]:
    return {name: _sha256_file(ASSETS / name) for name in IMAGE_ASSETS}


def _unmount_under(path: Path) -> None:
    """Unmount what debootstrap may have left mounted in its target (deepest first)."""
    for point in sorted(mounts_under([path]), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _debootstrap(
    cache: Path,
    mirror: AptSource,
    suite: str,
    log: Callable[[str], None],
    packages: Sequence[str] = GUEST_PACKAGES,
) -> Path:
    """A pristine debootstrap minbase root for the guest, cached by its inputs."""
    key = hashlib.sha256(
        json.dumps(
            {"uri": mirror.uri, "suite": suite, "packages": tuple(packages)},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    target = cache / f"rootfs-{key}"
    if (target / ".vqual-complete").is_file():
        return target
    tmp = target.with_name(target.name + ".tmp")
    _unmount_under(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    include = f"--include={','.join(packages)}"
    keyring = (
        [f"--keyring={mirror.keyring}"] if mirror.keyring and Path(mirror.keyring).is_file() else []
    )
    if shutil.which("mmdebstrap"):
        # Same result with about half debootstrap's CPU time (fewer dpkg runs; unsafe-io
        # skips fsyncs of a tree that is thrown away if anything fails).
        tool = "mmdebstrap"
        argv = [tool, "--variant=minbase", "--mode=root", "--dpkgopt=force-unsafe-io", include]
    else:
        debs = cache / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        tool = "debootstrap"
        argv = [tool, "--variant=minbase", include, f"--cache-dir={debs}"]
    argv += keyring + [suite, str(tmp), mirror.uri]
    log(f"guests: {tool} {suite} from {mirror.uri}")
    try:
        _run(argv)
    finally:
        _unmount_under(tmp)
    (tmp / ".vqual-complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def _generalise(root: Path) -> None:
    """Turn a debootstrap root into the template: vqual boot, no identity, no caches."""
    sbin = root / "usr/local/sbin"
    sbin.mkdir(parents=True, exist_ok=True)
    for asset, dest in (
        ("guest-boot.sh", sbin / "vqual-guest-boot"),
        ("guest-halt.sh", sbin / "vqual-guest-halt"),
        ("guest-shutdown.sh", root / "sbin/shutdown"),
    ):
        dest.unlink(missing_ok=True)
        shutil.copyfile(ASSETS / asset, dest)
        dest.chmod(0o755)
    (root / "etc/inittab").write_text(
        "# busybox init of a vqual lab guest\n"
        "::sysinit:/usr/local/sbin/vqual-guest-boot\n"
        "::ctrlaltdel:/bin/busybox reboot\n"
        "::shutdown:/usr/local/sbin/vqual-guest-halt\n"
    )
    conf = root / "etc/ssh/sshd_config.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "vqual-lab.conf").write_text(
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n"
    )
    # Generalised: an empty machine id and no host keys; the first boot makes them.
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/hostname").write_text("vqual-template\n")
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "var/cache/apt"):
        for item in (root / junk).glob("*"):
            if item.is_file():
                item.unlink()
    for item in (root / "var/log").rglob("*"):
        if item.is_file():
            item.write_bytes(b"")


def build_master_image(lab_dir: Path, log: Callable[[str], None] = lambda _m: None) -> MasterImage:
    """Build (or take from the cache) the Master-VM image, kernel and initrd.

    The cache key is a digest of every input: mirror and suite, package list, the kernel
    file, the initrd modules, busybox, the guest assets and :data:`BUILD_FORMAT`.

    Raises:
        PlatformError: debootstrap, mkfs.ext4 or the kernel download failed.
    """
    started = time.monotonic()
    cache = lab_dir / "cache" / "guest"
    with file_lock(cache / ".lock"):
        suite = os_codename()
        mirror = debian_mirror(suite)
        kernel = _find_kernel(cache, log)
        busybox = _static_busybox()
        modules = initrd_modules(kernel.modules)
        inputs = {
            "format": BUILD_FORMAT,
            "mirror": mirror.uri,
            "suite": suite,
            "arch": os.uname().machine,
            "packages": GUEST_PACKAGES,
            "kernel": {"version": kernel.version, "sha256": _sha256_file(kernel.vmlinuz)},
            "modules": {p.name: _sha256_file(p) for p in modules},
            "busybox": _sha256_file(busybox),
            "assets": _asset_digest(),
            "image_mib": IMAGE_SIZE_MIB,
        }
        digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
        out = cache / f"image-{digest[:16]}"
        paths = (out / "master.img", out / "vmlinuz", out / "initrd.img")
        if (out / "build.json").is_file():
            return MasterImage(
                digest, out, *paths, kernel.version, False, time.monotonic() - started
            )
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        base = _debootstrap(cache, mirror, suite, log)
        root = tmp / "rootfs"
        log("guests: generalising the root and making the ext4 image")
        _run(["cp", "-a", "--reflink=auto", str(base), str(root)])
        (root / ".vqual-complete").unlink(missing_ok=True)
        _generalise(root)
        fs_uuid = str(uuid.UUID(digest[:32]))
        _run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                "vqual-root",
                "-U",
                fs_uuid,
                "-E",
                "root_owner=0:0",
                "-d",
                str(root),
                str(tmp / "master.img"),
                f"{IMAGE_SIZE_MIB}M",
            ]
        )
        shutil.rmtree(root)
        shutil.copyfile(kernel.vmlinuz, tmp / "vmlinuz")
        (tmp / "initrd.img").write_bytes(
            build_initrd(kernel.modules, busybox, ASSETS / "initrd-init.sh")
        )
        seconds = time.monotonic() - started
        (tmp / "build.json").write_text(
            json.dumps(
                {"digest": digest, "inputs": inputs, "seconds": round(seconds, 1)},
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        # Older images are of no further use (a published copy is on the shared storage).
        for old in cache.glob("image-*"):
            if old != out and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        log(f"guests: master image {digest[:16]} built in {seconds:.0f} s")
        return MasterImage(
            digest,
            out,
            out / "master.img",
            out / "vmlinuz",
            out / "initrd.img",
            kernel.version,
            True,
            seconds,
        )


def kernel_cmdline(hostname: str, authorized_key: str) -> str:
    """The guest's kernel command line: serial console, root, its hostname and SSH key."""
    key = base64.b64encode(authorized_key.strip().encode() + b"\n").decode()
    return (
        "console=ttyS0 root=/dev/vda rw net.ifnames=0 quiet panic=-1 "
        f"vqual.hostname={hostname} vqual.authkey={key}"
    )


def make_overlay(base: Path, overlay: Path) -> Path:
    """A qcow2 overlay on ``base`` (raw) at ``overlay``; replaces an existing one."""
    overlay.parent.mkdir(parents=True, exist_ok=True)
    overlay.unlink(missing_ok=True)
    _run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(overlay)])
    return overlay


def wait_ready(
    serial_log: Path, *, timeout: float = 300.0, offset: int = 0, alive: Callable[[], bool]
) -> dict[str, str]:
    """Wait for the guest's ``ready`` line in its serial log and return its fields.

    Args:
        serial_log: The file the guest's serial console is written to.
        timeout: Seconds to wait.
        offset: Byte offset where this boot's output starts.
        alive: Returns False once the guest has stopped (then waiting ends at once).

    Raises:
        PlatformError: The guest stopped, said "not ready", or the timeout passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(FileNotFoundError):
            with open(serial_log, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode("utf-8", "replace")
            for line in text.splitlines():
                line = line.strip()
                if READY_MARK in line:
                    rest = line.split(READY_MARK, 1)[1]
                    return dict(w.split("=", 1) for w in rest.split() if "=" in w)
                if "vqual-guest: not ready" in line or "vqual-initrd: cannot mount" in line:
                    raise PlatformError(line, where=str(serial_log))
        if not alive():
            raise PlatformError("guest stopped before it was ready", where=str(serial_log))
        if time.monotonic() > deadline:
            raise PlatformError(f"no ready line after {timeout:.0f} s", where=str(serial_log))
        time.sleep(0.2)


# --- the guest agent ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExecResult:
    """What ``guest-exec`` reported for a finished command."""

    exitcode: int
    stdout: bytes
    stderr: bytes
    signal: int | None = None


class GuestAgent:
    """A QEMU guest agent client: ping, exec with output, file read and write.

    Build one with :meth:`over_libvirt` (a libvirt domain; the agent channel
    ``org.qemu.guest_agent.0`` needs no guest network) or :meth:`over_socket` (the unix
    socket of a QEMU started by :func:`boot_direct`).
    """

    def __init__(self, call: Callable[[str, float], str], where: str) -> None:
        self._call = call
        self.where = where

    @classmethod
    def over_libvirt(cls, domain: Any) -> GuestAgent:
        """Through ``libvirt_qemu.qemuAgentCommand`` on a running ``virDomain``."""
        import libvirt
        import libvirt_qemu

        def call(cmd: str, timeout: float) -> str:
            try:
                return str(libvirt_qemu.qemuAgentCommand(domain, cmd, max(1, int(timeout)), 0))
            except libvirt.libvirtError as exc:
                raise PlatformError(
                    f"guest agent: {exc.get_error_message()}", where=domain.name()
                ) from exc

        return cls(call, domain.name())

    @classmethod
    def over_socket(cls, path: Path) -> GuestAgent:
        """Through the unix socket QEMU serves the agent's virtio-serial port on."""
        counter = iter(range(1, 1 << 62))

        def call(cmd: str, timeout: float) -> str:
            sync_id = int(time.time() * 1000) % (1 << 31) * 1000 + next(counter) % 1000
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(timeout)
                    sock.connect(str(path))
                    reader = sock.makefile("rb")
                    # guest-sync skips replies a previous client left unread.
                    sync = {"execute": "guest-sync", "arguments": {"id": sync_id}}
                    sock.sendall(json.dumps(sync).encode() + b"\n")
                    while True:
                        line = reader.readline()
                        if not line:
                            raise PlatformError("guest agent closed the channel", where=str(path))
                        with contextlib.suppress(ValueError):
                            if json.loads(line.lstrip(b"\xff")).get("return") == sync_id:
                                break
                    sock.sendall(cmd.encode() + b"\n")
                    return reader.readline().decode()
            except OSError as exc:
                raise PlatformError(f"guest agent: {exc}", where=str(path)) from exc

        return cls(call, str(path))

    def command(
        self, execute: str, arguments: Mapping[str, Any] | None = None, timeout: float = 10.0
    ) -> Any:
        """Send one agent command and return its ``return`` value.

        Raises:
            PlatformError: The agent did not answer or answered with an error.
        """
        request: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            request["arguments"] = dict(arguments)
        text = self._call(json.dumps(request), timeout)
        try:
            reply = json.loads(text)
        except ValueError as exc:
            raise PlatformError(
                f"guest agent: {execute}: unreadable reply", where=self.where
            ) from exc
        if "error" in reply:
            desc = reply["error"].get("desc", reply["error"])
            raise PlatformError(f"guest agent: {execute}: {desc}", where=self.where)
        return reply.get("return")

    def ping(self, timeout: float = 10.0) -> None:
        """``guest-ping``: returns when the agent answers."""
        self.command("guest-ping", timeout=timeout)

    def osinfo(self) -> dict[str, Any]:
        """``guest-get-osinfo`` (id, version, kernel release, ...)."""
        return dict(self.command("guest-get-osinfo"))

    def exec(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float = 60.0
    ) -> ExecResult:
        """Run ``argv`` in the guest (no shell), wait for it, return its output.

        Raises:
            PlatformError: The agent failed, or the command ran longer than ``timeout``.
        """
        args: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if stdin is not None:
            args["input-data"] = base64.b64encode(stdin).decode()
        pid = self.command("guest-exec", args)["pid"]
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            status = self.command("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                break
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"guest-exec {argv[0]}: still running after {timeout:.0f} s", where=self.where
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        return ExecResult(
            exitcode=int(status.get("exitcode", -1)),
            stdout=base64.b64decode(status.get("out-data", "")),
            stderr=base64.b64decode(status.get("err-data", "")),
            signal=status.get("signal"),
        )

    def read_file(self, path: str, *, limit: int = 16 << 20) -> bytes:
        """The content of ``path`` in the guest (``guest-file-open/read/close``)."""
        handle = self.command("guest-file-open", {"path": path, "mode": "r"})
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                part = self.command("guest-file-read", {"handle": handle, "count": 48 * 1024})
                data = base64.b64decode(part.get("buf-b64", ""))
                chunks.append(data)
                size += len(data)
                if part.get("eof") or not data:
                    break
                if size > limit:
                    raise PlatformError(f"{path} is larger than {limit} bytes", where=self.where)
        finally:
            self.command("guest-file-close", {"handle": handle})
        return b"".join(chunks)

    def write_file(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` in the guest, replacing it."""
        handle = self.command("guest-file-open", {"path": path, "mode": "w"})
        try:
            for start in range(0, max(len(data), 1), 48 * 1024):
                chunk = data[start : start + 48 * 1024]
                self.command(
                    "guest-file-write",
                    {"handle": handle, "buf-b64": base64.b64encode(chunk).decode()},
                )
            self.command("guest-file-flush", {"handle": handle})
        finally:
            self.command("guest-file-close", {"handle": handle})


# --- booting a guest with QEMU directly (no libvirt) --------------------------------------


@dataclass
class DirectGuest:
    """A guest run by :func:`boot_direct`: one QEMU process, stopped by its PID."""

    name: str
    pid: int
    disk: Path
    serial_log: Path
    agent_socket: Path
    ssh_address: str
    ssh_port: int
    ready: dict[str, str] = field(default_factory=dict)
    ready_seconds: float = 0.0
    ready_cpu_seconds: float = 0.0  # QEMU's CPU time to ready: the figure load does not skew

    def agent(self) -> GuestAgent:
        return GuestAgent.over_socket(self.agent_socket)

    def stop(self) -> None:
        stop_pid(self.pid, timeout=5.0)


def boot_direct(
    image: MasterImage,
    name: str,
    work_dir: Path,
    *,
    ssh_address: str,
    ssh_port: int,
    authorized_key: str,
    memory_mib: int = GUEST_MEMORY_MIB,
    timeout: float = 300.0,
) -> DirectGuest:
    """Boot a clone (a fresh qcow2 overlay) with ``qemu-system-x86_64 -accel tcg``.

    For developing and testing the image without the KVM hosts; the lab itself defines its
    guests through libvirt. Waits for the ready line; the caller stops the guest.
    """
    if not ssh_address.startswith("127.") or ssh_port < 1024:
        raise BadInputError(f"SSH forward {ssh_address}:{ssh_port} must be 127.x.x.x, port >= 1024")
    work_dir.mkdir(parents=True, exist_ok=True)
    disk = make_overlay(image.image, work_dir / f"{name}.qcow2")
    serial = work_dir / f"{name}.serial.log"
    sock = work_dir / f"{name}.qga.sock"
    pidfile = work_dir / f"{name}.pid"
    for stale in (serial, sock, pidfile):
        stale.unlink(missing_ok=True)
    argv = [
        "qemu-system-x86_64",
        "-name",
        name,
        "-accel",
        "tcg",
        "-machine",
        "pc",
        "-m",
        str(memory_mib),
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-kernel",
        str(image.kernel),
        "-initrd",
        str(image.initrd),
        "-append",
        kernel_cmdline(name, authorized_key),
        "-drive",
        f"file={disk},if=virtio,format=qcow2",
        "-netdev",
        f"user,id=net0,restrict=on,hostfwd=tcp:{ssh_address}:{ssh_port}-:22",
        "-device",
        "virtio-net-pci,netdev=net0",
        "-chardev",
        f"socket,id=qga0,path={sock},server=on,wait=off",
        "-device",
        "virtio-serial-pci",
        "-device",
        f"virtserialport,chardev=qga0,name={AGENT_CHANNEL}",
        "-device",
        "virtio-rng-pci",
        "-serial",
        f"file:{serial}",
        "-daemonize",
        "-pidfile",
        str(pidfile),
    ]
    started = time.monotonic()
    _run(argv)
    pid = int(pidfile.read_text().split()[0])
    guest = DirectGuest(name, pid, disk, serial, sock, ssh_address, ssh_port)
    try:
        guest.ready = wait_ready(serial, timeout=timeout, alive=lambda: pid_alive(pid))
    except PlatformError:
        guest.stop()
        raise
    guest.ready_seconds = time.monotonic() - started
    guest.ready_cpu_seconds = _cpu_seconds(pid)
    return guest


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far (0.0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields 14 and 15 (utime, stime) counted from the state letter at index 0 here.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the guests on the lab's KVM hosts ----------------------------------------------------

NAME = "guests"
GUESTS_SUBDIR = "guests"  # under the KVM hosts' shared storage
_UUID_NS = uuid.UUID("0d7b0c1e-3f0e-4d55-8f57-6a1c52b1e0a4")


def _kvm() -> Any:
    """The KVM component's module (imported late: it is optional for image work)."""
    from vqual_lab import kvm

    return kvm


def lab_hosts() -> dict[str, str]:
    """Lab KVM host name -> libvirt URI (the hosts the ``kvm`` component runs)."""
    return {h.name: h.libvirt_uri for h in _kvm().hosts_from_env()}


def _quiet_libvirt(_ctx: Any, _err: Any) -> None:
    """libvirt's default handler prints every error to stderr; ours become PlatformErrors."""


def _open(uri: str) -> Any:
    import libvirt

    libvirt.registerErrorHandler(_quiet_libvirt, None)
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise PlatformError(f"cannot connect: {exc.get_error_message()}", where=uri) from exc


@dataclass(frozen=True)
class GuestFiles:
    """Where one master image's files are, outside (this machine) and inside the hosts."""

    outer: Path  # <lab dir>/shared/guests/<digest16>
    inner: str  # /srv/vqual-shared/guests/<digest16>

    def outside(self, name: str) -> Path:
        return self.outer / name

    def inside(self, name: str) -> str:
        return f"{self.inner}/{name}"


def guest_files(lab_dir: Path, image: MasterImage) -> GuestFiles:
    kvm = _kvm()
    sub = f"{GUESTS_SUBDIR}/{image.digest[:16]}"
    return GuestFiles(lab_dir / "shared" / sub, f"{kvm.SHARED_MOUNT}/{sub}")


def publish_image(lab_dir: Path, image: MasterImage) -> GuestFiles:
    """Copy kernel, initrd and the master disk onto the shared storage (once per digest).

    The master disk is a copy, so the cache stays pristine whatever the lab does to it.
    """
    files = guest_files(lab_dir, image)
    files.outer.mkdir(parents=True, exist_ok=True)
    for src, name in ((image.kernel, "vmlinuz"), (image.initrd, "initrd.img")):
        if not files.outside(name).is_file():
            shutil.copyfile(src, files.outside(name))
    master = files.outside("master.img")
    if not master.is_file():
        tmp = master.with_suffix(".img.tmp")
        _run(["cp", "--sparse=always", str(image.image), str(tmp)])
        os.replace(tmp, master)
    return files


def domain_xml(
    spec: GuestSpec,
    files: GuestFiles,
    authorized_key: str,
    *,
    memory_mib: int = GUEST_MEMORY_MIB,
) -> str:
    """The libvirt domain XML of ``spec`` (master: raw master disk; else its overlay)."""
    from xml.sax.saxutils import escape

    master = spec.role == "master"
    values = {
        "name": spec.name,
        "uuid": str(uuid.uuid5(_UUID_NS, f"{spec.name}:{files.inner}")),
        "role": spec.role,
        "memory_mib": str(memory_mib),
        "kernel": files.inside("vmlinuz"),
        "initrd": files.inside("initrd.img"),
        "cmdline": kernel_cmdline(spec.name, authorized_key),
        "disk_format": "raw" if master else "qcow2",
        "disk": files.inside("master.img" if master else f"{spec.name}.qcow2"),
        "serial_log": files.inside(f"{spec.name}.serial.log"),
        "ssh_address": spec.ssh_address,
        "ssh_port": str(spec.ssh_port),
    }
    # Values land in text and in quoted attributes: escape for both.
    safe = {k: escape(v, {"'": "&apos;", '"': "&quot;"}) for k, v in values.items()}
    return (ASSETS / "domain.xml").read_text().format(**safe)


def running_guests(uris: Mapping[str, str] | None = None) -> dict[str, str]:
    """Active domains on the lab's KVM hosts: domain name -> host name.

    Every running TCG guest costs CPU, so domains the budget does not name count too.
    """
    found: dict[str, str] = {}
    for host, uri in (uris or lab_hosts()).items():
        conn = _open(uri)
        try:
            for dom in conn.listAllDomains(1):  # VIR_CONNECT_LIST_DOMAINS_ACTIVE
                found[dom.name()] = host
        finally:
            conn.close()
    return found


def _uri_of(uris: Mapping[str, str], spec: GuestSpec) -> str:
    if spec.host not in uris:
        raise BadInputError(
            f"guest {spec.name} is placed on {spec.host}, which this lab does not run "
            f"(hosts: {', '.join(uris)})"
        )
    return uris[spec.host]


def _is_running(name: str, host: str, uri: str) -> Callable[[], bool]:
    def check() -> bool:
        return name in running_guests({host: uri})

    return check


def _overlay_users(uris: Mapping[str, str]) -> list[str]:
    """Defined domains (running or not) whose disk is a qcow2 overlay: users of the master."""
    users: list[str] = []
    for uri in uris.values():
        conn = _open(uri)
        try:
            for dom in conn.listAllDomains(0):
                xml = dom.XMLDesc(0).replace('"', "'")
                if (
                    dom.name() != "master"
                    and "type='qcow2'" in xml
                    and VM_BUDGET.admits(dom.name())
                ):
                    users.append(dom.name())
        finally:
            conn.close()
    return sorted(users)


def start_guest(
    lab_dir: Path,
    name: str,
    host: str,
    *,
    budget: VmBudget = VM_BUDGET,
    uris: Mapping[str, str] | None = None,
) -> None:
    """Start the defined domain ``name`` on ``host`` if the VM budget allows it.

    A lock in ``<lab dir>/run`` makes the count-then-start atomic between processes.

    Raises:
        VmBudgetError: starting it would break the budget (see :func:`check_budget`).
        PlatformError: libvirt failed.
    """
    import libvirt

    uris = dict(uris or lab_hosts())
    if host not in uris:
        raise BadInputError(f"no lab KVM host {host!r} (known: {', '.join(uris)})")
    with file_lock(lab_dir / "run" / "guests-budget.lock"):
        running = running_guests(uris)
        spec = budget.spec(name)
        users = _overlay_users(uris) if spec is not None and spec.role == "master" else []
        check_budget(name, list(running), clones_of_master=users, budget=budget)
        if name in running:
            return
        conn = _open(uris[host])
        try:
            conn.lookupByName(name).create()
        except libvirt.libvirtError as exc:
            raise PlatformError(
                f"start {name}: {exc.get_error_message()}", where=uris[host]
            ) from exc
        finally:
            conn.close()


def agent(name: str, host: str | None = None) -> GuestAgent:
    """A :class:`GuestAgent` for the running lab guest ``name`` (its host looked up if None)."""
    import libvirt

    uris = lab_hosts()
    if host is None:
        host = running_guests(uris).get(name)
        if host is None:
            raise PlatformError(f"guest {name} is not running on a lab KVM host")
    conn = _open(uris[host])
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        conn.close()
        raise PlatformError(
            f"no domain {name}: {exc.get_error_message()}", where=uris[host]
        ) from exc
    return GuestAgent.over_libvirt(dom)  # the domain keeps its connection open


_HOSTFWD = re.compile(r"hostfwd=tcp:(?P<address>[0-9.]+):(?P<port>\d+)-:22")
MIGRATION_PORT_OFFSET = 1000


def forward_of(xml: str) -> tuple[str, int]:
    """The SSH forward (address, port) named in a lab guest's domain XML.

    Raises:
        BadInputError: the XML has no lab SSH forward.
    """
    m = _HOSTFWD.search(xml)
    if m is None:
        raise BadInputError("domain XML has no hostfwd=tcp:<address>:<port>-:22 forward")
    return m.group("address"), int(m.group("port"))


def with_forward(xml: str, address: str, port: int) -> str:
    """``xml`` with its SSH forward moved to ``address:port``."""
    forward_of(xml)
    return _HOSTFWD.sub(f"hostfwd=tcp:{address}:{port}-:22", xml, count=1)


def restore_forward(name: str, host: str, address: str, port: int) -> None:
    """After a migration, move a running guest's forward back to ``address:port``.

    The running QEMU's slirp forward is changed through the monitor (``hostfwd_remove``,
    ``hostfwd_add``) and the persistent definition gets the same forward for its next start.

    Raises:
        PlatformError: libvirt or the monitor refused.
    """
    import libvirt
    import libvirt_qemu

    uri = lab_hosts()[host]
    conn = _open(uri)
    try:
        dom = conn.lookupByName(name)
        current = forward_of(dom.XMLDesc(0))
        if current != (address, port):
            hmp = libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP
            for command in (
                f"hostfwd_remove vqualnet0 tcp:{current[0]}:{current[1]}",
                f"hostfwd_add vqualnet0 tcp:{address}:{port}-:22",
            ):
                out = str(libvirt_qemu.qemuMonitorCommand(dom, command, hmp)).strip()
                if out and "removed" not in out:
                    raise PlatformError(f"{name}: {command}: {out}", where=uri)
        persistent = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        if forward_of(persistent) != (address, port):
            conn.defineXML(with_forward(persistent, address, port))
    except libvirt.libvirtError as exc:
        raise PlatformError(
            f"restore forward of {name}: {exc.get_error_message()}", where=uri
        ) from exc
    finally:
        conn.close()


def migrate_guest(name: str, source: str, destination: str) -> float:
    """Live-migrate lab guest ``name`` between KVM hosts, keeping its SSH forward.

    ``VIR_MIGRATE_UNSAFE`` is needed: the hosts' shared storage is a bind mount of one local
    directory, which libvirt cannot recognise as shared (it knows NFS, GFS2, Ceph, ...), and
    refuses "migration without shared storage" otherwise. The disks are the same files on
    both sides, so nothing is copied and nothing is unsafe here.

    Returns:
        Seconds the migration took (without moving the forward back).

    Raises:
        PlatformError: libvirt refused or the guest is not running on ``source``.
    """
    import libvirt

    uris = lab_hosts()
    src, dst = _open(uris[source]), _open(uris[destination])
    try:
        dom = src.lookupByName(name)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
        # The persistent definition holds the guest's own forward; the live XML may still
        # name the temporary one of an earlier migration (the monitor moved it, not the XML).
        address, port = forward_of(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        flags = (
            libvirt.VIR_MIGRATE_LIVE
            | libvirt.VIR_MIGRATE_PERSIST_DEST
            | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
            | libvirt.VIR_MIGRATE_UNSAFE
        )
        started = time.monotonic()
        dest_xml = with_forward(xml, address, port + MIGRATION_PORT_OFFSET)
        dom.migrate2(dst, dest_xml, flags, None, None, 0)
        seconds = time.monotonic() - started
    except libvirt.libvirtError as exc:
        raise PlatformError(
            f"migrate {name} {source} -> {destination}: {exc.get_error_message()}",
            where=uris[source],
        ) from exc
    finally:
        src.close()
        dst.close()
    restore_forward(name, destination, address, port)
    return seconds


def ssh_argv(lab_dir: Path, address: str, port: int) -> list[str]:
    """``ssh`` options to reach a lab guest as root with the lab key."""
    key = _kvm().Paths(lab_dir, lab_dir / "run").ssh_key
    return [
        "ssh",
        "-i",
        str(key),
        "-p",
        str(port),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=15",
        "-o",
        "LogLevel=ERROR",
        f"root@{address}",
    ]


def ssh_run(lab_dir: Path, address: str, port: int, command: str, timeout: float = 60) -> str:
    """Run ``command`` on a lab guest over SSH and return its stdout.

    Raises:
        PlatformError: SSH failed or the command exited non-zero.
    """
    try:
        proc = subprocess.run(
            ssh_argv(lab_dir, address, port) + [command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PlatformError(f"ssh {address}:{port}: no answer in {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise PlatformError(
            f"ssh {address}:{port} {command!r} exited {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc.stdout


def define_guest(
    ctx: LabContext,
    spec: GuestSpec,
    files: GuestFiles | None = None,
    pubkey: str | None = None,
    *,
    uris: Mapping[str, str] | None = None,
) -> None:
    """Define ``spec`` on its KVM host; a clone not running gets a fresh overlay.

    A running guest is left alone unless it runs another image (then it is destroyed and
    redefined). ``files`` and ``pubkey`` default to what the ``guests`` component published.

    Raises:
        VmBudgetError: ``spec`` is not a guest the budget admits.
        PlatformError: the component is not up, or libvirt failed.
    """
    import libvirt

    if not VM_BUDGET.admits(spec.name):
        raise VmBudgetError(
            f"guest {spec.name!r} is not in the VM budget; name throwaway "
            f"guests {VM_BUDGET.throwaway_prefix}*"
        )
    if files is None:
        state = ctx.state().get(NAME) or {}
        if "files" not in state:
            raise PlatformError("the guests component is not up (no published master image)")
        outer = Path(state["files"])
        files = GuestFiles(outer, f"{_kvm().SHARED_MOUNT}/{GUESTS_SUBDIR}/{outer.name}")
    if pubkey is None:
        key = _kvm().Paths.of(ctx).ssh_key
        pubkey = key.with_suffix(".pub").read_text().strip()
    uris = dict(uris or lab_hosts())
    uri = _uri_of(uris, spec)
    elsewhere = {h: u for h, u in uris.items() if h != spec.host}
    if spec.name in running_guests(elsewhere):
        # Migrated away and running there: its disk is in use, leave it as it is.
        return
    disk = "master.img" if spec.role == "master" else f"{spec.name}.qcow2"
    conn = _open(uri)
    try:
        active = False
        with contextlib.suppress(libvirt.libvirtError):
            dom = conn.lookupByName(spec.name)
            active = bool(dom.isActive())
            if active and files.inside(disk) not in dom.XMLDesc(0):
                ctx.log(f"guests: {spec.name} runs an older image; destroying it")
                dom.destroy()
                active = False
        if not active:
            if spec.role != "master":
                # Relative backing path: the same file inside the hosts and out here.
                make_overlay(Path("master.img"), files.outside(disk))
            # A ready line left from an earlier boot must not count for the next one.
            files.outside(f"{spec.name}.serial.log").unlink(missing_ok=True)
            conn.defineXML(domain_xml(spec, files, pubkey))
    except libvirt.libvirtError as exc:
        raise PlatformError(f"define {spec.name}: {exc.get_error_message()}", where=uri) from exc
    finally:
        conn.close()


def remove_guest(ctx: LabContext, name: str, host: str) -> None:
    """Destroy and undefine ``name`` on ``host`` and delete its overlay (if any)."""
    import libvirt

    uri = lab_hosts()[host]
    conn = _open(uri)
    try:
        with contextlib.suppress(libvirt.libvirtError):
            dom = conn.lookupByName(name)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    finally:
        conn.close()
    state = ctx.state().get(NAME) or {}
    if name != "master" and "files" in state:
        (Path(state["files"]) / f"{name}.qcow2").unlink(missing_ok=True)
        (Path(state["files"]) / f"{name}.serial.log").unlink(missing_ok=True)


#: The first SSH command on a guest that just printed its ready line (key exchange under TCG):
#: 3.6-17 s measured with the machine's cores shared (docs/lab-guests.md); 180 s is 10x that.
#: One try gives up after 60 s: a connection QEMU's user-mode network stalls stays stalled
#: for about 100 s, and a new one gets through.
SSH_READY_S = 180.0
SSH_TRY_S = 60.0


def _ssh_hostname(lab_dir: Path, spec: GuestSpec, bound: float = SSH_READY_S) -> str:
    """``hostname`` over SSH, tried again until it answers or ``bound`` seconds passed: the
    first connection to a fresh TCG guest is slow, and may be refused or cut meanwhile."""
    started = time.monotonic()
    while True:
        left = bound - (time.monotonic() - started)
        try:
            return ssh_run(
                lab_dir, spec.ssh_address, spec.ssh_port, "hostname", timeout=min(left, SSH_TRY_S)
            )
        except PlatformError as exc:
            if time.monotonic() - started >= bound:
                raise PlatformError(
                    f"{spec.name}: no SSH answer within {bound:.0f} s: {exc.one_line()}"
                ) from None
            time.sleep(0.5)


@dataclass
class Guests:
    """The ``guests`` lab component: the Master-VM (defined, not run) and its clones.

    ``up`` builds or reuses the master image, puts it on the KVM hosts' shared storage,
    defines ``master`` and every clone of :data:`VM_BUDGET` on its host, makes each clone a
    fresh overlay (so it has a first boot and its own identity), starts the clones within
    the budget, waits for their ready lines and checks SSH and the guest agent.
    """

    name: str = NAME
    budget: VmBudget = VM_BUDGET
    kvm_wait: float = 60.0  # libvirtd answering after the kvm component reports running
    ready_timeout: float = 300.0
    timings: dict[str, float] = field(default_factory=dict)

    # state.json: {"guests": {"digest": ..., "files": <outer dir>, "guests": {name: {...}}}}

    def _wait_for_kvm(self, ctx: LabContext) -> dict[str, str]:
        """The KVM hosts' URIs once their libvirtd answers.

        The guests need the ``kvm`` component: its ``up`` is idempotent and serialised per
        process, so calling it here waits for a start the lab manager runs in parallel, and
        starts the hosts when only ``guests`` was asked for.
        """
        import libvirt

        from vqual_lab import manager

        status = manager.component("kvm").up(ctx)
        if status.state != "running":
            raise PlatformError(f"the KVM hosts are not up: {status.detail}")
        uris = lab_hosts()
        deadline = time.monotonic() + self.kvm_wait
        libvirt.registerErrorHandler(_quiet_libvirt, None)
        while True:
            missing = []
            for uri in uris.values():
                try:
                    libvirt.open(uri).close()
                except libvirt.libvirtError:
                    missing.append(uri)
            if not missing:
                return uris
            if time.monotonic() > deadline:
                raise PlatformError(f"KVM hosts not answering: {', '.join(missing)}")
            time.sleep(1.0)

    def up(self, ctx: LabContext) -> ComponentStatus:
        """Build/reuse the image, define master and clones, start the clones (idempotent)."""
        started = time.monotonic()
        try:
            t0 = time.monotonic()
            image = build_master_image(ctx.lab_dir, ctx.log)
            self.timings["image"] = time.monotonic() - t0
            uris = self._wait_for_kvm(ctx)
            key_path = _kvm().ensure_ssh_key(_kvm().Paths.of(ctx))
            pubkey = key_path.with_suffix(".pub").read_text().strip()
            files = publish_image(ctx.lab_dir, image)
            records = self._define_all(ctx, files, pubkey, uris)
            ctx.update_state(
                NAME, {"digest": image.digest, "files": str(files.outer), "guests": records}
            )
            t0 = time.monotonic()
            problems = self._start_autostart(ctx, files, uris, records)
            self.timings["boot"] = time.monotonic() - t0
            ctx.update_state(
                NAME, {"digest": image.digest, "files": str(files.outer), "guests": records}
            )
        except PlatformError as exc:
            return ComponentStatus(NAME, "failed", exc.one_line(), self._log_tail(ctx))
        if problems:
            return ComponentStatus(NAME, "failed", "; ".join(problems), self._log_tail(ctx))
        ready = (
            ", ".join(
                f"{n} {r['ready_seconds']:.1f} s"
                for n, r in records.items()
                if "ready_seconds" in r
            )
            or "all were running"
        )
        return ComponentStatus(
            NAME,
            "running",
            f"image {image.digest[:16]} ({'built' if image.built else 'cached'}); ready: {ready};"
            f" up in {time.monotonic() - started:.1f} s",
        )

    def _define_all(
        self,
        ctx: LabContext,
        files: GuestFiles,
        pubkey: str,
        uris: Mapping[str, str],
    ) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        for spec in self.budget.guests:
            define_guest(ctx, spec, files, pubkey, uris=uris)
            records[spec.name] = {
                "host": spec.host,
                "uri": _uri_of(uris, spec),
                "domain": spec.name,
                "role": spec.role,
                "ssh_address": spec.ssh_address,
                "ssh_port": spec.ssh_port,
                "serial_log": str(files.outside(f"{spec.name}.serial.log")),
            }
        return records

    def _start_autostart(
        self,
        ctx: LabContext,
        files: GuestFiles,
        uris: Mapping[str, str],
        records: dict[str, dict[str, Any]],
    ) -> list[str]:
        """Start the autostart guests, then wait for all of them (they boot in parallel)."""
        running = running_guests(uris)
        starting: dict[str, float] = {}
        for spec in self.budget.guests:
            if not spec.autostart or spec.name in running:
                continue
            starting[spec.name] = time.monotonic()
            start_guest(ctx.lab_dir, spec.name, spec.host, budget=self.budget, uris=uris)
        problems: list[str] = []
        for spec in self.budget.guests:
            if not spec.autostart:
                continue
            rec = records[spec.name]
            try:
                if spec.name in starting:
                    rec["ready"] = wait_ready(
                        files.outside(f"{spec.name}.serial.log"),
                        timeout=self.ready_timeout,
                        alive=_is_running(spec.name, spec.host, uris[spec.host]),
                    )
                    rec["ready_seconds"] = round(time.monotonic() - starting[spec.name], 2)
                    ctx.log(f"guests: {spec.name} ready in {rec['ready_seconds']:.1f} s")
                hostname = _ssh_hostname(ctx.lab_dir, spec)
                if hostname.strip() != spec.name:
                    problems.append(f"{spec.name}: SSH reached {hostname.strip()!r}")
                agent(spec.name).ping()
            except PlatformError as exc:
                problems.append(f"{spec.name}: {exc.one_line()}")
        return problems

    def down(self, ctx: LabContext) -> ComponentStatus:
        """Destroy and undefine the lab's guests (throwaway ones too), remove their disks."""
        import libvirt

        problems: list[str] = []
        removed = 0
        kvm = _kvm()
        for host in kvm.hosts_from_env():
            if not kvm._port_open(host.address, kvm.LIBVIRT_PORT):
                continue  # host down: its guests ended with it
            try:
                conn = _open(host.libvirt_uri)
            except PlatformError as exc:
                problems.append(exc.one_line())
                continue
            try:
                for dom in conn.listAllDomains(0):
                    if not self.budget.admits(dom.name()):
                        continue
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
                    removed += 1
            except libvirt.libvirtError as exc:
                problems.append(f"{host.name}: {exc.get_error_message()}")
            finally:
                conn.close()
        shared = ctx.lab_dir / "shared" / GUESTS_SUBDIR
        if not problems and shared.is_dir():
            shutil.rmtree(shared)
        ctx.update_state(NAME, None)
        if problems:
            return ComponentStatus(NAME, "failed", "; ".join(problems), [])
        return ComponentStatus(NAME, "stopped", f"{removed} guests destroyed and undefined")

    def status(self, ctx: LabContext) -> ComponentStatus:
        state = ctx.state().get(NAME)
        if not state:
            return ComponentStatus(NAME, "stopped", "no guests defined")
        try:
            running = running_guests()
        except PlatformError as exc:
            return ComponentStatus(NAME, "failed", exc.one_line())
        want = [g.name for g in self.budget.guests if g.autostart]
        up = [n for n in want if n in running]
        extra = sorted(n for n in running if n not in want)
        detail = f"running: {', '.join(up) or 'none'}"
        if extra:
            detail += f"; also running: {', '.join(extra)}"
        if len(up) == len(want):
            return ComponentStatus(NAME, "running", detail)
        return ComponentStatus(NAME, "partial" if up else "stopped", detail)

    def inventory(self, ctx: LabContext) -> dict[str, Any]:
        key = str(_kvm().Paths.of(ctx).ssh_key)
        common = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": key,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        uris = lab_hosts()
        try:
            where = running_guests(uris)  # a migrated guest is reached where it runs now
        except PlatformError:
            where = {}
        groups: dict[str, Any] = {
            "master_vm": {"hosts": {}, "vars": {**common, "vqual_target_kinds": ["master_vm"]}},
            "clones": {"hosts": {}, "vars": {**common, "vqual_target_kinds": ["clone"]}},
        }
        for spec in self.budget.guests:
            group = "master_vm" if spec.role == "master" else "clones"
            groups[group]["hosts"][spec.name] = {
                "ansible_host": spec.ssh_address,
                "ansible_port": spec.ssh_port,
                "vqual_libvirt_uri": uris.get(where.get(spec.name, spec.host), ""),
                "vqual_libvirt_domain": spec.name,
            }
        return {"groups": groups}

    def _log_tail(self, ctx: LabContext) -> list[str]:
        lines: list[str] = []
        state = ctx.state().get(NAME) or {}
        for rec in (state.get("guests") or {}).values():
            log = Path(rec.get("serial_log", ""))
            if log.is_file():
                lines += [f"{log.name}: {line}" for line in tail(log, 8)]
        return lines[-30:]
