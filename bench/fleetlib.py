"""What the fleet benchmarks share: a state directory, Ansible settings, timing and memory.

The memory sampler reads the proportional set size (PSS, shared pages split between their
users) of the controller's own process tree: the command and its descendants, plus the SSH
masters (ControlPersist) that detach from it, which come back to this process because it is
made a child subreaper. The fleet's sshd processes and everything they start (the target side:
sshd sessions, the modules' Python) are left out.
"""

from __future__ import annotations

import ctypes
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
HOST_SPEC = COLLECTION / "specs" / "linux-virt-host.yaml"
#: The Ansible settings every run of a benchmark shares (floors and vqual alike).
SSH_ARGS = "-o ControlMaster=auto -o ControlPersist=60s"
PR_SET_CHILD_SUBREAPER = 36
SAMPLE_INTERVAL = 0.1


def group_vars() -> dict[str, Any]:
    """The local machine's committed expectations (inventories/local), for every endpoint."""
    data = yaml.safe_load((REPO / "inventories/local/host_vars/localhost.yml").read_text())
    return dict(data)


def make_state(work: Path) -> dict[str, str]:
    """A state directory with a throwaway executor key, its trust store signed by a throwaway
    pinned root (tests/trustroot_testlib.py); returns the environment for the runs."""
    sys.path.insert(0, str(REPO))
    import tests.trustroot_testlib as root  # sets VQUAL_TRUST_ROOT in os.environ

    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VQUAL_STATE_DIR"] = str(work / "state")
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO)
    subprocess.run([str(BIN / "vqual"), "keys", "create", "--name", "bench", "--role", "executor",
                    "--service", "--throwaway"], env=env, check=True, capture_output=True)
    root.pin_state(work / "state")
    return env


def ansible_env(env: Mapping[str, str], control_dir: Path) -> dict[str, str]:
    """``env`` with the shared Ansible settings: pipelining, ControlPersist, no host key
    prompts, no retry files; SSH masters in ``control_dir`` (one per run)."""
    return {
        **env,
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": SSH_ARGS,
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }


def become_subreaper() -> None:
    """Orphaned descendants (detached SSH masters) become this process's children."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(root: int, exclude: Iterable[int] = ()) -> list[int]:
    """PIDs below ``root``, leaving out ``exclude`` and everything below them."""
    tree, skip = _children(), set(exclude)
    found: list[int] = []
    stack = [p for p in tree.get(root, []) if p not in skip]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(p for p in tree.get(pid, []) if p not in skip)
    return found


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0


@dataclass
class Measured:
    seconds: float
    peak_mb: float
    returncode: int
    stdout: str = ""
    stderr: str = ""


@dataclass
class Controller:
    """Runs one command at a time, timing it and sampling its tree's memory."""

    exclude: Sequence[int] = ()
    samples: list[float] = field(default_factory=list)

    def run(self, argv: Sequence[str], env: Mapping[str, str], ok: Sequence[int] = (0,)) -> Measured:
        me = os.getpid()
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                total = sum(_pss_kb(p) for p in descendants(me, self.exclude))
                peak[0] = max(peak[0], total)
                done.wait(SAMPLE_INTERVAL)

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=dict(env), cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        sampler.start()
        out, err = proc.communicate()
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        self.reap_masters()
        if proc.returncode not in ok:
            raise SystemExit(f"{' '.join(argv[:4])} ... exited {proc.returncode}:\n"
                             f"{out[-3000:]}\n{err[-3000:]}")
        return Measured(seconds, peak[0] / 1024, proc.returncode, out, err)

    def reap_masters(self) -> None:
        """Stop the SSH masters this process inherited (by PID) and reap them, so the next
        run starts cold and its memory is its own."""
        for pid in descendants(os.getpid(), self.exclude):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0 and not descendants(os.getpid(), self.exclude):
                break
            if pid == 0:
                time.sleep(0.01)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def work_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
