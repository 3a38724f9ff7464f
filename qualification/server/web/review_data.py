"""What the review pages read: the held runs with their facts and statuses, from the server's
database and store.

A run's facts (mode, verdict, started, hosts, clusters, counts, signatures) are read from its
stored records and kept per process, keyed by the records file's size and modification time:
a held run only ever grows by records after its seal (a re-push with signatures), which
changes both, so a cached entry is never stale. Statuses, per run:

- verification: every held run was verified by ``vqual verify``'s verifier when it was pushed
  (the server refuses anything else); a void is shown instead when it is voided;
- chain: the stored ``records.jsonl`` against the SHA-256 the database holds for it (a file
  edited in the store shows as ``MISMATCH``);
- log: the transparency log's entries for the run (its seal and each record after it) against
  what the records need, and whether the latest signed checkpoint covers them.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from qualification.errors import VqualError
from qualification.evidence.bundle import RECORDS
from qualification.evidence.reader import Record, read_bundle
from qualification.reports.audit_review import _moment
from qualification.reports.model import load_run
from qualification.server import db
from qualification.server.service import EvidenceServer
from qualification.server.settings import bundle_sites, decode_sites

#: Facts kept per process (a few hundred bytes each); rendered pages (tens of KB each).
_CACHE_SIZE = 4096
_T = TypeVar("_T")


@dataclass(frozen=True)
class RunFacts:
    """What a run's records say, for the list and its filters."""

    mode: str
    verdict: str
    started: str
    hosts: tuple[str, ...]
    clusters: tuple[str, ...]
    counts: tuple[tuple[str, int], ...]
    signatures: tuple[tuple[str, str, str], ...]  # (meaning, printed name, time)
    after_seal: int  # records after run.end
    chain: str
    signers: tuple[tuple[str, str], ...] = ()  # (meaning, key id) of each signature


@dataclass(frozen=True)
class HeldRun:
    run_id: str
    change_id: str
    seal: str
    pushed: str
    pushed_by: str
    voided: str | None
    facts: RunFacts
    log: str = ""
    sites: frozenset[str] = frozenset()

    @property
    def verification(self) -> str:
        return f"void since {self.voided}" if self.voided else "verified when pushed"

    @property
    def approvals(self) -> str:
        return "; ".join(f"{m} by {n} at {t[:19].replace('T', ' ')}"
                         for m, n, t in self.facts.signatures) or "none yet"


@dataclass(frozen=True)
class RunFilter:
    """The list's filters; empty fields do not filter. Dates compare with the run's start."""

    change: str = ""
    host: str = ""
    cluster: str = ""
    verdict: str = ""
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> RunFilter:
        from qualification.reports.audit_review import parse_moment

        since, until = query.get("from", "").strip(), query.get("to", "").strip()
        return cls(change=query.get("change", "").strip()[:64],
                   host=query.get("host", "").strip()[:200],
                   cluster=query.get("cluster", "").strip()[:200],
                   verdict=query.get("verdict", "").strip()[:20],
                   since=parse_moment(since, "from") if since else None,
                   until=parse_moment(until, "to") if until else None)

    def matches(self, run: HeldRun) -> bool:
        facts = run.facts
        if self.change and self.change != run.change_id:
            return False
        if self.host and self.host not in facts.hosts:
            return False
        if self.cluster and self.cluster not in facts.clusters:
            return False
        if self.verdict and self.verdict != facts.verdict:
            return False
        when = _moment(facts.started)
        if when is not None and self.since is not None and when < self.since:
            return False
        return not (when is not None and self.until is not None and when >= self.until)


class _Lru:
    def __init__(self, size: int) -> None:
        self.size, self.items, self.lock = size, OrderedDict[Any, Any](), threading.Lock()

    def get(self, key: Any) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_FACTS = _Lru(_CACHE_SIZE)
_PAGES = _Lru(1024)
#: Decoded records of the last runs read: a first look reads them for the facts and renders
#: the summary from the same records.
_RECORDS = _Lru(32)


def _records_at(path: Path) -> list[Record]:
    stat = (path / RECORDS).stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    found = _RECORDS.get(key)
    if found is None:
        found = read_bundle(path).records
        _RECORDS.put(key, found)
    return found  # type: ignore[no-any-return]


def _clusters(start: Mapping[str, Any], inventory: Any) -> tuple[str, ...]:
    found: list[str] = []
    patch = start.get("patch")
    if isinstance(patch, Mapping) and patch.get("cluster"):
        found.append(str(patch["cluster"]))
    for t in start.get("targets") or ():
        if isinstance(t, Mapping) and t.get("cluster"):
            found.append(str(t["cluster"]))

    def walk(node: Any) -> None:  # the inventory snapshot's vqual_cluster host variables
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "vqual_cluster" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(inventory)
    return tuple(dict.fromkeys(found))


def _read_facts(path: Path, records_sha256: str) -> RunFacts:
    import json

    data = (path / RECORDS).read_bytes()
    chain = "intact" if hashlib.sha256(data).hexdigest() == records_sha256 else "MISMATCH"
    try:
        records = _records_at(path)
        run = load_run(records)
    except VqualError as exc:
        return RunFacts("?", "unreadable", "", (), (), (), (), 0,
                        f"{chain}; unreadable: {exc.one_line()}"[:300])
    end = next((i for i, r in enumerate(records) if r.kind == "run.end"), len(records) - 1)
    inventory = None
    if (path / "inventory.json").is_file():
        try:
            inventory = json.loads((path / "inventory.json").read_bytes())
        except ValueError:
            inventory = None
    return RunFacts(
        mode=str(run.start.get("mode") or "qualify"), verdict=run.verdict(),
        started=run.started_at or "",
        hosts=tuple(dict.fromkeys([t.name for t in run.targets]
                                  + [r.target for r in run.results])),
        clusters=_clusters(run.start, inventory),
        counts=tuple((k, v) for k, v in run.counts().items() if v),
        signatures=tuple((s.meaning, s.name, s.time or "") for s in run.signatures),
        after_seal=len(records) - end - 1, chain=chain,
        signers=tuple((s.meaning, s.keyid) for s in run.signatures))


def facts_of(path: Path, records_sha256: str) -> RunFacts:
    """The run's facts, cached by the records file's size and modification time."""
    stat = (path / RECORDS).stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, records_sha256)
    found = _FACTS.get(key)
    if found is None:
        found = _read_facts(path, records_sha256)
        _FACTS.put(key, found)
    return found  # type: ignore[no-any-return]


def _log_status(server: EvidenceServer, runs: Sequence[HeldRun]) -> list[HeldRun]:
    if not runs:
        return []
    e = db.log_entries
    with db.read_tx(server.engine) as conn:
        size = conn.execute(sa.select(sa.func.max(db.checkpoints.c.size))).scalar() or 0
        rows = conn.execute(
            sa.select(e.c.run_id, sa.func.count(), sa.func.max(e.c.idx))
            .where(e.c.run_id.in_([r.run_id for r in runs])).group_by(e.c.run_id)).all()
    logged = {row[0]: (int(row[1]), int(row[2])) for row in rows}
    out = []
    for run in runs:
        count, last = logged.get(run.run_id, (0, -1))
        # The seal, each record after it, and a void are one leaf each.
        needed = 1 + run.facts.after_seal + (1 if run.voided else 0)
        if count < needed:
            status = f"NOT LOGGED: {count} of {needed} entries"
        elif last >= size:
            status = f"logged ({count} entries), not yet in a signed checkpoint"
        else:
            status = f"logged ({count} entries), in checkpoint {size}"
        out.append(replace(run, log=status))
    return out


#: Whether a run of these sites is shown (the signed-in user's :meth:`WebUser.may_see`).
Visible = Callable[[frozenset[str]], bool]


def _sites(server: EvidenceServer, row: Any) -> frozenset[str]:
    """A run's sites: as stored when pushed, else (pushed before 0003) from its inventory."""
    if row.sites is not None:
        return decode_sites(row.sites)
    return bundle_sites(server.store / row.change_id / row.run_id)


def held_runs(server: EvidenceServer, flt: RunFilter, limit: int = 200,
              visible: Visible | None = None) -> list[HeldRun]:
    """The held runs ``flt`` keeps (and ``visible`` shows), newest push first, at most
    ``limit``, with statuses."""
    r, v = db.runs, db.voids
    query = (sa.select(r.c.run_id, r.c.change_id, r.c.seal, r.c.pushed, r.c.pushed_by,
                       r.c.records_sha256, r.c.sites, v.c.time.label("voided"))
             .select_from(r.outerjoin(v, v.c.run_id == r.c.run_id))
             .order_by(r.c.pushed.desc(), r.c.run_id))
    if flt.change:
        query = query.where(r.c.change_id == flt.change)
    with db.read_tx(server.engine) as conn:
        rows = conn.execute(query).all()
    kept: list[HeldRun] = []
    for row in rows:
        sites = _sites(server, row)
        if visible is not None and not visible(sites):
            continue
        path = server.store / row.change_id / row.run_id
        try:
            facts = facts_of(path, row.records_sha256)
        except (OSError, ValueError) as exc:
            facts = RunFacts("?", "unreadable", "", (), (), (), (), 0, f"UNREADABLE: {exc}"[:200])
        run = HeldRun(row.run_id, row.change_id, row.seal, row.pushed, row.pushed_by,
                      row.voided, facts, sites=sites)
        if flt.matches(run):
            kept.append(run)
            if len(kept) >= limit:
                break
    return _log_status(server, kept)


def held_run(server: EvidenceServer, run_id: str) -> HeldRun | None:
    """One held run with its statuses, or None."""
    r, v = db.runs, db.voids
    with db.read_tx(server.engine) as conn:
        row = conn.execute(
            sa.select(r.c.run_id, r.c.change_id, r.c.seal, r.c.pushed, r.c.pushed_by,
                      r.c.records_sha256, r.c.sites, v.c.time.label("voided"))
            .select_from(r.outerjoin(v, v.c.run_id == r.c.run_id))
            .where(r.c.run_id == run_id[:64])).first()
    if row is None:
        return None
    run = HeldRun(row.run_id, row.change_id, row.seal, row.pushed, row.pushed_by, row.voided,
                  facts_of(server.store / row.change_id / row.run_id, row.records_sha256),
                  sites=_sites(server, row))
    return _log_status(server, [run])[0]


def visible_run_ids(server: EvidenceServer, visible: Visible) -> set[str]:
    """The ids of the held runs ``visible`` shows."""
    r = db.runs
    with db.read_tx(server.engine) as conn:
        rows = conn.execute(sa.select(r.c.run_id, r.c.change_id, r.c.sites)).all()
    return {row.run_id for row in rows if visible(_sites(server, row))}


def records_of(server: EvidenceServer, run: HeldRun) -> list[Record]:
    return _records_at(server.store / run.change_id / run.run_id)


def cached_render(server: EvidenceServer, run: HeldRun, what: str,
                  render: Callable[[list[Record]], _T]) -> _T:
    """``render(records)`` of a held run, kept while its records file is unchanged."""
    path = server.store / run.change_id / run.run_id
    stat = (path / RECORDS).stat()
    key = (what, str(path), stat.st_size, stat.st_mtime_ns)
    found = _PAGES.get(key)
    if found is None:
        found = render(_records_at(path))
        _PAGES.put(key, found)
    return found  # type: ignore[no-any-return]


__all__ = ["HeldRun", "RunFacts", "RunFilter", "cached_render", "facts_of", "held_run",
           "held_runs", "records_of", "visible_run_ids"]
