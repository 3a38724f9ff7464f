"""The lab's KVM cluster: chroot hosts, each with its own sshd, virtlogd and libvirtd.

Each "physical" KVM host (``kvm1`` on 127.0.0.11, ``kvm2`` on 127.0.0.12) is an overlay on
one cached base (mmdebstrap or debootstrap), run inside its own mount, UTS and PID namespaces
(``unshare --mount --uts --pid --fork``) under a PID 1 (``vqual-init``) that starts the host's
daemons and reaps. It has its own hostname, package database, sshd on its address (root by
the lab's SSH key), and libvirtd answering at ``qemu+tcp://<address>/system``. Guests are TCG
(KVM does not work on this machine) and live on storage every host sees at
``/srv/vqual-shared``, so live migration goes host to host.

Every mount is made inside the host's private mount namespace: when its PID 1 ends, the
kernel ends every process of the host and drops every mount, so ``down`` leaves nothing.
Limits: the hosts share the machine's kernel, CPU, DMI and network stack (docs/lab.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, PlatformError
from vqual_lab import repo
from vqual_lab.component import (
    ComponentStatus,
    LabContext,
    file_lock,
    mounts_under,
    pid_start_time,
    processes_under,
    same_process,
    stop_pid,
    tail,
)

NAME = "kvm"
SHARED_MOUNT = "/srv/vqual-shared"
CLUSTER = "lab-kvm"
LIBVIRT_PORT = 16509
AGENT_PORT = 8080
#: In every host: restarts a service and returns once it answers again, as ``systemctl
#: restart`` does (assets/kvm/vqual-lab-restart); the rolling patch's restart command.
RESTART_COMMAND = "vqual-lab-restart"
BASE_PACKAGES = (
    "openssh-server",
    "python3",
    "iproute2",
    "procps",
    "libvirt-daemon-system",
    "qemu-system-x86",
    "qemu-utils",
    "libvirt-clients",
    "dbus",
    "libpam-systemd",
    "qemu-guest-agent",
    "cron",
    "busybox",
)
# What a variation does to one host, so tests can provoke findings; ``reset`` undoes them.
VARIATIONS = {
    "loose-mode": "/etc/ssh/sshd_config mode 0666 instead of 0644",
    "pkg-version": f"{repo.AGENT} {repo.VARIANT_VERSION} instead of {repo.BASE_VERSION}",
}
_UUID_NS = uuid.UUID("5b0f3c2e-8d7a-4f43-9a55-0f6f1c1d2b10")
_BASE_STAMP = ".vqual-lab-base.json"
_CAPS_DIR = "var/cache/libvirt/qemu/capabilities"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class KvmHost:
    """One lab KVM host."""

    name: str
    address: str

    @property
    def host_uuid(self) -> str:
        """libvirt's ``host_uuid``: distinct per host, or migration sees "the same host"."""
        return str(uuid.uuid5(_UUID_NS, self.name))

    @property
    def libvirt_uri(self) -> str:
        return f"qemu+tcp://{self.address}/system"


DEFAULT_HOSTS = (KvmHost("kvm1", "127.0.0.11"), KvmHost("kvm2", "127.0.0.12"))


def hosts_from_env(value: str | None = None) -> tuple[KvmHost, ...]:
    """The hosts named by ``$VQUAL_LAB_KVM_HOSTS`` (``kvm1=127.0.0.11,kvm2=127.0.0.12``),
    or the default two. A second lab on other addresses can so run beside the first.

    Raises:
        BadInputError: malformed value or an address outside 127.0.0.0/8.
    """
    text = os.environ.get("VQUAL_LAB_KVM_HOSTS", "") if value is None else value
    if not text.strip():
        return DEFAULT_HOSTS
    hosts = []
    for item in text.split(","):
        name, sep, address = item.strip().partition("=")
        parts = address.split(".")
        if (
            not sep
            or not re.fullmatch(r"[a-z][a-z0-9-]*", name)
            or len(parts) != 4
            or parts[0] != "127"
            or not all(p.isdigit() and int(p) < 256 for p in parts)
        ):
            raise BadInputError(
                f"VQUAL_LAB_KVM_HOSTS entry {item!r} is not <name>=<127.x.y.z>", where="lab kvm"
            )
        hosts.append(KvmHost(name, address))
    return tuple(hosts)


@dataclass(frozen=True)
class Paths:
    """Where the KVM part of the lab keeps its files."""

    lab_dir: Path
    run_dir: Path

    @classmethod
    def of(cls, ctx: LabContext) -> Paths:
        return cls(ctx.lab_dir, ctx.run_dir)

    @property
    def base(self) -> Path:
        return self.lab_dir / "cache" / "kvm-base"

    @property
    def shared(self) -> Path:
        return self.lab_dir / "shared"

    @property
    def ssh_key(self) -> Path:
        return self.lab_dir / "ssh" / "id_ed25519"

    @property
    def caps_cache(self) -> Path:
        """libvirt's QEMU capabilities cache, kept from a host that probed (saves ~4 s of
        probing on each host's first connection; libvirt re-probes if it no longer fits)."""
        return self.lab_dir / "cache" / "libvirt-qemu-capabilities"

    @property
    def hosts_dir(self) -> Path:
        return self.run_dir / "kvm"

    def host_dir(self, host: KvmHost | str) -> Path:
        return self.hosts_dir / (host if isinstance(host, str) else host.name)


# --- the debootstrap base ----------------------------------------------------------------


def apt_mirror(etc_apt: Path = Path("/etc/apt")) -> tuple[str, str]:
    """The Debian mirror and suite this machine's own apt sources use.

    Reads ``sources.list.d/*.sources`` (deb822) and ``*.list`` / ``sources.list`` (one-line);
    picks the first ``deb`` entry for the release itself (not ``-updates`` / ``-security``).

    Returns:
        ``(uri, suite)``, for example ``("http://deb.debian.org/debian", "bookworm")``.

    Raises:
        PlatformError: no usable entry.
    """
    entries: list[tuple[str, str]] = []  # (uri, suite)
    files = [etc_apt / "sources.list"]
    if (etc_apt / "sources.list.d").is_dir():
        files += sorted((etc_apt / "sources.list.d").iterdir())
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    entries += [(uri, s) for s in fields.get("suites", "").split()]
        elif path.suffix == ".list" or path.name == "sources.list":
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], words[2]))
    for uri, suite in entries:
        if uri.startswith(("http://", "https://")) and "-" not in suite and "/" not in suite:
            return uri.rstrip("/"), suite
    raise PlatformError("no Debian release entry found in the apt sources", where=str(etc_apt))


def base_ready(paths: Paths) -> bool:
    """True if the cached base exists and was built with the current package list."""
    try:
        stamp = json.loads((paths.base / _BASE_STAMP).read_text())
    except (OSError, ValueError):
        return False
    return bool(stamp.get("packages") == list(BASE_PACKAGES))


def ensure_base(ctx: LabContext) -> Path:
    """Build the debootstrap base once and keep it as a cache in the lab dir.

    The base holds libvirt, QEMU and sshd, ``vqual-lab-agent`` 1.0, and apt configured with
    the lab repository as its only source.
    """
    paths = Paths.of(ctx)
    with file_lock(paths.lab_dir / "cache" / "kvm-base.lock"):
        if base_ready(paths):
            return paths.base
        uri, suite = apt_mirror()
        tmp = paths.base.with_name("kvm-base.partial")
        _remove_tree(tmp)
        argv = bootstrap_command(suite, tmp, uri, paths.lab_dir / "cache" / "debootstrap-debs")
        ctx.log(f"kvm: {argv[0]} {suite} from {uri} (one to a few minutes)")
        started = time.monotonic()
        log = paths.lab_dir / "cache" / "debootstrap.log"
        try:
            with open(log, "wb") as out:
                proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
            if proc.returncode != 0:
                raise PlatformError(
                    f"{argv[0]} failed (exit {proc.returncode}); see {log}", where="lab kvm"
                )
            _customise_base(ctx, tmp)
        except BaseException:
            _remove_tree(tmp)
            raise
        _remove_tree(paths.base)
        os.replace(tmp, paths.base)
        ctx.log(f"kvm: base ready in {time.monotonic() - started:.0f} s")
        return paths.base


def bootstrap_command(suite: str, target: Path, uri: str, cache: Path) -> list[str]:
    """The command that builds the base: ``mmdebstrap`` when installed, else ``debootstrap``.

    Measured here under the same load (2 cores busy with other work): debootstrap 220-540 s
    and 106 s of CPU, mmdebstrap 203 s and 60 s of CPU for the same package list. mmdebstrap
    installs through apt in fewer dpkg runs; unsafe-io skips fsyncs of a tree that is
    rebuilt from scratch if anything fails.
    """
    include = "--include=" + ",".join(BASE_PACKAGES)
    if shutil.which("mmdebstrap"):
        return [
            "mmdebstrap",
            "--variant=minbase",
            "--mode=root",
            "--dpkgopt=force-unsafe-io",
            include,
            suite,
            str(target),
            uri,
        ]
    cache.mkdir(parents=True, exist_ok=True)
    # Downloaded packages are kept: a rebuild (new package list) is quicker.
    return [
        "debootstrap",
        "--variant=minbase",
        f"--cache-dir={cache}",
        include,
        suite,
        str(target),
        uri,
    ]


def _customise_base(ctx: LabContext, root: Path) -> None:
    deb = repo.agent_deb(ctx.lab_dir, repo.BASE_VERSION)
    shutil.copy2(deb, root / "tmp" / deb.name)
    _run(["chroot", str(root), "dpkg", "-i", f"/tmp/{deb.name}"], where="base")
    (root / "tmp" / deb.name).unlink()
    # The lab repository is the hosts' only package source: upgrades never reach the network.
    (root / "etc/apt/sources.list").write_text(repo.SOURCES_LINE)
    for path in (root / "etc/apt/sources.list.d").iterdir():
        path.unlink()
    for path in (root / "var/lib/apt/lists").glob("*_*"):
        path.unlink()
    for path in (root / "var/cache/apt/archives").glob("*.deb"):
        path.unlink()
    # No init runs in the hosts: package scripts must not try to start daemons.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    # libvirt's default NAT network would start dnsmasq and a bridge on the machine's own
    # network stack, which the hosts share.
    for path in (root / "etc/libvirt/qemu/networks/autostart").glob("*"):
        path.unlink()
    stamp = {"packages": list(BASE_PACKAGES), "built": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    (root / _BASE_STAMP).write_text(json.dumps(stamp) + "\n")


# --- SSH key, test guest -----------------------------------------------------------------


def ensure_ssh_key(paths: Paths) -> Path:
    """The lab's SSH key pair (root login to every lab host), private part mode 0600."""
    key = paths.ssh_key
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.parent.chmod(0o700)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vqual-lab", "-f", str(key)])
    key.chmod(0o600)
    return key


@dataclass(frozen=True)
class GuestBoot:
    """Kernel and initrd of the lab's smallest guest, as paths inside the hosts."""

    kernel: str
    initrd: str


def ensure_guest_boot(ctx: LabContext) -> GuestBoot:
    """Put a bootable kernel and a busybox initrd that just ticks on the shared storage.

    The kernel is the machine's own ``/boot/vmlinuz-*`` (package ``linux-image-amd64``).

    Raises:
        PlatformError: no kernel in /boot or no static busybox.
    """
    paths = Paths.of(ctx)
    boot = paths.shared / "boot"
    kernel, initrd = boot / "vmlinuz", boot / "initrd-busybox.img"
    if kernel.exists() and initrd.exists():
        return GuestBoot(f"{SHARED_MOUNT}/boot/vmlinuz", f"{SHARED_MOUNT}/boot/{initrd.name}")
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    busybox = Path("/bin/busybox")
    if not kernels or not busybox.exists():
        raise PlatformError(
            "test guest needs /boot/vmlinuz-* and /bin/busybox "
            "(apt: linux-image-amd64 busybox-static; scripts/setup --lab)",
            where="lab kvm",
        )
    boot.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=boot) as tmp:
        root = Path(tmp) / "root"
        for d in ("bin", "dev", "proc", "sys", "tmp"):
            (root / d).mkdir(parents=True)
        shutil.copy2(busybox, root / "bin" / "busybox")
        (root / "bin" / "sh").symlink_to("busybox")
        (root / "init").write_bytes(_asset("guest-init.sh"))
        (root / "init").chmod(0o755)
        os.mknod(root / "dev" / "console", 0o600 | 0o020000, os.makedev(5, 1))
        files = subprocess.run(
            ["find", ".", "-print0"], cwd=root, capture_output=True, check=True
        ).stdout
        cpio = subprocess.run(
            ["cpio", "--null", "-o", "-H", "newc", "--quiet"],
            cwd=root,
            input=files,
            capture_output=True,
            check=True,
        ).stdout
        tmp_initrd = Path(tmp) / "initrd"
        tmp_initrd.write_bytes(cpio)
        shutil.copyfile(kernels[-1], Path(tmp) / "vmlinuz")
        os.replace(Path(tmp) / "vmlinuz", kernel)
        os.replace(tmp_initrd, initrd)
    return GuestBoot(f"{SHARED_MOUNT}/boot/vmlinuz", f"{SHARED_MOUNT}/boot/{initrd.name}")


def guest_xml(name: str, boot: GuestBoot, memory_mib: int = 96) -> str:
    """Domain XML of the smallest guest (TCG, direct kernel boot, no disk, no NIC)."""
    text = _asset("guest.xml").decode()
    return text.format(
        name=name,
        uuid=str(uuid.uuid5(_UUID_NS, "guest:" + name)),
        memory_mib=memory_mib,
        kernel=boot.kernel,
        initrd=boot.initrd,
    )


# --- one host ----------------------------------------------------------------------------


def _host_files(host: KvmHost, pubkey: str) -> dict[str, tuple[str, int]]:
    """Files written into a host's overlay before it starts: path -> (content, mode)."""
    # ready_tcp: where a service answers once it is ready (vqual-lab-restart waits for it).
    services = [
        {"name": "virtlogd", "argv": ["/usr/sbin/virtlogd"]},
        {
            "name": "libvirtd",
            "argv": ["/usr/sbin/libvirtd", "-l"],
            "ready_tcp": f"{host.address}:{LIBVIRT_PORT}",
        },
        {
            "name": "sshd",
            "argv": ["/usr/sbin/sshd", "-D", "-e"],
            "dirs": ["/run/sshd"],
            "ready_tcp": f"{host.address}:22",
        },
        {"name": "cron", "argv": ["/usr/sbin/cron", "-f"]},
        {
            "name": repo.AGENT,
            "argv": [f"/usr/sbin/{repo.AGENT}"],
            "env": {"VQUAL_AGENT_LISTEN": f"{host.address}:{AGENT_PORT}"},
            "ready_tcp": f"{host.address}:{AGENT_PORT}",
        },
    ]
    return {
        "etc/hostname": (host.name + "\n", 0o644),
        "etc/hosts": (f"127.0.0.1 localhost\n{host.address} {host.name}\n", 0o644),
        "etc/ssh/sshd_config.d/vqual-lab.conf": (
            # First value wins in sshd_config and the Debian file includes this one first.
            (
                f"ListenAddress {host.address}\n"
                "HostKey /etc/ssh/ssh_host_ed25519_key\n"
                "PermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\n"
                # No PAM: there is no logind and no loginuid to set in a chroot host.
                "UsePAM no\n"
            ),
            0o644,
        ),
        "root/.ssh/authorized_keys": (pubkey, 0o600),
        "etc/libvirt/libvirtd.conf": (
            (
                "listen_tls = 0\n"
                "listen_tcp = 1\n"
                f'listen_addr = "{host.address}"\n'
                'auth_tcp = "none"\n'
                'auth_unix_rw = "none"\n'
                'auth_unix_ro = "none"\n'
                f'host_uuid = "{host.host_uuid}"\n'
                'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
            ),
            0o644,
        ),
        "etc/libvirt/qemu.conf": (
            # The default private mount namespace breaks guest start ("Failed to create PTY");
            # there is no cgroup delegation and no security driver in a chroot host.
            (
                "namespaces = [ ]\n"
                'security_driver = "none"\n'
                "cgroup_controllers = [ ]\n"
                "remember_owner = 0\n"
                f'migration_address = "{host.address}"\n'
                f'migration_host = "{host.address}"\n'
            ),
            0o600,
        ),
        "etc/vqual-lab/services.json": (json.dumps(services, indent=1) + "\n", 0o644),
    }


def _prepare_host_dir(paths: Paths, host: KvmHost, pubkey: str) -> Path:
    """A fresh overlay upper dir with the host's own configuration (before any mount)."""
    hdir = paths.host_dir(host)
    _remove_tree(hdir)
    for sub in ("upper", "work", "root"):
        (hdir / sub).mkdir(parents=True)
    upper = hdir / "upper"
    for rel, (content, mode) in _host_files(host, pubkey).items():
        _mkdirs_like(paths.base, upper, Path(rel).parent)
        target = upper / rel
        target.write_text(content)
        target.chmod(mode)
    cached = sorted(paths.caps_cache.glob("*.xml"))
    if cached:
        _mkdirs_like(paths.base, upper, Path(_CAPS_DIR))
        for xml in cached:
            shutil.copy2(xml, upper / _CAPS_DIR / xml.name)
    _mkdirs_like(paths.base, upper, Path("usr/local/sbin"))
    for script in ("vqual-init", RESTART_COMMAND):
        (upper / "usr/local/sbin" / script).write_bytes(_asset(script))
        (upper / "usr/local/sbin" / script).chmod(0o755)
    key = upper / "etc/ssh/ssh_host_ed25519_key"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", str(key)])
    return hdir


def _mkdirs_like(base: Path, upper: Path, rel: Path) -> None:
    """Create ``upper/rel`` with each level's mode and owner taken from ``base`` (overlay
    shows the upper dir's attributes, so they must match the base's)."""
    current = Path()
    for part in rel.parts:
        current = current / part
        target = upper / current
        if target.is_dir():
            continue
        target.mkdir()
        src = base / current
        if src.is_dir():
            st = src.stat()
            os.chown(target, st.st_uid, st.st_gid)
            target.chmod(st.st_mode & 0o7777)
        else:
            target.chmod(0o700 if part == ".ssh" else 0o755)


def _start_host(ctx: LabContext, host: KvmHost, pubkey: str) -> dict[str, Any]:
    _prepare_host_dir(Paths.of(ctx), host, pubkey)
    return _launch_host(ctx, host)


def _launch_host(ctx: LabContext, host: KvmHost) -> dict[str, Any]:
    """Start a host's namespaces over its existing overlay dirs; returns its PID record."""
    paths = Paths.of(ctx)
    hdir = paths.host_dir(host)
    script = ctx.run_dir / "kvm" / "host-ns.sh"
    script.write_bytes(_asset("host-ns.sh"))
    script.chmod(0o755)
    log = open(hdir / "console.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--uts",
                "--pid",
                "--fork",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                str(script),
                host.name,
                str(paths.base),
                str(hdir / "upper"),
                str(hdir / "work"),
                str(hdir / "root"),
                str(paths.shared),
                SHARED_MOUNT,
                str(repo.repo_dir(ctx.lab_dir)),
                repo.REPO_MOUNT,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env={"PATH": _PATH, "LANG": "C.UTF-8"},
        )
    finally:
        log.close()
    _CHILDREN[proc.pid] = proc
    init_pid = _wait_child_of(proc.pid, timeout=5.0)
    return {
        "address": host.address,
        "unshare_pid": proc.pid,
        "unshare_start": _start_time(proc.pid),
        "init_pid": init_pid,
        "init_start": _start_time(init_pid) if init_pid else None,
    }


# Popen objects of namespaces started by this process, so ``down`` can reap them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _wait_child_of(pid: int, timeout: float) -> int | None:
    """The outer PID of ``unshare``'s forked child (the namespace's PID 1)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if children:
                return int(children[0])
        time.sleep(0.01)
    return None


def _start_time(pid: int | None) -> int | None:
    return pid_start_time(pid) if pid else None


def _port_open(address: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_ready(host: KvmHost, record: dict[str, Any], timeout: float) -> str | None:
    """Wait for sshd, libvirtd and the agent to answer; returns what is missing, or None."""
    deadline = time.monotonic() + timeout
    want = {"sshd": 22, "libvirtd": LIBVIRT_PORT, repo.AGENT: AGENT_PORT}
    while True:
        if not same_process(record["init_pid"] or 0, record["init_start"]):
            return "its PID 1 exited"
        missing = [n for n, port in want.items() if not _port_open(host.address, port)]
        if not missing:
            return None
        if time.monotonic() > deadline:
            return "not answering: " + ", ".join(missing)
        time.sleep(0.1)


# --- the component -----------------------------------------------------------------------


class KvmCluster:
    """The ``kvm`` lab component: a cluster of chroot KVM hosts and the lab repository."""

    name = NAME

    def __init__(self, hosts: Sequence[KvmHost] | None = None) -> None:
        self.hosts = tuple(hosts) if hosts is not None else hosts_from_env()
        self._lock = threading.Lock()

    def host(self, name: str) -> KvmHost:
        """The host called ``name``.

        Raises:
            BadInputError: no such host.
        """
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise BadInputError(f"no lab KVM host {name!r} (known: {known})", where="lab kvm")

    # state.json holds {"kvm": {"hosts": {name: record}, "variations": {name: [kinds]}}}
    def _records(self, ctx: LabContext) -> dict[str, dict[str, Any]]:
        hosts: dict[str, dict[str, Any]] = ctx.state().get(NAME, {}).get("hosts", {})
        return hosts

    def _alive(self, record: dict[str, Any] | None) -> bool:
        if not record or not record.get("init_pid"):
            return False
        return same_process(int(record["init_pid"]), record.get("init_start"))

    def up(self, ctx: LabContext) -> ComponentStatus:
        """Bring every host up (idempotent: running hosts are left alone)."""
        with self._lock, file_lock(ctx.lab_dir / "kvm.lock"):
            current = self.status(ctx)
            if current.state == "running":
                return ComponentStatus(NAME, "running", "already running: " + current.detail)
            if current.state == "partial":
                ctx.log("kvm: partially running; restarting it")
                self._down(ctx)
            try:
                return self._up(ctx)
            except PlatformError as exc:
                return ComponentStatus(NAME, "failed", exc.one_line(), self._log_tail(ctx))

    def _up(self, ctx: LabContext) -> ComponentStatus:
        started = time.monotonic()
        paths = Paths.of(ctx)
        paths.shared.mkdir(parents=True, exist_ok=True)
        paths.hosts_dir.mkdir(parents=True, exist_ok=True)
        # Hosts of this lab dir whose PIDs were lost (a crash between start and record):
        # they would hold the addresses and the upper dirs about to be replaced.
        for pid in _rooted_under(paths.hosts_dir):
            ctx.log(f"kvm: stopping PID {pid}, left over from an earlier run")
            stop_pid(pid, timeout=2.0)
        busy = [
            f"{h.address}:{port}"
            for h in self.hosts
            for port in (22, LIBVIRT_PORT, AGENT_PORT)
            if _port_open(h.address, port, timeout=0.2)
        ]
        if busy:
            raise PlatformError(
                f"address already in use ({', '.join(busy)}): another lab on the same "
                "addresses? (VQUAL_LAB_KVM_HOSTS moves this one)",
                where="lab kvm",
            )
        key = ensure_ssh_key(paths)
        repo.ensure_repo(ctx.lab_dir)
        ensure_base(ctx)
        pubkey = key.with_suffix(".pub").read_text()
        records: dict[str, dict[str, Any]] = {}
        for host in self.hosts:
            records[host.name] = _start_host(ctx, host, pubkey)
        # Record the PIDs at once, so ``down`` finds them even if readiness fails below.
        ctx.update_state(NAME, {"hosts": records, "variations": {}})
        problems = []
        for host in self.hosts:
            missing = _wait_ready(host, records[host.name], timeout=60.0)
            if missing:
                problems.append(f"{host.name} {missing}")
        if problems:
            return ComponentStatus(NAME, "failed", "; ".join(problems), self._log_tail(ctx))
        try:
            ensure_guest_boot(ctx)
        except (OSError, subprocess.CalledProcessError, PlatformError) as exc:
            # The hosts are fine without it; only the smallest test guest needs it.
            ctx.log(f"kvm: no test guest boot files: {exc}")
        for spec in filter(None, os.environ.get("VQUAL_LAB_VARY", "").split(",")):
            host_name, _, kind = spec.strip().partition(":")
            self.vary(ctx, host_name, kind)
        names = ", ".join(f"{h.name} {h.address}" for h in self.hosts)
        elapsed = time.monotonic() - started
        return ComponentStatus(NAME, "running", f"{names} up in {elapsed:.1f} s")

    def down(self, ctx: LabContext) -> ComponentStatus:
        """Destroy every guest, stop every host by PID, remove the hosts' runtime state."""
        with self._lock, file_lock(ctx.lab_dir / "kvm.lock"):
            return self._down(ctx)

    def _down(self, ctx: LabContext) -> ComponentStatus:
        started = time.monotonic()
        paths = Paths.of(ctx)
        records = self._records(ctx)
        problems: list[str] = []
        destroyed = 0
        for host in self.hosts:
            if self._alive(records.get(host.name)):
                try:
                    destroyed += destroy_guests(host)
                except PlatformError as exc:
                    problems.append(exc.one_line())
        for name, record in records.items():
            for pid_key, start_key in (
                ("init_pid", "init_start"),
                ("unshare_pid", "unshare_start"),
            ):
                pid = int(record.get(pid_key) or 0)
                if pid and same_process(pid, record.get(start_key)) and not stop_pid(pid):
                    problems.append(f"{name}: PID {pid} did not stop")
            proc = _CHILDREN.pop(int(record.get("unshare_pid") or 0), None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        # Anything still running from a host's root (there should be nothing: the kernel ends
        # a PID namespace with its PID 1).
        for pid in _rooted_under(paths.hosts_dir):
            stop_pid(pid, timeout=2.0)
        left = processes_under([paths.hosts_dir])
        mounts = mounts_under([paths.hosts_dir])
        if left:
            problems.append(f"processes left: {left}")
        if mounts:
            problems.append(f"mounts left: {mounts}")
        else:
            _keep_capabilities(paths, self.hosts)
            _remove_tree(paths.hosts_dir)
        ctx.update_state(NAME, None)
        elapsed = time.monotonic() - started
        if problems:
            return ComponentStatus(NAME, "failed", "; ".join(problems), self._log_tail(ctx))
        return ComponentStatus(
            NAME,
            "stopped",
            f"{len(records)} hosts stopped, {destroyed} guests destroyed in {elapsed:.1f} s",
        )

    def status(self, ctx: LabContext) -> ComponentStatus:
        records = self._records(ctx)
        up, parts = 0, []
        for host in self.hosts:
            record = records.get(host.name)
            if not self._alive(record):
                parts.append(f"{host.name} stopped")
                continue
            assert record is not None
            missing = [
                n
                for n, port in (("sshd", 22), ("libvirtd", LIBVIRT_PORT))
                if not _port_open(host.address, port)
            ]
            if missing:
                parts.append(f"{host.name} not answering: {', '.join(missing)}")
            else:
                up += 1
                parts.append(f"{host.name} {host.address}")
        if up == len(self.hosts):
            state = "running"
        elif up == 0 and not any(self._alive(records.get(h.name)) for h in self.hosts):
            state = "stopped"
        else:
            state = "partial"
        return ComponentStatus(NAME, state, ", ".join(parts))

    def inventory(self, ctx: LabContext) -> dict[str, Any]:
        key = str(Paths.of(ctx).ssh_key)
        hosts = {
            h.name: {
                "ansible_host": h.address,
                "vqual_libvirt_uri": h.libvirt_uri,
                # one fire compartment per host (URS-CL-02; qualification/checks/placement.py)
                "vqual_site": "lab",
                "vqual_fire_compartment": f"FC-{n}",
            }
            for n, h in enumerate(self.hosts, start=1)
        }
        group_vars = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": key,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
            "vqual_target_kinds": ["linux_host", "kvm_host", "libvirt_hypervisor"],
            "vqual_cluster": CLUSTER,
            # The site's decision on non-validated applications beside validated ones
            # (URS-RISK-02): the lab cluster carries validated guests only.
            "vqual_mixing": {"allowed": False, "reference": "lab: validated guests only"},
            # Rolling patch (qualification/platforms/libvirt/patch.py, platforms/libvirt/cluster.py): no
            # systemd runs in the hosts; their PID 1 restarts a killed service, and
            # vqual-lab-restart returns once it answers again (as systemctl restart does).
            # The agent serves its version, so it is restarted when upgraded. The shared
            # storage is a bind mount (libvirt needs VIR_MIGRATE_UNSAFE) and the guests' SSH
            # forwards are on this machine's one network stack (moved during a migration).
            "vqual_patch_restart_command": f"{RESTART_COMMAND} {{service}}",
            "vqual_patch_services": {repo.AGENT: repo.AGENT},
            "vqual_libvirt_unsafe_migration": True,
            "vqual_libvirt_forward_offset": 1000,  # guests.MIGRATION_PORT_OFFSET
        }
        return {"groups": {"kvm_hosts": {"hosts": hosts, "vars": group_vars}}}

    # --- operations tests use --------------------------------------------------------

    def exec(
        self, ctx: LabContext, host: str, argv: Sequence[str], *, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``argv`` inside ``host`` (its namespaces and root), not through SSH."""
        record = self._records(ctx).get(host)
        self.host(host)
        if not record or not self._alive(record):
            raise PlatformError(f"lab KVM host {host} is not running", where="lab kvm")
        cmd = ["nsenter", "-t", str(record["init_pid"]), "-m", "-u", "-p", "-r", "-w", "--"]
        return subprocess.run(
            cmd + list(argv),
            input=input,
            capture_output=True,
            check=False,
            env={"PATH": _PATH, "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"},
        )

    def _check(
        self, ctx: LabContext, host: str, argv: Sequence[str], *, input: bytes | None = None
    ) -> str:
        proc = self.exec(ctx, host, argv, input=input)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise PlatformError(
                f"{' '.join(argv[:3])} failed (exit {proc.returncode}): "
                f"{err[-1] if err else 'no output'}",
                where=f"lab {host}",
            )
        return proc.stdout.decode(errors="replace")

    def package_version(self, ctx: LabContext, host: str, package: str) -> str | None:
        """The installed version of ``package`` in ``host``'s own dpkg database."""
        proc = self.exec(ctx, host, ["dpkg-query", "-W", "-f=${Version}", package])
        if proc.returncode != 0:
            return None
        return proc.stdout.decode().strip() or None

    def restart_service(self, ctx: LabContext, host: str, service: str) -> None:
        """Restart one of a host's services (its PID 1 starts it again) and wait until it
        answers, with the host's own ``vqual-lab-restart`` (what a patch's restart runs)."""
        self._check(ctx, host, [RESTART_COMMAND, service])

    def patch(
        self, ctx: LabContext, host: str, packages: Sequence[str] = (repo.AGENT,)
    ) -> dict[str, tuple[str | None, str | None]]:
        """Upgrade ``packages`` inside one host from the lab repository.

        Package scripts start no daemon in a chroot host, so this restarts the agent (and
        libvirtd when a libvirt or QEMU package was upgraded) itself.

        Returns:
            ``{package: (version before, version after)}``.
        """
        before = {p: self.package_version(ctx, host, p) for p in packages}
        self._check(ctx, host, ["apt-get", "update", "-q"])
        self._check(
            ctx,
            host,
            [
                "apt-get",
                "install",
                "-y",
                "-q",
                "--only-upgrade",
                "-o",
                "Dpkg::Options::=--force-confold",
                *packages,
            ],
        )
        after = {p: self.package_version(ctx, host, p) for p in packages}
        changed = [p for p in packages if before[p] != after[p]]
        if repo.AGENT in changed:
            self.restart_service(ctx, host, repo.AGENT)
        if any(p.startswith(("libvirt", "qemu")) for p in changed):
            self.restart_service(ctx, host, "libvirtd")
        return {p: (before[p], after[p]) for p in packages}

    def reboot(self, ctx: LabContext, host: str, *, timeout: float = 60.0) -> float:
        """Stop one host and start it again over the same root filesystem (what a patch
        changed stays), as a reboot does. Its running guests die with it, as on a real host:
        migrate them away first.

        Returns:
            Seconds until the host answered again.

        Raises:
            PlatformError: the host is not running or does not come back.
        """
        with self._lock, file_lock(ctx.lab_dir / "kvm.lock"):
            started = time.monotonic()
            self._stop_host(ctx, host, signal.SIGTERM)
            self._relaunch(ctx, host, timeout)
            return time.monotonic() - started

    def fail(self, ctx: LabContext, host: str) -> float:
        """Fail one host as a power loss does: SIGKILL to its namespace's PID 1, so the
        kernel kills every process in it at once (services, QEMU and its guests) with no
        orderly stop. :meth:`power_on` brings it back over the same root filesystem.

        Returns:
            Seconds until its PID 1 was gone.

        Raises:
            PlatformError: the host is not running.
        """
        with self._lock, file_lock(ctx.lab_dir / "kvm.lock"):
            started = time.monotonic()
            self._stop_host(ctx, host, signal.SIGKILL)
            return time.monotonic() - started

    def power_on(self, ctx: LabContext, host: str, *, timeout: float = 60.0) -> float:
        """Start a host that :meth:`fail` stopped (a running host is left alone).

        Returns:
            Seconds until it answered on SSH, libvirt and the agent port (0 if it ran).

        Raises:
            PlatformError: it does not come back.
        """
        with self._lock, file_lock(ctx.lab_dir / "kvm.lock"):
            if self._alive(self._records(ctx).get(host) or {}):
                return 0.0
            started = time.monotonic()
            self._relaunch(ctx, host, timeout)
            return time.monotonic() - started

    def _stop_host(self, ctx: LabContext, host: str, sig: int) -> None:
        self.host(host)
        record = self._records(ctx).get(host)
        if not record or not self._alive(record):
            raise PlatformError(f"lab KVM host {host} is not running", where="lab kvm")
        for pid_key, start_key in (("init_pid", "init_start"), ("unshare_pid", "unshare_start")):
            pid = int(record.get(pid_key) or 0)
            if pid and same_process(pid, record.get(start_key)):
                stop_pid(pid, sig=sig)
            proc = _CHILDREN.pop(pid, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)

    def _relaunch(self, ctx: LabContext, host: str, timeout: float) -> None:
        kvm_host = self.host(host)
        # A stale work dir would make the overlay mount fail.
        _remove_tree(Paths.of(ctx).host_dir(kvm_host) / "work")
        (Paths.of(ctx).host_dir(kvm_host) / "work").mkdir()
        new = _launch_host(ctx, kvm_host)
        entry = ctx.state().get(NAME, {})
        entry.setdefault("hosts", {})[host] = new
        ctx.update_state(NAME, entry)
        missing = _wait_ready(kvm_host, new, timeout=timeout)
        if missing:
            raise PlatformError(f"{host} did not come back: {missing}", where="lab kvm")

    def vary(self, ctx: LabContext, host: str, kind: str) -> None:
        """Make ``host`` differ from the others (see ``VARIATIONS``), to provoke findings.

        Raises:
            BadInputError: unknown host or kind.
        """
        self.host(host)
        if kind == "loose-mode":
            self._check(ctx, host, ["chmod", "0666", "/etc/ssh/sshd_config"])
        elif kind == "pkg-version":
            self._install_agent(ctx, host, repo.VARIANT_VERSION)
        else:
            known = ", ".join(VARIATIONS)
            raise BadInputError(f"unknown variation {kind!r} (known: {known})", where="lab kvm")
        state = ctx.state()
        entry = state.get(NAME, {})
        kinds = entry.setdefault("variations", {}).setdefault(host, [])
        if kind not in kinds:
            kinds.append(kind)
        ctx.update_state(NAME, entry)
        ctx.log(f"kvm: {host} varied: {VARIATIONS[kind]}")

    def reset(self, ctx: LabContext, host: str | None = None) -> None:
        """Bring one host (or all) back to the baseline: mode 0644, agent 1.0."""
        for name in [host] if host else [h.name for h in self.hosts]:
            self._check(ctx, name, ["chmod", "0644", "/etc/ssh/sshd_config"])
            if self.package_version(ctx, name, repo.AGENT) != repo.BASE_VERSION:
                self._install_agent(ctx, name, repo.BASE_VERSION)
            entry = ctx.state().get(NAME, {})
            entry.setdefault("variations", {}).pop(name, None)
            ctx.update_state(NAME, entry)

    def _install_agent(self, ctx: LabContext, host: str, version: str) -> None:
        deb = repo.agent_deb(ctx.lab_dir, version)
        inner = f"/tmp/{deb.name}"
        self._check(ctx, host, ["sh", "-c", f"cat > {inner}"], input=deb.read_bytes())
        self._check(ctx, host, ["dpkg", "-i", "--force-downgrade", "--force-confold", inner])
        self._check(ctx, host, ["rm", "-f", inner])
        self.restart_service(ctx, host, repo.AGENT)

    def _log_tail(self, ctx: LabContext) -> list[str]:
        lines: list[str] = []
        paths = Paths.of(ctx)
        for host in self.hosts:
            hdir = paths.host_dir(host)
            for path in (
                hdir / "console.log",
                hdir / "upper/var/log/libvirt/libvirtd.log",
                hdir / "upper/var/log/vqual-lab/sshd.log",
            ):
                lines += [f"{host.name}: {line}" for line in tail(path, 5)]
        lines += [f"debootstrap: {x}" for x in tail(paths.lab_dir / "cache/debootstrap.log", 5)]
        return lines[-30:]


def _keep_capabilities(paths: Paths, hosts: Sequence[KvmHost]) -> None:
    """Keep the QEMU capabilities a host probed, for the next ``up`` (hosts stopped)."""
    if any(paths.caps_cache.glob("*.xml")):
        return
    for host in hosts:
        probed = sorted((paths.host_dir(host) / "upper" / _CAPS_DIR).glob("*.xml"))
        if probed:
            tmp = paths.caps_cache.with_name(paths.caps_cache.name + ".partial")
            _remove_tree(tmp)
            tmp.mkdir(parents=True)
            for xml in probed:
                shutil.copy2(xml, tmp / xml.name)
            _remove_tree(paths.caps_cache)
            os.replace(tmp, paths.caps_cache)
            return


def destroy_guests(host: KvmHost) -> int:
    """Destroy (and undefine) every guest on ``host``'s libvirtd; returns how many ran."""
    if not _port_open(host.address, LIBVIRT_PORT):
        return 0
    import libvirt

    try:
        conn = libvirt.open(host.libvirt_uri)
    except libvirt.libvirtError as exc:
        raise PlatformError(f"cannot connect: {exc}", where=host.libvirt_uri) from exc
    count = 0
    try:
        for dom in conn.listAllDomains():
            try:
                persistent = dom.isPersistent()  # a transient one is gone once destroyed
                if dom.isActive():
                    dom.destroy()
                    count += 1
                if persistent:
                    dom.undefine()
            except libvirt.libvirtError as exc:
                # A guest that ended on its own meanwhile is what we want anyway.
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
    except libvirt.libvirtError as exc:
        raise PlatformError(f"destroying guests failed: {exc}", where=host.libvirt_uri) from exc
    finally:
        conn.close()
    return count


def _rooted_under(path: Path) -> list[int]:
    """PIDs whose root directory is inside ``path`` (a host's processes; not, say, someone
    reading a log file there, which ``processes_under`` would also name)."""
    prefix = str(path).rstrip("/") + "/"
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if (os.readlink(f"/proc/{entry}/root") + "/").startswith(prefix):
                    found.append(int(entry))
    return found


def _asset(name: str) -> bytes:
    return resources.files("vqual_lab").joinpath("assets", "kvm", name).read_bytes()


def _remove_tree(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if mounts_under([path]):
        raise PlatformError(f"refusing to remove {path}: something is mounted there", where="lab")
    shutil.rmtree(path)


def _run(argv: list[str], where: str = "kvm") -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise PlatformError(
            f"{argv[0]} failed (exit {proc.returncode}): {msg[-1] if msg else 'no output'}",
            where=f"lab {where}",
        )
    return proc.stdout
