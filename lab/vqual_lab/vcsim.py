"""The lab's VMware simulator: one vCenter and one standalone ESXi, both VMware's vcsim.

Debian's ``golang-github-vmware-govmomi-dev`` (0.24) ships the simulator library but no
``vcsim`` command, so the lab builds its own small command (``assets/vcsim/main.go``) offline,
after copying the library into a private GOPATH and applying the lab's patches
(``assets/vcsim/*.patch``: a panic in ``PropertyCollector.Fetch`` on unset properties, and
``CustomFieldsManager.SetField`` adding a second value instead of replacing). The binary is
cached in the lab directory under a digest of everything that goes into it.

It is a simulator, not VMware: what it cannot do is listed in ``docs/lab.md``. Credentials are
generated per lab run and kept in 0600 files under ``<lab dir>/run/vcsim/``; the inventory
reads them with Ansible's ``file`` lookup, so they never appear in ``inventories/lab/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, PlatformError
from vqual_lab.component import (
    ComponentStatus,
    LabContext,
    file_lock,
    pid_start_time,
    processes_under,
    same_process,
    stop_pid,
    tail,
)

ASSETS = Path(__file__).parent / "assets" / "vcsim"
GOCODE = Path("/usr/share/gocode")
GOVMOMI_IMPORT = "github.com/vmware/govmomi"
GOVMOMI_DEB = "golang-github-vmware-govmomi-dev"

# Custom attribute (vCenter) that a patch step sets on a host; on the standalone ESXi, which
# has no CustomFieldsManager, the same mark is the host advanced option below.
PATCH_MARK_FIELD = "vqual.patch"
PATCH_MARK_OPTION = "UserVars.vqual.patch"

_SDK_TIMEOUT = 30.0

# Build settings, part of the cache digest. GOPATH mode, no module proxy: offline only.
# Debian ships the standard library prebuilt with cgo: reusing it costs about a third less
# CPU in a cold build than CGO_ENABLED=0.
GO_ENV = {"GO111MODULE": "off", "GOFLAGS": "", "GOPROXY": "off", "CGO_ENABLED": "1"}


def is_loopback(address: str) -> bool:
    """True if ``address`` is an IPv4 address in 127.0.0.0/8 (the only place lab targets live)."""
    try:
        return ipaddress.IPv4Address(address) in ipaddress.IPv4Network("127.0.0.0/8")
    except ValueError:
        return False


@dataclass(frozen=True)
class HostHardware:
    """Hardware a simulated host reports (``hardware.biosInfo``, ``hardware.systemInfo``).

    None keeps the value of the instance default (or the simulator's own default).
    """

    bios_vendor: str | None = None
    bios_version: str | None = None
    bios_date: str | None = None  # YYYY-MM-DD
    system_vendor: str | None = None
    system_model: str | None = None


@dataclass(frozen=True)
class VcsimInstance:
    """One simulator process.

    Attributes:
        key: ``vcenter`` or ``esxi``: state key, inventory group and credentials file name.
        inventory_host: The host name in the lab inventory.
        mode: ``vcenter`` or ``esx`` (the ``-mode`` flag of main.go).
        address: A 127.0.0.0/8 address to listen on.
        port: TCP port of the SDK.
        cluster_hosts: vCenter only: hosts in the one cluster.
        vms: VMs per resource pool (vCenter: the last one becomes the template).
        hardware: Per-host hardware, keyed by host name (``*`` = every host).
    """

    key: str
    inventory_host: str
    mode: str
    address: str
    port: int
    cluster_hosts: int = 4
    vms: int = 4
    hardware: dict[str, HostHardware] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not is_loopback(self.address):
            raise BadInputError(f"vcsim {self.key}: address {self.address} is not in 127.0.0.0/8")
        if not 0 < self.port < 65536:
            raise BadInputError(f"vcsim {self.key}: port {self.port} is out of range")
        if self.mode not in ("vcenter", "esx"):
            raise BadInputError(f"vcsim {self.key}: mode must be vcenter or esx, not {self.mode}")
        if self.mode == "vcenter" and self.cluster_hosts < 1:
            raise BadInputError(f"vcsim {self.key}: cluster_hosts must be at least 1")

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}/sdk"

    def args(self) -> list[str]:
        """main.go flags for this instance's model and hardware (no credentials, no paths)."""
        out = ["-mode", self.mode, "-listen", f"{self.address}:{self.port}", "-vms", str(self.vms)]
        if self.mode == "vcenter":
            out += ["-hosts", str(self.cluster_hosts)]
        flags = (
            ("bios_vendor", "-bios-vendor"),
            ("bios_version", "-bios-version"),
            ("bios_date", "-bios-date"),
            ("system_vendor", "-system-vendor"),
            ("system_model", "-system-model"),
        )
        # main.go lets a named host's value win over "*"; sorted only to keep argv stable.
        for host in sorted(self.hardware, key=lambda h: (h != "*", h)):
            hw = self.hardware[host]
            for attr, flag in flags:
                value = getattr(hw, attr)
                if value is not None:
                    out += [flag, f"{host}={value}"]
        return out


# The default lab: a 4-host cluster of one (plausible, HCL-listed) server model whose last host
# runs an older BIOS, so a homogeneity check has a finding to report; and one standalone ESXi.
DEFAULT_VCENTER = VcsimInstance(
    key="vcenter",
    inventory_host="vcsim-vc",
    mode="vcenter",
    address="127.0.0.41",
    port=18443,
    cluster_hosts=4,
    vms=4,
    hardware={
        "*": HostHardware(
            bios_vendor="Dell Inc.",
            bios_version="2.19.1",
            bios_date="2023-05-10",
            system_vendor="Dell Inc.",
            system_model="PowerEdge R650",
        ),
        "DC0_C0_H3": HostHardware(bios_version="2.17.0", bios_date="2022-11-02"),
    },
)
DEFAULT_ESXI = VcsimInstance(
    key="esxi",
    inventory_host="vcsim-esx",
    mode="esx",
    address="127.0.0.42",
    port=18444,
    vms=2,
    hardware={
        "*": HostHardware(
            bios_vendor="Dell Inc.",
            bios_version="2.19.1",
            bios_date="2023-05-10",
            system_vendor="Dell Inc.",
            system_model="PowerEdge R650",
        )
    },
)


def instances_from_env(value: str | None = None) -> tuple[VcsimInstance, ...]:
    """The default instances, moved to the addresses in ``$VQUAL_LAB_VCSIM``
    (``vcenter=127.0.0.141:28443,esxi=127.0.0.142:28444``; unnamed instances keep theirs), so
    a second lab can run beside the first.

    Raises:
        BadInputError: malformed value, unknown instance, or an address outside 127.0.0.0/8.
    """
    text = os.environ.get("VQUAL_LAB_VCSIM", "") if value is None else value
    instances = {i.key: i for i in (DEFAULT_VCENTER, DEFAULT_ESXI)}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, where = item.partition("=")
        address, colon, port = where.rpartition(":")
        if not sep or not colon or key not in instances or not port.isdigit():
            raise BadInputError(
                f"VQUAL_LAB_VCSIM entry {item!r} is not <vcenter|esxi>=<127.x.y.z>:<port>",
                where="lab vcsim",
            )
        instances[key] = dataclasses.replace(instances[key], address=address, port=int(port))
    return tuple(instances.values())


# --- build ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildResult:
    """The simulator binary and how it was obtained."""

    binary: Path
    digest: str
    built: bool  # False: taken from the cache
    seconds: float


def _run(cmd: Sequence[str], **kw: Any) -> str:
    """Run a short command and return its stdout; PlatformError (one line) if it fails."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kw)
    except FileNotFoundError as exc:
        raise PlatformError(f"{cmd[0]} not found: run scripts/setup --lab") from exc
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PlatformError(f"{' '.join(cmd[:2])} failed (rc {proc.returncode}): {last}")
    return str(proc.stdout)


def patches() -> list[Path]:
    """The lab's patches to the simulator library, in the order they are applied."""
    return sorted(ASSETS.glob("*.patch"))


def source_digest(*, patched: bool = True) -> str:
    """SHA-256 over everything the binary is built from: main.go, the patches (unless
    ``patched`` is False), the build settings, the Go toolchain and govmomi package versions."""
    h = hashlib.sha256()
    h.update(b"main.go\0" + (ASSETS / "main.go").read_bytes())
    for p in patches() if patched else []:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    h.update(json.dumps(GO_ENV, sort_keys=True).encode())
    h.update(_run(["go", "version"]).encode())
    h.update(_run(["dpkg-query", "-W", "-f=${Version}", GOVMOMI_DEB]).encode())
    return h.hexdigest()


def build(
    lab_dir: Path, log: Callable[[str], None] = lambda _m: None, *, patched: bool = True
) -> BuildResult:
    """Build the simulator command unless the cache holds one for the current sources.

    Copies govmomi from ``/usr/share/gocode`` into a private GOPATH, applies the patches,
    builds ``main.go`` with ``GO111MODULE=off`` and no network (``GOPROXY=off``).

    Args:
        lab_dir: The lab directory (cache under ``<lab_dir>/vcsim/``).
        log: Progress messages.
        patched: False builds upstream's simulator as shipped, into ``bin-unpatched/``, only
            to show what the patches fix; the lab never runs it.

    Returns:
        The binary's path under ``<lab_dir>/vcsim/bin/``, keyed by :func:`source_digest`.

    Raises:
        PlatformError: Go or the govmomi package is missing, a patch does not apply, or the
            build fails (the last line of the build log is in the message).
    """
    start = time.monotonic()
    home = lab_dir / "vcsim"
    upstream = GOCODE / "src" / GOVMOMI_IMPORT
    if not (upstream / "simulator").is_dir():
        raise PlatformError(f"{upstream}/simulator not found: run scripts/setup --lab")
    for tool in ("go", "gcc", "patch", "dpkg-query"):
        if shutil.which(tool) is None:
            raise PlatformError(f"{tool} not found: run scripts/setup --lab")
    if not patches():
        raise PlatformError(f"no simulator patches in {ASSETS}: the package is incomplete")
    digest = source_digest(patched=patched)
    binary = home / ("bin" if patched else "bin-unpatched") / f"vqual-vcsim-{digest[:16]}"
    with file_lock(home / "build.lock"):
        if binary.is_file():
            return BuildResult(binary, digest, False, time.monotonic() - start)
        log(f"vcsim: building simulator {digest[:16]} (offline, GOPATH mode)")
        work = home / "build"
        shutil.rmtree(work, ignore_errors=True)
        gopath = work / "gopath"
        dest = gopath / "src" / GOVMOMI_IMPORT
        shutil.copytree(upstream, dest, symlinks=True)
        build_log = home / "build.log"
        with open(build_log, "w") as out:
            for p in patches() if patched else []:
                rc = subprocess.run(
                    ["patch", "-p1", "--forward", "--batch", "-d", str(dest), "-i", str(p)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=False,
                ).returncode
                if rc != 0:
                    raise PlatformError(
                        f"patch {p.name} does not apply to {GOVMOMI_DEB}", where=str(build_log)
                    )
            cmd_dir = gopath / "src" / "vqual-vcsim"
            cmd_dir.mkdir(parents=True)
            shutil.copy2(ASSETS / "main.go", cmd_dir / "main.go")
            binary.parent.mkdir(parents=True, exist_ok=True)
            partial = binary.with_suffix(".partial")
            env = {
                **os.environ,
                "GOPATH": f"{gopath}:{GOCODE}",
                **GO_ENV,
                "GOCACHE": str(home / "gocache"),
            }
            rc = subprocess.run(
                ["go", "build", "-o", str(partial), "."],
                cwd=cmd_dir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        if rc != 0:
            last = (tail(build_log, 1) or ["no output"])[0]
            raise PlatformError(f"go build failed: {last}", where=str(build_log))
        os.replace(partial, binary)
        for old in binary.parent.glob("vqual-vcsim-*"):
            if old != binary:
                old.unlink()
        shutil.rmtree(work, ignore_errors=True)
        seconds = time.monotonic() - start
        log(f"vcsim: built {binary.name} in {seconds:.1f} s")
        return BuildResult(binary, digest, True, seconds)


# --- credentials and connections --------------------------------------------------------


def credentials_file(ctx: LabContext, instance: VcsimInstance) -> Path:
    """The 0600 JSON file ``{"username", "password"}`` of one instance for this lab run."""
    return ctx.run_dir / "vcsim" / f"{instance.key}.credentials.json"


def _write_credentials(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    data = {
        "username": f"vqual-lab-{secrets.token_hex(3)}",
        "password": secrets.token_urlsafe(18),
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_credentials(ctx: LabContext, instance: VcsimInstance) -> tuple[str, str]:
    """(username, password) of a running instance.

    Raises:
        BadInputError: The file is missing (the lab is not up) or readable by others.
    """
    path = credentials_file(ctx, instance)
    try:
        mode = path.stat().st_mode & 0o777
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInputError(
            f"no vcsim credentials ({exc}); is the lab up?", where=str(path)
        ) from exc
    if mode & 0o077:
        raise BadInputError(f"mode {mode:o} is too open, want 0600", where=str(path))
    return str(data["username"]), str(data["password"])


def connect(ctx: LabContext, instance: VcsimInstance, *, timeout: float = 10.0) -> Any:
    """A pyVmomi ServiceInstance logged in to ``instance``.

    The lab's certificates are self-signed, so verification is switched off here on purpose,
    as the lab inventory does with ``vqual_vsphere_validate_certs: false``.

    Raises:
        PlatformError: The SDK does not answer or refuses the login.
    """
    from pyVim import connect as pyvim_connect
    from pyVmomi import vim

    smart_connect: Any = pyvim_connect.SmartConnect  # untyped library function
    user, pwd = read_credentials(ctx, instance)
    unverified = ssl._create_unverified_context()  # lab only: self-signed simulator cert
    try:
        return smart_connect(
            host=instance.address,
            port=instance.port,
            user=user,
            pwd=pwd,
            sslContext=unverified,
            httpConnectionTimeout=timeout,
        )
    except (OSError, vim.fault.InvalidLogin, vim.fault.VimFault) as exc:
        raise PlatformError(f"vcsim {instance.key} at {instance.url}: {exc}") from exc


def disconnect(si: Any) -> None:
    """Log out a ServiceInstance from :func:`connect`."""
    from pyVim import connect as pyvim_connect

    logout: Any = pyvim_connect.Disconnect  # untyped library function
    logout(si)


# --- the patch mark ----------------------------------------------------------------------


def _find_host(si: Any, host_name: str) -> Any:
    from pyVmomi import vim

    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    try:
        for host in view.view:
            if host.name == host_name:
                return host
    finally:
        view.Destroy()
    raise BadInputError(f"no host named {host_name!r}")


def read_patch_mark(si: Any, host_name: str) -> list[str]:
    """The patch entries recorded on a host, oldest first (empty if none).

    vCenter: the host's custom attribute ``vqual.patch``; standalone ESXi: its advanced option
    ``UserVars.vqual.patch``. The value is a JSON list of strings.
    """
    from pyVmomi import vim

    content = si.RetrieveContent()
    host = _find_host(si, host_name)
    raw = ""
    if content.customFieldsManager is not None:
        keys = [
            f.key for f in content.customFieldsManager.field or [] if f.name == PATCH_MARK_FIELD
        ]
        for value in host.customValue or []:
            if keys and value.key == keys[0]:
                raw = value.value
    else:
        try:
            opts = host.configManager.advancedOption.QueryOptions(PATCH_MARK_OPTION)
        except vim.fault.InvalidName:
            opts = []
        raw = next((str(o.value) for o in opts if o.key == PATCH_MARK_OPTION), "")
    if not raw:
        return []
    entries = json.loads(raw)
    if not isinstance(entries, list):
        raise PlatformError(f"{host_name}: patch mark is not a JSON list: {raw[:80]}")
    return [str(e) for e in entries]


def add_patch_mark(si: Any, host_name: str, entry: str) -> list[str]:
    """Append ``entry`` (for example ``<change id> <package>=<version>``) to a host's patch
    mark and return the entries now recorded. Read back through any other connection."""
    from pyVmomi import vim

    content = si.RetrieveContent()
    host = _find_host(si, host_name)
    entries = read_patch_mark(si, host_name) + [entry]
    value = json.dumps(entries)
    cfm = content.customFieldsManager
    if cfm is not None:
        field_def = next((f for f in cfm.field or [] if f.name == PATCH_MARK_FIELD), None)
        if field_def is None:
            field_def = cfm.AddCustomFieldDef(name=PATCH_MARK_FIELD, moType=vim.HostSystem)
        cfm.SetField(entity=host, key=field_def.key, value=value)
    else:
        option: Any = vim.option.OptionValue  # untyped library class
        host.configManager.advancedOption.UpdateOptions(
            changedValue=[option(key=PATCH_MARK_OPTION, value=value)]
        )
    return entries


def clear_patch_mark(si: Any, host_name: str) -> None:
    """Remove every entry of a host's patch mark (the value becomes empty)."""
    from pyVmomi import vim

    content = si.RetrieveContent()
    host = _find_host(si, host_name)
    cfm = content.customFieldsManager
    if cfm is not None:
        field_def = next((f for f in cfm.field or [] if f.name == PATCH_MARK_FIELD), None)
        if field_def is not None:
            cfm.SetField(entity=host, key=field_def.key, value="")
    else:
        option: Any = vim.option.OptionValue  # untyped library class
        host.configManager.advancedOption.UpdateOptions(
            changedValue=[option(key=PATCH_MARK_OPTION, value="")]
        )


# --- the component ----------------------------------------------------------------------


def _sdk_answers(instance: VcsimInstance, timeout: float = 2.0) -> bool:
    """True if the SDK endpoint answers a version probe over TLS (no login)."""
    import http.client

    conn = http.client.HTTPSConnection(
        instance.address,
        instance.port,
        timeout=timeout,
        context=ssl._create_unverified_context(),  # lab only: self-signed simulator cert
    )
    try:
        conn.request("GET", "/sdk/vimServiceVersions.xml")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


class VcsimComponent:
    """LabComponent ``vcsim``: VMware's simulator as vCenter and as standalone ESXi."""

    name = "vcsim"

    def __init__(self, instances: Sequence[VcsimInstance] | None = None) -> None:
        """``instances`` default to :func:`instances_from_env`."""
        instances = instances_from_env() if instances is None else instances
        keys = [i.key for i in instances]
        if len(set(keys)) != len(keys):
            raise BadInputError(f"vcsim: duplicate instance keys {keys}")
        self.instances = tuple(instances)
        self.last_build: BuildResult | None = None
        # Popen objects of processes this Python process started, kept so they are reaped
        # (and not reported as leaked by the garbage collector) when stopped.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def instance(self, key: str) -> VcsimInstance:
        for inst in self.instances:
            if inst.key == key:
                return inst
        raise BadInputError(f"vcsim: no instance {key!r}")

    def _dir(self, ctx: LabContext) -> Path:
        return ctx.run_dir / "vcsim"

    def _log(self, ctx: LabContext, inst: VcsimInstance) -> Path:
        return self._dir(ctx) / f"{inst.key}.log"

    def _alive(self, ctx: LabContext) -> dict[str, bool]:
        recorded = ctx.state().get(self.name, {}).get("processes", {})
        return {
            inst.key: inst.key in recorded
            and same_process(int(recorded[inst.key]["pid"]), recorded[inst.key].get("start"))
            for inst in self.instances
        }

    def up(self, ctx: LabContext) -> ComponentStatus:
        alive = self._alive(ctx)
        if all(alive.values()) and all(_sdk_answers(i) for i in self.instances):
            return ComponentStatus(self.name, "running", "already running: " + self._urls())
        if any(alive.values()):
            self.down(ctx)  # half up: start again from clean
        else:
            # Leftovers of a run that crashed (old logs, credentials, datastore directories).
            shutil.rmtree(self._dir(ctx), ignore_errors=True)
        try:
            result = build(ctx.lab_dir, ctx.log)
        except PlatformError as exc:
            log = Path(exc.where) if exc.where else ctx.lab_dir / "vcsim" / "build.log"
            return ComponentStatus(self.name, "failed", exc.one_line(), tail(log))
        self.last_build = result
        run = self._dir(ctx)
        (run / "tmp").mkdir(parents=True, exist_ok=True)
        processes: dict[str, dict[str, Any]] = {}
        for inst in self.instances:
            cred = credentials_file(ctx, inst)
            _write_credentials(cred)
            cert = run / f"{inst.key}.crt"
            cmd = [
                str(result.binary),
                *inst.args(),
                "-credentials",
                str(cred),
                "-cert-out",
                str(cert),
            ]
            # The simulator's datastores are temporary directories: keep them under run/.
            env = {**os.environ, "TMPDIR": str(run / "tmp")}
            with open(self._log(ctx, inst), "ab") as out:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=run,
                    env=env,
                    start_new_session=True,
                )
            self._children[proc.pid] = proc
            processes[inst.key] = {
                "pid": proc.pid,
                "start": pid_start_time(proc.pid),
                "url": inst.url,
                "binary": str(result.binary),
            }
            state = ctx.state()
            state[self.name] = {"processes": dict(processes)}
            ctx.save_state(state)
        failed: list[VcsimInstance] = []
        deadline = time.monotonic() + _SDK_TIMEOUT
        for inst in self.instances:
            pid = processes[inst.key]["pid"]
            while not _sdk_answers(inst, timeout=1.0):
                if (
                    not same_process(pid, processes[inst.key]["start"])
                    or time.monotonic() > deadline
                ):
                    failed.append(inst)
                    break
                time.sleep(0.05)
            else:
                # Ready means a client can log in with this run's credentials, not only that
                # the port answers.
                try:
                    disconnect(connect(ctx, inst))
                except PlatformError:
                    failed.append(inst)
        if failed:
            first = failed[0]
            return ComponentStatus(
                self.name,
                "partial" if len(failed) < len(self.instances) else "failed",
                f"{', '.join(i.key for i in failed)} did not answer (or refused the login)"
                f" at {first.url}",
                tail(self._log(ctx, first)),
            )
        how = f"built in {result.seconds:.1f} s" if result.built else "cached binary"
        return ComponentStatus(self.name, "running", f"{self._urls()} ({how})")

    def _urls(self) -> str:
        return ", ".join(f"{i.key} {i.url}" for i in self.instances)

    def down(self, ctx: LabContext) -> ComponentStatus:
        recorded = ctx.state().get(self.name, {}).get("processes", {})
        stuck: list[str] = []
        for key, rec in recorded.items():
            pid = int(rec["pid"])
            if same_process(pid, rec.get("start")) and not stop_pid(pid):
                stuck.append(f"{key} pid {pid}")
            child = self._children.pop(pid, None)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=1)
        if stuck:
            return ComponentStatus(self.name, "failed", "could not stop " + ", ".join(stuck))
        ctx.update_state(self.name, None)
        # Credentials, certificates, logs and the datastores' temporary directories.
        shutil.rmtree(self._dir(ctx), ignore_errors=True)
        # Only the lab's own binaries count: a build running beside it is not left behind.
        left = processes_under([ctx.lab_dir / "vcsim" / "bin", self._dir(ctx)])
        if left:
            return ComponentStatus(self.name, "failed", f"processes left behind: {left}")
        return ComponentStatus(self.name, "stopped", f"stopped {len(recorded)} simulator(s)")

    def status(self, ctx: LabContext) -> ComponentStatus:
        alive = self._alive(ctx)
        answering = {i.key: alive[i.key] and _sdk_answers(i) for i in self.instances}
        if all(answering.values()):
            return ComponentStatus(self.name, "running", self._urls())
        if not any(alive.values()):
            return ComponentStatus(self.name, "stopped", "not running")
        bad = [k for k, ok in answering.items() if not ok]
        return ComponentStatus(
            self.name,
            "partial" if any(answering.values()) else "failed",
            f"not answering: {', '.join(bad)}",
            tail(self._log(ctx, self.instance(bad[0]))),
        )

    def inventory(self, ctx: LabContext) -> dict[str, Any]:
        """Groups ``vcenter`` and ``esxi``; credentials come from the 0600 files through
        Ansible's ``file`` lookup, so the inventory holds no secret."""
        kinds = {"vcenter": "vcenter", "esx": "esxi"}
        groups: dict[str, Any] = {}
        for inst in self.instances:
            cred = credentials_file(ctx, inst)
            lookup = f"(lookup('ansible.builtin.file', '{cred}') | from_json)"
            host_vars: dict[str, Any] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "vqual_target_kinds": [kinds[inst.mode]],
                "vqual_vsphere_host": inst.address,
                "vqual_vsphere_port": inst.port,
                "vqual_vsphere_validate_certs": False,
                "vqual_vsphere_username": "{{ " + lookup + ".username }}",
                "vqual_vsphere_password": "{{ " + lookup + ".password }}",
                "vqual_lab_simulator": "vcsim (govmomi 0.24)",
            }
            if inst.mode == "vcenter":
                host_vars["vqual_vsphere_datacenter"] = "DC0"
                host_vars["vqual_vsphere_cluster"] = "DC0_C0"
            group = groups.setdefault(kinds[inst.mode], {"hosts": {}, "vars": {}})
            group["hosts"][inst.inventory_host] = host_vars
        return {"groups": groups}
