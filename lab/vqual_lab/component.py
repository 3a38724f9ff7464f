"""The contract every lab component keeps, and the process helpers they share.

A component (the KVM cluster, the package repository, the VMware simulator, ...) brings one
part of the lab up and down on this machine, reports its status, and contributes a fragment
of the Ansible inventory the lab writes. Components start processes and record their *outer*
PIDs in ``<lab dir>/run/state.json`` under their own key, so ``down`` can stop exactly what
``up`` started, even from another process.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

DEFAULT_LAB_DIR = Path("/var/lib/vqual-lab")

# One lock for every LabContext in this process: components may run in parallel threads.
_STATE_LOCK = threading.Lock()


@dataclass
class ComponentStatus:
    """What a component reports after ``up``, ``down`` or ``status``."""

    name: str
    state: str  # "running" | "stopped" | "failed" | "partial"
    detail: str  # one line
    log_tail: list[str] = field(default_factory=list)  # last lines of its log when failed


@dataclass
class LabContext:
    """Where the lab lives and how components log.

    Attributes:
        lab_dir: Cache and state root (``$VQUAL_LAB_DIR``, default ``/var/lib/vqual-lab``).
        run_dir: Runtime state, ``<lab_dir>/run``; removed pieces by ``down``.
        repo_root: The vqual checkout (to write ``inventories/lab/``), or None.
        log: One-line progress messages.
    """

    lab_dir: Path
    run_dir: Path
    repo_root: Path | None
    log: Callable[[str], None]
    _snapshots: threading.local = field(default_factory=threading.local, repr=False)

    @classmethod
    def default(
        cls, repo_root: Path | None = None, log: Callable[[str], None] | None = None
    ) -> LabContext:
        """The context from ``$VQUAL_LAB_DIR`` (or the default lab dir)."""
        lab_dir = Path(os.environ.get("VQUAL_LAB_DIR") or DEFAULT_LAB_DIR).resolve()
        return cls(
            lab_dir=lab_dir,
            run_dir=lab_dir / "run",
            repo_root=repo_root,
            log=log if log is not None else (lambda _msg: None),
        )

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    @contextlib.contextmanager
    def _state_lock(self) -> Iterator[None]:
        """Threads of this process and other processes (a ``scripts/lab up`` beside a test
        session) update ``state.json`` one at a time, so no component's key is lost."""
        with _STATE_LOCK:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "state.lock", "w") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.state_file)

    def state(self) -> dict[str, Any]:
        """The whole ``run/state.json`` (a copy), one key per component."""
        with self._state_lock():
            data = self._read()
            self._snapshots.last = copy.deepcopy(data)
            return data

    def save_state(self, d: dict[str, Any]) -> None:
        """Write back a dict obtained from :meth:`state`.

        Only the top-level keys this thread added, changed or removed since its last
        :meth:`state` call are applied, so components saving in parallel threads do not
        overwrite each other's keys.
        """
        with self._state_lock():
            before: dict[str, Any] = getattr(self._snapshots, "last", {})
            current = self._read()
            for key in set(before) | set(d):
                if key not in d:
                    current.pop(key, None)
                elif before.get(key) != d[key] or key not in before:
                    current[key] = d[key]
            self._write(current)
            self._snapshots.last = copy.deepcopy(current)

    def update_state(self, key: str, value: Any | None) -> None:
        """Set (or, with None, remove) one component's key in ``run/state.json``."""
        with self._state_lock():
            current = self._read()
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
            self._write(current)


class LabComponent(Protocol):
    """One part of the lab. ``up`` is idempotent; ``down`` stops by PID and restores."""

    name: str

    def up(self, ctx: LabContext) -> ComponentStatus: ...

    def down(self, ctx: LabContext) -> ComponentStatus: ...

    def status(self, ctx: LabContext) -> ComponentStatus: ...

    def inventory(self, ctx: LabContext) -> dict[str, Any]:
        """Ansible YAML inventory fragment: ``{"groups": {name: {"hosts": {h: vars},
        "vars": {...}}}}``."""
        ...


# --- process helpers shared by components ----------------------------------------------


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            # The state letter follows the parenthesised command name.
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def pid_start_time(pid: int) -> int | None:
    """The kernel start time of ``pid`` (clock ticks since boot), to detect PID reuse."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def same_process(pid: int, start_time: int | None) -> bool:
    """True if ``pid`` is alive and still the process recorded with ``start_time``."""
    return pid_alive(pid) and (start_time is None or pid_start_time(pid) == start_time)


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child (else its parent does)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_pid(pid: int, *, timeout: float = 10.0, sig: int = signal.SIGTERM) -> bool:
    """Signal ``pid``, wait up to ``timeout`` seconds, then SIGKILL it.

    Returns:
        True if the process is gone afterwards.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (made if missing): one build, one ``up`` or one
    budget decision at a time, across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a log file (empty if it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return data.splitlines()[-lines:]


def processes_under(paths: Iterable[Path]) -> list[int]:
    """PIDs whose root directory, executable or command line lies under one of ``paths``.

    This is how ``down`` and the tests prove no lab process is left behind.
    """
    prefixes = [str(p).rstrip("/") + "/" for p in paths]
    found: list[int] = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        texts: list[str] = []
        for link in ("root", "exe"):
            with contextlib.suppress(OSError):
                texts.append(os.readlink(f"/proc/{pid}/{link}") + "/")
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as fh:
            texts.extend(a.decode("utf-8", "replace") for a in fh.read().split(b"\0") if a)
        if any(t.startswith(p) or p in t for t in texts for p in prefixes) and pid_alive(pid):
            found.append(pid)
    return found


def mounts_under(paths: Iterable[Path]) -> list[str]:
    """Mount points in this mount namespace that lie under one of ``paths``."""
    prefixes = [str(p).rstrip("/") for p in paths]
    found: list[str] = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].replace("\\040", " ")
            if any(point == p or point.startswith(p + "/") for p in prefixes):
                found.append(point)
    return found
