"""A fleet of sshd endpoints on loopback addresses, for controller-side cost measurements.

Each endpoint is one ``sshd`` of this machine with its own host key, address (127.0.2.0/24,
then 127.0.3.0/24; Linux routes all of 127.0.0.0/8 to ``lo``, so no address is added) and
port, all logging in as root with one client key. Every endpoint serves this same machine: they
measure what a run costs the controller per host (connections, forks, evidence), not targets.
They are not part of the lab's VM budget and start no guest.

The fleet is started and stopped by PID (``sshd -D``, one child process each), readiness is
polled on each port (bounded), and an Ansible inventory of the endpoints is written to the
fleet's own temporary directory::

    with Fleet(50) as fleet:
        inventory = fleet.write_inventory(group_vars=...)

``python bench/fleet.py up N`` starts one and waits for Enter (a fleet for manual runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import yaml

SSHD = "/usr/sbin/sshd"
#: The most endpoints one fleet starts (two /24 blocks of 100 addresses each).
MAX_ENDPOINTS = 200
PER_BLOCK = 100
#: Readiness bound: 200 endpoints answered within about 2 s on a loaded 2-core machine
#: (measured); five times that before an endpoint counts as failed to start.
READY_TIMEOUT = 10.0
POLL_INTERVAL = 0.02


@dataclass(frozen=True)
class Endpoint:
    """One sshd of the fleet."""

    name: str
    address: str
    port: int
    pid: int


def address(index: int) -> str:
    """The loopback address of endpoint ``index``: 127.0.2.1-100, then 127.0.3.1-100."""
    if not 0 <= index < MAX_ENDPOINTS:
        raise ValueError(f"a fleet has at most {MAX_ENDPOINTS} endpoints")
    return f"127.0.{2 + index // PER_BLOCK}.{index % PER_BLOCK + 1}"


def _free_port(addr: str) -> int:
    """A port free on ``addr`` now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((addr, 0))
        return int(sock.getsockname()[1])


def _answers(addr: str, port: int) -> bool:
    """True once sshd's banner arrives on ``addr:port``."""
    try:
        with socket.create_connection((addr, port), timeout=1.0) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


class Fleet:
    """Up to 200 sshd endpoints, their keys and an inventory, in one temporary directory."""

    def __init__(self, count: int, *, prefix: str = "fleet") -> None:
        if not 1 <= count <= MAX_ENDPOINTS:
            raise ValueError(f"a fleet has 1 to {MAX_ENDPOINTS} endpoints, not {count}")
        self.count = count
        self.prefix = prefix
        self.dir = Path(tempfile.mkdtemp(prefix="vqual-fleet-"))
        self.client_key = self.dir / "client_ed25519"
        self.endpoints: list[Endpoint] = []
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> list[Endpoint]:
        """Start every endpoint and wait until each answers with its banner."""
        # sshd refuses to start without its privilege-separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        _keygen(self.client_key, "vqual-fleet-client")
        authorized = self.dir / "authorized_keys"
        shutil.copyfile(self.client_key.with_suffix(".pub"), authorized)
        authorized.chmod(0o600)
        pending: list[tuple[str, str, int]] = []
        for i in range(self.count):
            name, addr = f"{self.prefix}-{i:03d}", address(i)
            port = _free_port(addr)
            proc = self._start_one(name, addr, port, authorized)
            self._procs.append(proc)
            pending.append((name, addr, port))
        self._wait(pending)
        self.endpoints = [
            Endpoint(name, addr, port, proc.pid)
            for (name, addr, port), proc in zip(pending, self._procs, strict=True)
        ]
        return self.endpoints

    def _start_one(self, name: str, addr: str, port: int,
                   authorized: Path) -> subprocess.Popen[bytes]:
        key = self.dir / f"{name}.key"
        _keygen(key, name)
        config = self.dir / f"{name}.sshd_config"
        config.write_text(
            f"ListenAddress {addr}:{port}\n"
            f"HostKey {key}\n"
            f"AuthorizedKeysFile {authorized}\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            # No PAM session per connection: the cost measured is the controller's.
            "UsePAM no\n"
            # The key files live under /tmp (world-writable, sticky): not a home directory.
            "StrictModes no\n"
            "UseDNS no\n"
            "PidFile none\n"
            # Ansible opens several connections per host at once (forks, ControlMaster).
            "MaxStartups 200\n"
            "MaxSessions 50\n"
            "LogLevel ERROR\n"
            "Subsystem sftp internal-sftp\n"
        )
        log = open(self.dir / f"{name}.log", "wb")  # noqa: SIM115 - kept by the child
        try:
            return subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        finally:
            log.close()

    def _wait(self, pending: list[tuple[str, str, int]]) -> None:
        """Poll every port until its banner comes, within :data:`READY_TIMEOUT`."""
        waiting = dict(enumerate(pending))
        deadline = time.monotonic() + READY_TIMEOUT
        while waiting:
            for i, (name, addr, port) in list(waiting.items()):
                if self._procs[i].poll() is not None:
                    log = (self.dir / f"{name}.log").read_text(errors="replace").strip()
                    raise RuntimeError(f"sshd {name} on {addr}:{port} exited: {log}")
                if _answers(addr, port):
                    del waiting[i]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(name for name, _, _ in list(waiting.values())[:5])
                raise RuntimeError(f"{len(waiting)} sshd endpoints did not answer: {names}")
            if waiting:
                time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        """Stop every endpoint by its PID (and its session processes), remove the directory."""
        for proc in self._procs:
            if proc.poll() is None:
                # Each sshd leads its own session: the group holds it and its connections.
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def host_vars(self, endpoint: Endpoint) -> dict[str, Any]:
        """How Ansible reaches ``endpoint``."""
        return {
            "ansible_host": endpoint.address,
            "ansible_port": endpoint.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.client_key),
            # Named, not discovered: discovery is one more round trip per host.
            "ansible_python_interpreter": "/usr/bin/python3",
        }

    def write_inventory(self, group: str = "fleet", *,
                        group_vars: Mapping[str, Any] | None = None,
                        cluster_size: int = 0, count: int | None = None) -> Path:
        """Write a YAML inventory of the first ``count`` endpoints (all by default) under
        ``group``; with ``cluster_size``, hosts get ``vqual_cluster`` by blocks of that size."""
        chosen = self.endpoints[: count or len(self.endpoints)]
        hosts: dict[str, Any] = {}
        for i, endpoint in enumerate(chosen):
            hv = self.host_vars(endpoint)
            if cluster_size:
                hv["vqual_cluster"] = f"{self.prefix}-c{i // cluster_size:02d}"
            for app in (group_vars or {}).get("vqual_applications") or []:
                # Each host carries its own VM of each application, as real hosts do.
                hv.setdefault("vqual_applications", []).append(
                    {**app, "vm": f"{app.get('vm', app['name'])}-{endpoint.name}"})
            hosts[endpoint.name] = hv
        path = self.dir / f"inventory-{group}-{len(chosen)}" / "hosts.yml"
        path.parent.mkdir(exist_ok=True)
        data = {"all": {"children": {group: {"hosts": hosts, "vars": dict(group_vars or {})}}}}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, stdin=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up"])
    parser.add_argument("count", type=int)
    args = parser.parse_args()
    t0 = time.monotonic()
    with Fleet(args.count) as fleet:
        inventory = fleet.write_inventory()
        print(f"{args.count} endpoints up in {time.monotonic() - t0:.2f} s; "
              f"inventory {inventory}; Enter stops them")
        input()


if __name__ == "__main__":
    main()
