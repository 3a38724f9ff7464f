"""Retention: which held runs are past their retention period, and purging one of them.

A run is retained for its sites' period from the time it was pushed (:mod:`.settings`). No
route deletes anything; the only way a run leaves the store is :func:`purge`, here, run by
``vqual serve retention purge`` on the server's host, and only for a run past its retention.
A purge is a signed act (a document an approver or trust-admin signs, payload type
:data:`PURGE_TYPE`), appended to the transparency log as a leaf of its own (the log only
grows, so it stays consistent), audited, and it leaves a tombstone: run id, change, seal, when
it was pushed, who purged it, when and why, with the signed document. The run's seal and
signature leaves stay in the log, so a copy of the bundle held elsewhere still proves it was
there; the run id and seal cannot be pushed again.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from qualification.errors import BadInputError, VqualError
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.verify import open_signed_document
from qualification.review.documents import check_signer, sign_document, signer_fields
from qualification.server import db
from qualification.server.config import load_trust
from qualification.server.files import is_seal, valid_name
from qualification.server.merkle import DbTree
from qualification.server.service import EvidenceServer
from qualification.server.settings import bundle_sites, decode_sites
from qualification.server.voiding import VOID_ROLES
from qualification.signing import Signer, TrustStore
from qualification.timeutil import utc_now_text, utc_text

#: The payload type of a signed purge of a run past its retention.
PURGE_TYPE = "application/vnd.vqual.purge+json"


@dataclass(frozen=True)
class HeldRun:
    run_id: str
    change_id: str
    seal: str
    pushed: str
    sites: frozenset[str]
    days: int
    until: datetime

    def past(self, now: datetime) -> bool:
        return now >= self.until

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "change_id": self.change_id, "seal": self.seal,
                "pushed": self.pushed, "sites": sorted(self.sites),
                "retention_days": self.days, "retained_until": utc_text(self.until)}


def purge_leaf(run_id: str, seal: str, envelope: bytes) -> bytes:
    return canonical_bytes({"document": hashlib.sha256(envelope).hexdigest(), "kind": "purge",
                            "run_id": run_id, "seal": seal})


def held_runs(server: EvidenceServer) -> list[HeldRun]:
    """Every held run with its retention, oldest push first."""
    with db.read_tx(server.engine) as conn:
        rows = conn.execute(sa.select(db.runs).order_by(db.runs.c.pushed, db.runs.c.run_id)).all()
    out = []
    for row in rows:
        sites = (decode_sites(row.sites) if row.sites is not None
                 else bundle_sites(server.store / row.change_id / row.run_id))
        days = server.settings.retention_for(sites)
        out.append(HeldRun(row.run_id, row.change_id, row.seal, row.pushed, sites, days,
                           server.settings.retained_until(row.pushed, sites)))
    return out


def past_retention(server: EvidenceServer, now: datetime) -> list[HeldRun]:
    """The held runs whose retention has ended at ``now`` (the clock is the caller's)."""
    return [run for run in held_runs(server) if run.past(now)]


def find_run(server: EvidenceServer, ref: str) -> HeldRun:
    """The held run ``ref`` (run id or seal).

    Raises:
        BadInputError: no such run is held.
    """
    if not is_seal(ref):
        valid_name(ref, "run id")
    found = [r for r in held_runs(server) if ref in (r.run_id, r.seal)]
    if not found:
        raise BadInputError(f"no run {ref[:64]} is held")
    return found[0]


def purge_document(signer: Signer, trust: TrustStore, run: HeldRun, reason: str) -> bytes:
    """The signed purge of ``run``.

    Raises:
        TrustError: the signer holds neither the approver nor the trust-admin role.
        BadInputError: no reason given.
    """
    if not reason.strip():
        raise BadInputError("a purge needs a reason")
    key = trust.get(signer.keyid)
    role = next((r for r in VOID_ROLES if key is not None and r in key.roles), VOID_ROLES[0])
    key = check_signer(trust, signer.keyid, role)
    payload = signer_fields(key, utc_now_text(), None)
    payload.update({"run_id": run.run_id, "seal": run.seal, "reason": reason.strip()})
    return sign_document(signer, PURGE_TYPE, payload)


def _open_purge(envelope: bytes, trust: TrustStore) -> Any:
    last: VqualError | None = None
    for role in VOID_ROLES:
        try:
            return open_signed_document(envelope, PURGE_TYPE, trust, role, where="purge")
        except VqualError as exc:
            last = exc
    assert last is not None
    raise BadInputError(f"the purge document is not valid: {last.one_line()}")


def purgeable(server: EvidenceServer, ref: str, now: datetime) -> HeldRun:
    """The held run ``ref`` if it is past its retention at ``now``.

    Raises:
        BadInputError: not held, or within its retention (audited).
    """
    try:
        run = find_run(server, ref)
        if not run.past(now):
            raise BadInputError(
                f"run {run.run_id} is within its retention until {utc_text(run.until)} "
                f"({run.days} days); nothing within its retention is deleted")
    except BadInputError as exc:
        server.audit("retention", "purge", "refused", exc.message, ref[:64])
        raise
    return run


def purge(server: EvidenceServer, ref: str, envelope: bytes, now: datetime) -> dict[str, Any]:
    """Purge the held run ``ref`` past its retention at ``now`` by the signed ``envelope``.

    Raises:
        BadInputError: the run is within its retention, is not held, or the document is not
            a valid purge of it signed by an approver or trust-admin (each audited).
    """
    run = purgeable(server, ref, now)
    try:
        doc = _open_purge(envelope, load_trust(server.config.state_dir))
        if (doc.payload.get("run_id"), doc.payload.get("seal")) != (run.run_id, run.seal):
            raise BadInputError("the purge document names another run or seal")
    except BadInputError as exc:
        server.audit("retention", "purge", "refused", exc.message, ref[:64])
        raise
    signer, reason = doc.key.name[:128], str(doc.payload.get("reason"))
    with db.write_tx(server.engine) as conn:
        conn.execute(db.tombstones.insert().values(
            run_id=run.run_id, change_id=run.change_id, seal=run.seal, pushed=run.pushed,
            time=utc_now_text(), signer=signer, reason=reason, envelope=envelope))
        tree = DbTree(conn)
        index = tree.append_leaf(purge_leaf(run.run_id, run.seal, envelope), run.run_id,
                                 utc_now_text())
        server._checkpoint(conn, tree)  # the log's one signer signs the new size
        conn.execute(db.runs.delete().where(db.runs.c.run_id == run.run_id))
        server.audit(signer, "purge", "ok", f"seal {run.seal}; retained until "
                     f"{utc_text(run.until)}; log [{index}]; {reason}", run.run_id, conn)
    # Only after the commit: a failed transaction leaves the run whole.
    gone = server.incoming / f"purged-{uuid.uuid4().hex}"
    source = server.store / run.change_id / run.run_id
    if source.exists():
        shutil.move(str(source), str(gone))
        shutil.rmtree(gone, ignore_errors=True)
    return {"run_id": run.run_id, "seal": run.seal, "purged_by": signer, "log_index": index}
