"""The rolling-patch journal: ``journals/<run id>.jsonl`` in the state directory.

One JSON object per line, written and fsynced before the call it announces returns, so a crash
at any point leaves a journal that says how far the run got. The journal is the orchestrator's
memory across a crash; the evidence bundle is what auditors read. Lines:

``run.begin`` (first line: change, plan, order, ``resumed_from``, ``steps_version``),
``step.begin``, ``step.done``, ``step.failed``, ``host.committed``, ``host.skipped``, ``run.halted``,
``run.done``. A crash can cut the last line; :func:`read_journal` drops a cut last line and
refuses any other defect.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError
from qualification.evidence.records import check_safe_name
from qualification.rollout.steps import STEPS, STEPS_VERSION
from qualification.timeutil import utc_now_text

JOURNAL_DIR = "journals"
FORMAT = "vqual.journal/v1"

EVENTS = frozenset(
    {
        "run.begin",
        "step.begin",
        "step.done",
        "step.failed",
        "host.committed",
        "host.skipped",
        "run.halted",
        "run.done",
    }
)


def journal_path(state_dir: Path, run_id: str) -> Path:
    check_safe_name(run_id, "run id")
    return Path(state_dir) / JOURNAL_DIR / f"{run_id}.jsonl"


class Journal:
    """An open journal. Every :meth:`append` is one line, flushed and fsynced before it returns.

    Args:
        path: the journal file (created, never overwritten).
        on_append: called after each line is durable with the line's index (0-based); the
            fault injector crashes the process here to test every journal boundary.
    """

    def __init__(self, path: Path, fd: int, on_append: Callable[[int], None] | None = None) -> None:
        self.path = path
        self._fd: int | None = fd
        self._count = 0
        self._on_append = on_append

    @classmethod
    def create(
        cls, state_dir: Path, run_id: str, on_append: Callable[[int], None] | None = None
    ) -> Journal:
        """Create ``journals/<run id>.jsonl``.

        Raises:
            BadInputError: the run id is unsafe or a journal for it exists.
        """
        path = journal_path(state_dir, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except FileExistsError:
            raise BadInputError(f"a journal for run {run_id} exists", where=str(path)) from None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new name survives a crash too
        finally:
            os.close(dir_fd)
        return cls(path, fd, on_append)

    @property
    def lines_written(self) -> int:
        return self._count

    def append(self, event: str, **data: Any) -> dict[str, Any]:
        """Write one event durably and return it."""
        if event not in EVENTS:
            raise BadInputError(f"unknown journal event {event!r}", where=str(self.path))
        if self._fd is None:
            raise BadInputError("journal is closed", where=str(self.path))
        entry = {"event": event, "time": utc_now_text(), **data}
        line = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        written = os.write(self._fd, line)
        if written != len(line):
            raise OSError(f"short write to {self.path}")
        os.fsync(self._fd)
        index = self._count
        self._count += 1
        if self._on_append is not None:
            self._on_append(index)
        return entry

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The events of a journal, oldest first. A cut last line (a crash mid-write) is dropped.

    Raises:
        BadInputError: missing file, or a line other than the last that is not an event.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise BadInputError("no such journal", where=str(path)) from None
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends in a newline
    events: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, start=1):
        events.append(_parse(raw, path, number))
    if tail:
        try:
            events.append(_parse(tail, path, len(lines) + 1))
        except BadInputError:
            pass  # cut by a crash: the call it announced never started
    if events and events[0].get("event") != "run.begin":
        raise BadInputError("first line is not run.begin", where=f"{path}:1")
    return events


def _parse(raw: bytes, path: Path, number: int) -> dict[str, Any]:
    try:
        entry = json.loads(raw)
    except ValueError:
        raise BadInputError("not a JSON line", where=f"{path}:{number}") from None
    if not isinstance(entry, dict) or entry.get("event") not in EVENTS:
        raise BadInputError("not a journal event", where=f"{path}:{number}")
    return entry


@dataclass
class HostProgress:
    """What the journals say about one host.

    Attributes:
        begun: steps with a ``step.begin``.
        done: steps with a ``step.done`` (their post-condition held).
        failed: the step that failed last, if any.
        committed: the host was committed (patched, requalified, back in service).
        skipped: the run skipped the host (excluded, or found at the target).
    """

    host: str
    begun: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    failed: str | None = None
    committed: bool = False
    skipped: bool = False

    @property
    def last_done_index(self) -> int:
        """Index in :data:`STEPS` of the last step done, or -1."""
        return max((STEPS.index(s) for s in self.done), default=-1)

    @property
    def in_maintenance_by_run(self) -> bool:
        """The journal explains the host being in maintenance: entering began, leaving is not done."""
        return "enter_maintenance" in self.begun and "leave_maintenance" not in self.done


@dataclass
class JournalState:
    """A run's progress over its chain of journals (a resumed run and those it resumed).

    Attributes:
        run_ids: the chain, oldest first.
        begin: the oldest ``run.begin`` event (the plan every run of the chain follows).
        hosts: progress per host.
        finished: the newest run ended with ``run.done``.
        halted: the newest run ended with ``run.halted``.
        ended_cleanly: the newest journal ends in ``run.done`` or ``run.halted`` (no crash).
    """

    run_ids: list[str]
    begin: dict[str, Any]
    hosts: dict[str, HostProgress]
    finished: bool
    halted: bool

    @property
    def ended_cleanly(self) -> bool:
        return self.finished or self.halted

    def progress(self, host: str) -> HostProgress:
        return self.hosts.setdefault(host, HostProgress(host))

    @property
    def committed(self) -> list[str]:
        return [h for h, p in self.hosts.items() if p.committed]


def journal_chain(state_dir: Path, run_id: str, *, limit: int = 1000) -> list[list[dict[str, Any]]]:
    """The journals of ``run_id`` and of every run it resumed, oldest first."""
    chain: list[list[dict[str, Any]]] = []
    seen: set[str] = set()
    current: str | None = run_id
    while current is not None:
        if current in seen or len(chain) >= limit:
            raise BadInputError(f"journal chain of {run_id} loops at {current}")
        seen.add(current)
        events = read_journal(journal_path(state_dir, current))
        if not events:
            raise BadInputError("empty journal", where=str(journal_path(state_dir, current)))
        chain.append(events)
        prev = events[0].get("resumed_from")
        current = str(prev) if prev else None
    chain.reverse()
    return chain


def replay(chain: Sequence[Sequence[Mapping[str, Any]]]) -> JournalState:
    """Fold a chain of journals into the progress of each host."""
    if not chain or not chain[0]:
        raise BadInputError("no journal to replay")
    state = JournalState(
        run_ids=[str(j[0].get("run_id")) for j in chain],
        begin=dict(chain[0][0]),
        hosts={},
        finished=False,
        halted=False,
    )
    for events in chain:
        state.finished = state.halted = False
        for event in events:
            kind = event.get("event")
            host = event.get("host")
            if kind == "step.begin" and isinstance(host, str):
                p = state.progress(host)
                if event["step"] not in p.begun:
                    p.begun.append(str(event["step"]))
            elif kind == "step.done" and isinstance(host, str):
                p = state.progress(host)
                if event["step"] not in p.done:
                    p.done.append(str(event["step"]))
                p.failed = None
            elif kind == "step.failed" and isinstance(host, str):
                state.progress(host).failed = str(event["step"])
            elif kind == "host.committed" and isinstance(host, str):
                state.progress(host).committed = True
            elif kind == "host.skipped" and isinstance(host, str):
                state.progress(host).skipped = True
            elif kind == "run.done":
                state.finished = True
            elif kind == "run.halted":
                state.halted = True
    return state



def check_steps_version(chain: Sequence[Sequence[Mapping[str, Any]]], run_id: str) -> None:
    """Refuse to resume ``run_id`` when a journal of its chain was written with another
    :data:`~qualification.rollout.steps.STEPS_VERSION`, or with none (journals from before
    vqual recorded one): the steps it journaled may not mean what this vqual's steps mean.

    Raises:
        BadInputError: one line saying what to do instead (exit 2; nothing was executed).
    """
    for events in chain:
        begin = events[0] if events else {}
        found = begin.get("steps_version")
        if found == STEPS_VERSION:
            continue
        whose = "its journal" if begin.get("run_id") == run_id else (
            f"the journal of run {begin.get('run_id')}, which it resumed,")
        recorded = f"steps version {found}" if found is not None else "no steps version"
        started_by = f"vqual {begin['vqual_version']}" if begin.get("vqual_version") else (
            "the vqual release that started it")
        left = sorted(h for h, p in replay(chain).hosts.items()
                      if p.in_maintenance_by_run and not h.startswith("cluster:"))
        hint = (f"; a new run refuses a host left in maintenance, so first take "
                f"{', '.join(left)} out of maintenance" if left else "")
        raise BadInputError(
            f"run {run_id} cannot be resumed: {whose} records {recorded} and this vqual runs "
            f"rolling-patch steps version {STEPS_VERSION}; finish it with {started_by} "
            f"(vqual patch --resume {run_id}), or start a new run without --resume{hint}"
        )
