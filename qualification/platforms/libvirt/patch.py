"""The libvirt/KVM patch executor: a real package upgrade on one host over SSH.

:class:`KvmPatchExecutor` meets :class:`~qualification.platforms.patching.PatchExecutor`:

- ``installed(host)``: the host's own package database (``dpkg-query``), ``{package: version}``
  of every installed package, plus ``hypervisor_version`` (what libvirt reports as the
  hypervisor, ``virsh version``) when libvirt answers on the host;
- ``apply(host, change)``: ``apt-get install --only-upgrade`` of the change's target packages
  at exactly their target versions (``name=version``), after ``apt-get update``; the package
  lists before and after and what changed are returned for the evidence; services mapped to a
  changed package are restarted;
- ``reboot(host, timeout_s)``: by default a restart of ``libvirtd`` (what the hypervisor
  patch needs and what the lab's hosts can do: they share the machine's kernel); with
  ``reboot_mode="host"`` a real ``reboot`` waited for by the boot id. The host is back when
  libvirtd answers on its URI (through the platform adapter, not over SSH);
- ``health(host)``: libvirtd answers on the URI, the daemon runs, no package is half
  installed.

Why plain ``ssh`` and not ansible-runner: a step is one command on one host, and the
orchestrator journals and records it itself. ``ssh`` with the inventory's connection vars
(``ansible_host``, ``ansible_port``, ``ansible_user``, ``ansible_ssh_private_key_file``,
``ansible_ssh_common_args``) costs one round trip (0.1-0.3 s here) where an
``ansible-playbook`` start costs seconds; it writes no second evidence bundle; and the ``ssh``
client is a child in the patch's process group, so killing that group leaves nothing running
on the controller. Every command has a bounded timeout; a ``dpkg`` interrupted by a crash is
finished (``dpkg --configure -a``) before the next upgrade, and apt waits a bounded time for
the package lock.

Secrets: the executor never handles a password; SSH authenticates with the key file the
inventory names, and command output reaches callers only as its last lines.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, PlatformError
from qualification.platforms.base import HypervisorPlatform, redact_endpoint
from qualification.platforms.patching import PatchChange

#: ``dpkg-query`` format: package, version, status abbreviation (``ii`` installed).
_DPKG_FORMAT = r"${Package}\t${Version}\t${db:Status-Abbrev}\n"
#: Separates the parts of one combined query's output.
_SEP = "--vqual-part--"
#: How many lines of a failed command's output an error message keeps.
_TAIL = 3


@dataclass(frozen=True)
class KvmHostAccess:
    """How to reach one KVM host: SSH for the patch, the libvirt URI for "is it back".

    Attributes:
        restart_command: shell command template restarting a service, ``{service}`` replaced
            by the (quoted) service name; default ``systemctl restart {service}``. It must
            return once the service is back, as ``systemctl restart`` does: ``apply`` returns
            right after it. Hosts without an init system name their supervisor's way (the
            lab: ``vqual-lab-restart {service}``, which waits until the service answers).
        services: package -> service to restart when that package changed in ``apply``.
    """

    name: str
    address: str
    libvirt_uri: str
    user: str = "root"
    port: int = 22
    key_file: str | None = None
    ssh_args: tuple[str, ...] = ()
    restart_command: str = "systemctl restart {service}"
    services: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_hostvars(cls, name: str, hostvars: Mapping[str, Any]) -> KvmHostAccess:
        """From one inventory host's variables (as ``ansible-inventory --list`` merges them).

        Raises:
            BadInputError: ``vqual_libvirt_uri`` is missing, or a connection var is malformed.
        """

        def text(key: str, default: str | None = None) -> str | None:
            value = hostvars.get(key, default)
            if value is None:
                return None
            if not isinstance(value, (str, int)) or "{{" in str(value):
                raise BadInputError(f"inventory host {name}: {key} is not a plain value")
            return str(value)

        uri = text("vqual_libvirt_uri")
        if not uri:
            raise BadInputError(f"inventory host {name}: vqual_libvirt_uri is not set")
        port_text = text("ansible_port", "22") or "22"
        if not port_text.isdigit():
            raise BadInputError(f"inventory host {name}: ansible_port {port_text!r} is no port")
        services = hostvars.get("vqual_patch_services") or {}
        if not isinstance(services, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in services.items()
        ):
            raise BadInputError(
                f"inventory host {name}: vqual_patch_services must map package to service"
            )
        return cls(
            name=name,
            address=text("ansible_host", name) or name,
            libvirt_uri=uri,
            user=text("ansible_user", "root") or "root",
            port=int(port_text),
            key_file=text("ansible_ssh_private_key_file"),
            ssh_args=tuple(shlex.split(text("ansible_ssh_common_args", "") or "")),
            restart_command=text("vqual_patch_restart_command", cls.restart_command)
            or cls.restart_command,
            services={str(k): str(v) for k, v in services.items()},
        )


def hosts_from_inventory(
    hostvars: Mapping[str, Mapping[str, Any]], cluster: str
) -> dict[str, KvmHostAccess]:
    """The KVM hosts of ``cluster``: inventory hosts with ``vqual_cluster`` equal to it and a
    ``vqual_libvirt_uri`` (guests carry a URI too, but no cluster).

    Raises:
        BadInputError: no such host, or one host's variables are malformed.
    """
    hosts = {
        name: KvmHostAccess.from_hostvars(name, variables)
        for name, variables in sorted(hostvars.items())
        if variables.get("vqual_cluster") == cluster and variables.get("vqual_libvirt_uri")
    }
    if not hosts:
        raise BadInputError(
            f"inventory: no KVM host with vqual_cluster {cluster!r} and a vqual_libvirt_uri"
        )
    return hosts


def platform_factory(
    hostvars: Mapping[str, Mapping[str, Any]],
    cluster: str,
    *,
    state_dir: Path | str | None = None,
) -> Callable[[], HypervisorPlatform]:
    """Opens the cluster's hosts as one platform (``LibvirtCluster``) each time it is called.

    ``state_dir`` must be the run's state directory: the maintenance markers live there, and
    every reader (the run, a resumed run, an observer) must see the same ones.

    Raises:
        BadInputError: as :meth:`LibvirtCluster.from_hostvars`, checked here at once.
    """
    from qualification.platforms.libvirt.cluster import LibvirtCluster

    LibvirtCluster.from_hostvars(hostvars, cluster, state_dir=state_dir)  # no connection yet

    def connect() -> HypervisorPlatform:
        return LibvirtCluster.from_hostvars(hostvars, cluster, state_dir=state_dir)

    return connect


def parse_dpkg_query(text: str) -> dict[str, str]:
    """``{package: version}`` of the installed packages in ``dpkg-query -W`` output."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].strip() == "ii":
            out[parts[0]] = parts[1]
    return out


def parse_virsh_version(text: str) -> str | None:
    """The hypervisor version in ``virsh version`` output ("Running hypervisor: QEMU 7.2.0")."""
    for line in text.splitlines():
        if line.startswith("Running hypervisor:") and len(line.split()) >= 4:
            return line.split()[-1]
    return None


def half_installed(text: str) -> list[str]:
    """Packages ``dpkg-query`` shows in any state but installed/not-installed (``iU``, ``iF``...)."""
    bad = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].strip() not in ("ii", "un", "rc", "pn"):
            bad.append(f"{parts[0]} ({parts[2].strip()})")
    return bad


def package_diff(
    before: Mapping[str, str], after: Mapping[str, str]
) -> dict[str, list[str | None]]:
    """``{package: [before, after]}`` for every package added, removed or changed."""
    return {
        name: [before.get(name), after.get(name)]
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-_TAIL:]) or "no output"


def _libvirt_connect(uri: str) -> HypervisorPlatform:
    # Imported on use: the rollout core does not load a vendor library until a KVM host is
    # actually asked whether it is back.
    from qualification.platforms.libvirt.adapter import LibvirtPlatform

    return LibvirtPlatform(uri, readonly=True)


class KvmPatchExecutor:
    """Patches KVM hosts over SSH (see the module docstring).

    Args:
        hosts: access per host name (the names the platform reports).
        connect: opens a platform on a libvirt URI (default: a read-only ``LibvirtPlatform``);
            used only to see that libvirtd answers.
        reboot_mode: ``libvirtd`` (restart the daemon) or ``host`` (reboot the machine).
        command_timeout_s: bound of one SSH command that is not the upgrade itself.
        connect_timeout_s: SSH connect timeout.
        poll_s: how often ``reboot`` looks whether the host is back.
    """

    name = "kvm-apt"

    def __init__(
        self,
        hosts: Mapping[str, KvmHostAccess],
        *,
        connect: Callable[[str], HypervisorPlatform] = _libvirt_connect,
        reboot_mode: str = "libvirtd",
        command_timeout_s: float = 120.0,
        connect_timeout_s: float = 10.0,
        poll_s: float = 0.2,
    ) -> None:
        if reboot_mode not in ("libvirtd", "host"):
            raise BadInputError(f"KVM executor: reboot mode {reboot_mode!r} is not libvirtd/host")
        self.hosts = dict(hosts)
        self._connect = connect
        self.reboot_mode = reboot_mode
        self.command_timeout_s = command_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.poll_s = poll_s

    @classmethod
    def from_inventory(
        cls, hostvars: Mapping[str, Mapping[str, Any]], cluster: str, **kwargs: Any
    ) -> KvmPatchExecutor:
        """The executor for ``cluster``'s hosts in an inventory (see :func:`hosts_from_inventory`);
        ``vqual_patch_reboot_mode`` on the hosts sets the reboot mode (all hosts alike)."""
        hosts = hosts_from_inventory(hostvars, cluster)
        modes = {str(hostvars[h].get("vqual_patch_reboot_mode", "libvirtd")) for h in hosts}
        if len(modes) != 1:
            raise BadInputError(
                f"inventory: hosts of cluster {cluster} differ in vqual_patch_reboot_mode"
            )
        kwargs.setdefault("reboot_mode", modes.pop())
        return cls(hosts, **kwargs)

    # -- plumbing ---------------------------------------------------------------------------

    def access(self, host: str) -> KvmHostAccess:
        try:
            return self.hosts[host]
        except KeyError:
            raise BadInputError(
                f"KVM executor: host {host} is not in the inventory's cluster hosts "
                f"({', '.join(sorted(self.hosts))})"
            ) from None

    def ssh_argv(self, host: str, command: str) -> list[str]:
        """The ``ssh`` command line that runs ``command`` on ``host``."""
        a = self.access(host)
        argv = [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={max(1, int(self.connect_timeout_s))}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-p",
            str(a.port),
        ]
        if a.key_file:
            argv += ["-i", a.key_file, "-o", "IdentitiesOnly=yes"]
        argv += [*a.ssh_args, f"{a.user}@{a.address}", command]
        return argv

    def run(
        self, host: str, command: str, *, timeout_s: float | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on ``host`` over SSH (bounded); stdout and stderr as text.

        Raises:
            PlatformError: SSH failed (exit 255), the command timed out, or (``check``) it
                exited non-zero; one line with the host and the last lines of its output.
        """
        timeout = self.command_timeout_s if timeout_s is None else timeout_s
        where = f"ssh {self.access(host).user}@{self.access(host).address}"
        try:
            done = subprocess.run(
                self.ssh_argv(host, command),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise PlatformError(
                f"{host}: {command.split()[0]} did not finish within {timeout:g} s", where=where
            ) from None
        except OSError as exc:
            raise PlatformError(f"{host}: cannot run ssh: {exc}", where=where) from None
        if done.returncode == 255:
            raise PlatformError(f"{host}: ssh failed: {_tail(done.stderr)}", where=where)
        if check and done.returncode != 0:
            raise PlatformError(
                f"{host}: {command.split()[0]} failed (exit {done.returncode}): "
                f"{_tail(done.stderr or done.stdout)}",
                where=where,
            )
        return done

    # -- PatchExecutor ----------------------------------------------------------------------

    def _dpkg(self, host: str) -> str:
        return self.run(host, f"dpkg-query -W -f={shlex.quote(_DPKG_FORMAT)}").stdout

    def _host_state(self, host: str) -> tuple[str, str, str]:
        """dpkg-query output, ``virsh version`` output and libvirtd's PID in one round trip."""
        text = self.run(
            host,
            f"dpkg-query -W -f={shlex.quote(_DPKG_FORMAT)}; echo {_SEP}; "
            f"virsh -q -c qemu:///system version 2>/dev/null; echo {_SEP}; "
            "pgrep -o -x libvirtd || true",
        ).stdout
        parts = text.split(_SEP + "\n")
        if len(parts) != 3:
            raise PlatformError(f"{host}: unexpected answer to the package and daemon query")
        return parts[0], parts[1], parts[2].strip()

    def installed(self, host: str) -> dict[str, str]:
        """Every installed package of the host's own dpkg database, and the hypervisor version
        libvirt reports (``hypervisor_version``) when it answers."""
        dpkg, version, _pid = self._host_state(host)
        out = parse_dpkg_query(dpkg)
        hypervisor = parse_virsh_version(version)
        if hypervisor:
            out["hypervisor_version"] = hypervisor
        return out

    def apply(self, host: str, change: PatchChange) -> dict[str, Any]:
        """Upgrade the change's target packages on ``host`` to exactly their versions.

        Returns:
            ``{executor, host, packages (target), command, before, after, changed,
            restarted}``: ``before``/``after`` are the whole package lists, ``changed``
            ``{package: [before, after]}``.

        Raises:
            BadInputError: the change names no packages (KVM hosts are patched by package).
            PlatformError: apt failed or a package is not at its target version afterwards.
        """
        targets = dict(sorted(change.target.packages.items()))
        if not targets:
            raise BadInputError(
                f"change {change.change_id}: the KVM executor upgrades packages; "
                "target.packages is empty"
            )
        before = parse_dpkg_query(self._dpkg(host))
        pins = " ".join(shlex.quote(f"{n}={v}") for n, v in targets.items())
        command = (
            "export DEBIAN_FRONTEND=noninteractive; "
            # A crash may have interrupted an earlier run: finish what dpkg had begun.
            "dpkg --configure -a && "
            "apt-get -q -o DPkg::Lock::Timeout=60 update && "
            "apt-get install -y -q --only-upgrade -o DPkg::Lock::Timeout=60 "
            f"-o Dpkg::Options::=--force-confold {pins}"
        )
        self.run(host, command, timeout_s=float(change.step_timeout_s))
        after_text = self._dpkg(host)
        after = parse_dpkg_query(after_text)
        wrong = [
            f"{n} is {after.get(n, 'not installed')}, target {v}"
            for n, v in targets.items()
            if after.get(n) != v
        ]
        if wrong:
            raise PlatformError(f"{host}: after the upgrade " + "; ".join(wrong))
        changed = package_diff(before, after)
        restarted = []
        services = self.access(host).services
        for package in changed:
            service = services.get(package)
            if service and service not in restarted:
                self.restart(host, service)
                restarted.append(service)
        return {
            "executor": self.name,
            "host": host,
            "packages": targets,
            "command": "apt-get install --only-upgrade "
            + " ".join(f"{n}={v}" for n, v in targets.items()),
            "before": before,
            "after": after,
            "changed": changed,
            "restarted": restarted,
        }

    def restart(self, host: str, service: str) -> None:
        """Restart one service on ``host`` with the host's restart command."""
        template = self.access(host).restart_command
        self.run(host, template.replace("{service}", shlex.quote(service)))

    def _daemon_pid(self, host: str) -> str:
        done = self.run(host, "pgrep -o -x libvirtd || true")
        return done.stdout.strip()

    def _boot_id(self, host: str) -> str:
        return self.run(host, "cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def libvirt_answers(self, host: str) -> dict[str, Any] | None:
        """What libvirtd on the host's URI reports (``about``), or None if it does not answer."""
        try:
            platform = self._connect(self.access(host).libvirt_uri)
        except PlatformError:
            return None
        try:
            about = platform.about()
            return {"product": about.product, "version": about.version, "endpoint": about.endpoint}
        except PlatformError:
            return None
        finally:
            platform.close()

    def reboot(self, host: str, timeout_s: float) -> float:
        """Restart libvirtd (or reboot the host) and wait until libvirtd answers on its URI.

        Returns:
            Seconds from the restart command until the host was back.

        Raises:
            PlatformError: the restart failed or the host was not back within ``timeout_s``.
        """
        started = time.monotonic()
        deadline = started + timeout_s
        if self.reboot_mode == "host":
            old = self._boot_id(host)
            # The connection drops as the host goes down: exit 255 here is expected.
            subprocess.run(
                self.ssh_argv(host, "nohup sh -c 'sleep 1; reboot' >/dev/null 2>&1 &"),
                capture_output=True,
                timeout=self.command_timeout_s,
                check=False,
                stdin=subprocess.DEVNULL,
            )

            def back() -> bool:
                try:
                    fresh = self._boot_id(host)
                except PlatformError:
                    return False
                return fresh != old and self.libvirt_answers(host) is not None

        else:
            old = self._daemon_pid(host)
            self.restart(host, "libvirtd")

            def back() -> bool:
                pid = self._daemon_pid(host)
                return bool(pid) and pid != old and self.libvirt_answers(host) is not None

        while True:
            if back():
                return time.monotonic() - started
            if time.monotonic() >= deadline:
                raise PlatformError(
                    f"reboot {host} failed: libvirtd not answering on "
                    f"{redact_endpoint(self.access(host).libvirt_uri)} after {timeout_s:g} s"
                )
            time.sleep(self.poll_s)

    def health(self, host: str) -> dict[str, Any]:
        """libvirtd runs and answers on its URI, and dpkg has nothing half installed."""
        libvirt = self.libvirt_answers(host)
        dpkg, _version, pid = self._host_state(host)
        broken = half_installed(dpkg)
        problems = []
        if libvirt is None:
            problems.append("libvirtd does not answer on its URI")
        if not pid:
            problems.append("no libvirtd process")
        if broken:
            problems.append("packages not fully installed: " + ", ".join(broken))
        return {
            "ok": not problems,
            "problems": problems,
            "libvirt": libvirt,
            "libvirtd_running": bool(pid),
        }

    def upgrades_logged(self, host: str, packages: Iterable[str] = ()) -> list[str]:
        """The ``upgrade`` lines of the host's own dpkg log (``/var/log/dpkg.log``), optionally
        only for ``packages``: what the host itself recorded, for tests and audits."""
        text = self.run(host, "cat /var/log/dpkg.log 2>/dev/null || true").stdout
        wanted = set(packages)
        lines = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[2] == "upgrade":
                name = parts[3].split(":")[0]
                if not wanted or name in wanted:
                    lines.append(line)
        return lines
