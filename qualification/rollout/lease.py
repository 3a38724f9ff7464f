"""The cluster lease: ``leases/<cluster key>.json`` in the state directory.

One rolling patch per cluster at a time. The lease names the run id, change id, the process
(host name and pid) and a heartbeat the holder refreshes while it runs. Rules
(docs/rolling-patch.md, "Journal, lease and resume"):

- no lease file: take it;
- a lease of the same run: refresh it;
- a live lease of another run (heartbeat younger than its ``ttl_s``): refused;
- a stale lease (heartbeat expired), or one whose holder process is gone on this machine, is
  taken over only by ``--resume`` of that run; another run takes it only once the heartbeat has
  expired. Every take-over is returned, so the caller can record it.

Read-modify-write happens under an exclusive ``flock`` on ``leases/.<key>.lock``; the lease file
itself is replaced atomically (write, fsync, rename).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, VqualError
from qualification.timeutil import parse_utc, utc_now, utc_text

LEASE_DIR = "leases"
DEFAULT_TTL_S = 120.0


class LeaseRefused(VqualError):
    """Another run holds the cluster's lease (exit 2: nothing was changed)."""

    exit_code = 2


def cluster_key(cluster: str) -> str:
    """A file-safe key for a cluster name: its safe characters plus a short digest of the name."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", cluster)[:48].strip(".") or "cluster"
    return f"{safe}-{hashlib.sha256(cluster.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Lease:
    cluster: str
    run_id: str
    change_id: str
    hostname: str
    pid: int
    acquired: str
    heartbeat: str
    ttl_s: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lease:
        try:
            return cls(
                cluster=str(data["cluster"]),
                run_id=str(data["run_id"]),
                change_id=str(data["change_id"]),
                hostname=str(data["hostname"]),
                pid=int(data["pid"]),
                acquired=str(data["acquired"]),
                heartbeat=str(data["heartbeat"]),
                ttl_s=float(data["ttl_s"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"malformed lease: {exc}") from None

    def expired(self, now: datetime) -> bool:
        return now - parse_utc(self.heartbeat) > timedelta(seconds=self.ttl_s)

    def holder_gone(self) -> bool:
        """The holder ran on this machine and its process no longer exists."""
        if self.hostname != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return _is_zombie(self.pid)


def _is_zombie(pid: int) -> bool:
    # A killed child not yet reaped by its parent still answers kill(pid, 0).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0:1] == ["Z"]


@dataclass(frozen=True)
class Acquired:
    """The outcome of taking a lease: the lease now held and the one it replaced, if any."""

    lease: Lease
    took_over: Lease | None
    reason: str | None


class LeaseManager:
    """Take, refresh and release one cluster's lease."""

    def __init__(self, state_dir: Path, cluster: str, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.dir = Path(state_dir) / LEASE_DIR
        self.cluster = cluster
        self.key = cluster_key(cluster)
        self.path = self.dir / f"{self.key}.json"
        self.ttl_s = ttl_s
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()
        self._held: Lease | None = None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / f".{self.key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self) -> Lease | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            return Lease.from_json(json.loads(text))
        except (ValueError, BadInputError) as exc:
            raise BadInputError(f"lease file is malformed: {exc}", where=str(self.path)) from None

    def _write(self, lease: Lease) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        data = json.dumps(lease.to_json(), sort_keys=True, indent=1).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def acquire(self, run_id: str, change_id: str, *, resume_of: str | None = None) -> Acquired:
        """Take the lease for ``run_id``.

        Args:
            resume_of: the run id this run resumes; its lease may be taken over once its
                holder is gone or its heartbeat expired.

        Raises:
            LeaseRefused: another run holds a live lease (the message names it).
        """
        with self._locked():
            now = utc_now()
            current = self.read()
            took_over: Lease | None = None
            reason: str | None = None
            if current is not None and current.run_id != run_id:
                stale = current.expired(now)
                gone = current.holder_gone()
                if resume_of is not None and current.run_id == resume_of and (stale or gone):
                    reason = "resume of the crashed run" + (
                        " (its process is gone)" if gone else " (its heartbeat expired)"
                    )
                elif stale:
                    reason = f"its heartbeat expired ({current.heartbeat}, ttl {current.ttl_s:g} s)"
                else:
                    what = ("its process still runs" if not gone else
                            f"its process is gone: vqual patch --resume {current.run_id} takes "
                            "it over, any other run waits for the heartbeat to expire")
                    raise LeaseRefused(
                        f"cluster {self.cluster} is leased to run {current.run_id} "
                        f"(change {current.change_id}, pid {current.pid} on {current.hostname}, "
                        f"heartbeat {current.heartbeat}; {what})",
                        where=str(self.path),
                    )
                took_over = current
            stamp = utc_text(now)
            lease = Lease(
                cluster=self.cluster,
                run_id=run_id,
                change_id=change_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                acquired=stamp if current is None or took_over else current.acquired,
                heartbeat=stamp,
                ttl_s=self.ttl_s,
            )
            self._write(lease)
            self._held = lease
            return Acquired(lease, took_over, reason)

    def heartbeat(self) -> None:
        """Refresh the heartbeat of the lease this manager holds (if it still holds it)."""
        if self._held is None:
            return
        with self._locked():
            current = self.read()
            if current is None or current.run_id != self._held.run_id:
                return  # taken over after expiry: never write over another run's lease
            lease = Lease(**{**current.to_json(), "heartbeat": utc_text(utc_now())})
            self._write(lease)
            self._held = lease

    def start_heartbeat(self, interval_s: float | None = None) -> None:
        """Refresh the heartbeat from a daemon thread every ``ttl_s / 4`` seconds."""
        if self._beat is not None:
            return
        interval = interval_s if interval_s is not None else max(self.ttl_s / 4, 0.5)
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    self.heartbeat()
                except OSError:
                    pass  # a missed beat only shortens the time to expiry

        self._beat = threading.Thread(target=beat, name="vqual-lease-heartbeat", daemon=True)
        self._beat.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
            self._beat = None

    def release(self) -> bool:
        """Remove the lease if this manager's run still holds it; True if removed."""
        self.stop_heartbeat()
        if self._held is None:
            return False
        with self._locked():
            current = self.read()
            held = self._held
            self._held = None
            if current is None or current.run_id != held.run_id:
                return False
            self.path.unlink()
            return True
