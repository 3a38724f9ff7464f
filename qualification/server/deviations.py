"""Deviations on the server: pushed by a controller, listed and approved in the browser, pulled
back as waivers.

A controller pushes a change's deviations (the entries of ``deviations.yaml``) and the waivers
it holds (``vqual deviation push``). The server judges them exactly as ``vqual`` does: it lays
them out as a state directory's ``deviations/<change>/`` and reads them with
:func:`qualification.review.deviations.load_deviations` (the same field rules) and
:func:`~qualification.review.deviations.deviation_state` (every waiver's signature, role,
trusted time, digest and separation of duties, through the trust store the pinned root
vouches for); anything refused refuses the push. A deviation belongs to sites (named by the
push, else those of the change's held runs) and an account reaches it as it reaches a run.
A waiver made in the browser (:mod:`.web.deviation_pages`) is made by the same
:func:`~qualification.review.deviations.approve_deviation` over such a layout, so ``vqual
deviation pull`` writes back exactly the file ``vqual deviation approve`` would have written,
and it counts offline.
"""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from qualification.errors import BadInputError, VqualError
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.trusted_time import token_path
from qualification.review.deviations import (
    WAIVERS_DIR,
    Deviation,
    Waiver,
    change_dir,
    deviation_state,
    load_deviations,
)
from qualification.server import db
from qualification.server.config import load_trust
from qualification.server.deviation_files import write_layout
from qualification.server.files import valid_name
from qualification.server.service import EvidenceServer, Refused
from qualification.server.settings import decode_sites, encode_sites, site_refusal
from qualification.server.tokens import Account
from qualification.timeutil import utc_now_text


@dataclass(frozen=True)
class HeldDeviation:
    """A deviation the server holds, with the waivers over its current content."""

    change_id: str
    deviation: Deviation
    sites: frozenset[str]
    pushed: str
    pushed_by: str
    approvals: tuple[tuple[str, str, str], ...]  # (printed name, key id, time), oldest first

    @property
    def id(self) -> str:
        return self.deviation.id

    def status(self, now: str) -> str:
        if not self.approvals:
            return "unsigned"
        return "expired" if self.deviation.expired_at(now) else "approved"


@contextmanager
def laid_out(server: EvidenceServer) -> Iterator[Path]:
    """A scratch state directory under the store's incoming area, removed afterwards."""
    work = server.incoming / f"dev-{uuid.uuid4().hex}"
    work.mkdir()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _parse_push(body: bytes) -> tuple[str, list[str], list[Any], list[Any]]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise Refused(422, "deviations are pushed as JSON") from None
    if not isinstance(doc, dict):
        raise Refused(422, "deviations are pushed as a JSON object")
    change, sites = doc.get("change_id"), doc.get("sites") or []
    devs, waivers = doc.get("deviations"), doc.get("waivers") or []
    if not isinstance(change, str) or not isinstance(devs, list) or not devs or \
            not isinstance(waivers, list) or not isinstance(sites, list) or \
            not all(isinstance(s, str) for s in sites) or \
            not all(isinstance(x, dict) for x in [*devs, *waivers]):
        raise Refused(422, "a push of deviations names change_id, deviations (a non-empty "
                      "list), and optionally sites and waivers")
    try:
        valid_name(change, "change id")
        for site in sites:
            valid_name(site, "site")
    except BadInputError as exc:
        raise Refused(422, exc.message) from None
    return change, sites, devs, waivers


def _sites_of_change(conn: Connection, change_id: str) -> frozenset[str]:
    rows = conn.execute(sa.select(db.runs.c.sites).where(db.runs.c.change_id == change_id))
    return frozenset(s for row in rows for s in decode_sites(row.sites))


def _authorize(server: EvidenceServer, account: Account | None, action: str, change_id: str,
               sites: frozenset[str]) -> None:
    why = None if account is None else site_refusal(
        server.settings, account.name, account.sites, action,
        f"of change {change_id}", sites)
    if why is not None:
        raise Refused(403, why.replace(" run of change", " deviations of change"))


def push_deviations(server: EvidenceServer, who: str, body: bytes,
                    account: Account | None = None) -> dict[str, Any]:
    """Judge and hold a change's deviations and waivers (refusals raise :class:`Refused`; the
    HTTP layer audits them)."""
    change, named, devs, waivers = _parse_push(body)
    trust = load_trust(server.config.state_dir)
    with laid_out(server) as state:
        try:
            write_layout(state, change, devs, waivers)
            held = load_deviations(state, change)
            judged = deviation_state(state, change, trust)
        except (VqualError, OSError) as exc:
            raise Refused(422, f"deviations of {change} are not valid: "
                          f"{exc.one_line() if isinstance(exc, VqualError) else exc}") from None
        if judged.refused:
            raise Refused(422, f"a waiver of {change} does not hold: {judged.refused[0]}",
                          judged.refused[:50])
        valid = {w.file.rsplit("/", 1)[-1]: w for w in _all_valid(state, change, trust)}
        tokens = {w["file"]: w.get("token") for w in waivers}
    with db.write_tx(server.engine) as conn:
        sites = frozenset(named) or _sites_of_change(conn, change)
        if server.settings.per_site and not sites:
            raise Refused(422, f"no site for the deviations of {change}: no held run of it "
                          "names one; push them with --site")
        _authorize(server, account, "push", change, sites)
        stored = [_hold_deviation(conn, change, d, sites, who) for d in held]
        added = [name for name, w in valid.items()
                 if _hold_waiver(conn, change, w, tokens.get(name), who)]
        server.audit(who, "deviation.push", "ok", f"change {change}: deviations "
                     f"{', '.join(stored)}; new waivers {', '.join(added) or '-'}", None, conn)
    return {"change_id": change, "deviations": stored, "waivers_added": added,
            "sites": sorted(sites)}


def _all_valid(state: Path, change: str, trust: Any) -> list[Waiver]:
    """Every waiver file of the layout (all hold: ``deviation_state`` refused none, but keeps
    only the latest per deviation), read back for holding."""
    from qualification.evidence.verify import WAIVER_TYPE
    from qualification.review.documents import open_document

    by_id = {d.id: d for d in load_deviations(state, change)}
    folder = change_dir(state, change) / WAIVERS_DIR
    found = []
    for path in sorted(folder.glob("*.json")):
        raw = path.read_bytes().rstrip(b"\n")
        doc = open_document(raw, WAIVER_TYPE, trust, "approver", where=path.name)
        comment = doc.payload.get("comment")
        found.append(Waiver(by_id[doc.payload["deviation"]["id"]], doc.key.name, doc.keyid,
                            str(doc.payload["time"]), comment if isinstance(comment, str)
                            else None, path.relative_to(state).as_posix(),
                            raw.decode("utf-8"), doc.key.identity))
    return found


def _hold_deviation(conn: Connection, change: str, dev: Deviation, sites: frozenset[str],
                    who: str) -> str:
    t = db.deviations
    row = {"digest": dev.digest, "content": canonical_bytes(dev.to_json()).decode("utf-8"),
           "sites": encode_sites(sites), "pushed": utc_now_text(), "pushed_by": who[:64]}
    held = conn.execute(sa.select(t.c.digest).where(
        t.c.change_id == change, t.c.deviation_id == dev.id)).first()
    if held is None:
        conn.execute(t.insert().values(change_id=change, deviation_id=dev.id, **row))
        return dev.id
    # An edited deviation replaces the held one: its earlier waivers no longer cover it.
    conn.execute(t.update().where(t.c.change_id == change, t.c.deviation_id == dev.id)
                 .values(**row))
    return dev.id if held.digest == dev.digest else f"{dev.id} (edited)"


def _hold_waiver(conn: Connection, change: str, waiver: Waiver, token: object,
                 who: str) -> bool:
    """Hold ``waiver`` unless a waiver of that file name is held; whether it was new."""
    name = waiver.file.rsplit("/", 1)[-1]
    t = db.waivers
    if conn.execute(sa.select(t.c.file).where(t.c.file == name)).first() is not None:
        return False
    conn.execute(t.insert().values(
        file=name, change_id=change, deviation_id=waiver.deviation.id,
        digest=waiver.deviation.digest, envelope=waiver.envelope.encode("utf-8"),
        token=base64.b64decode(token) if isinstance(token, str) and token else None,
        time=waiver.time, signer=waiver.name[:128], keyid=waiver.keyid, stored_by=who[:64]))
    return True


def store_made_waiver(server: EvidenceServer, state: Path, change: str, waiver: Waiver,
                      who: str) -> None:
    """Hold a waiver just made over the layout ``state`` (its file and token are there)."""
    path = state / waiver.file
    tsr = token_path(path)
    token = base64.b64encode(tsr.read_bytes()).decode() if tsr.is_file() else None
    with db.write_tx(server.engine) as conn:
        _hold_waiver(conn, change, waiver, token, who)


def held_deviations(server: EvidenceServer, change_id: str | None = None,
                    deviation_id: str | None = None) -> list[HeldDeviation]:
    """The held deviations (of ``change_id``; that one), each with the waivers over its
    current content."""
    d, w = db.deviations, db.waivers
    query = sa.select(d).order_by(d.c.change_id, d.c.deviation_id)
    if change_id is not None:
        query = query.where(d.c.change_id == change_id[:64])
    if deviation_id is not None:
        query = query.where(d.c.deviation_id == deviation_id[:64])
    with db.read_tx(server.engine) as conn:
        rows = conn.execute(query).all()
        wanted = sa.select(w.c.change_id, w.c.deviation_id, w.c.digest, w.c.signer,
                           w.c.keyid, w.c.time).order_by(w.c.time)
        if change_id is not None:
            wanted = wanted.where(w.c.change_id == change_id[:64])
        signed = conn.execute(wanted).all()
    out = []
    for row in rows:
        dev = Deviation.from_json(json.loads(row.content))
        approvals = tuple((s.signer, s.keyid, s.time) for s in signed
                          if (s.change_id, s.deviation_id, s.digest)
                          == (row.change_id, row.deviation_id, row.digest))
        out.append(HeldDeviation(row.change_id, dev, decode_sites(row.sites), row.pushed,
                                 row.pushed_by, approvals))
    return out


def layout_json(server: EvidenceServer, change_id: str) -> tuple[list[dict[str, Any]],
                                                                 list[dict[str, Any]]]:
    """A change's held deviations and every held waiver of it, in the push's JSON form."""
    devs = [h.deviation.to_json() for h in held_deviations(server, change_id)]
    t = db.waivers
    with db.read_tx(server.engine) as conn:
        rows = conn.execute(sa.select(t).where(t.c.change_id == change_id[:64])
                            .order_by(t.c.file)).all()
    waivers = [{"file": r.file, "envelope": bytes(r.envelope).decode("utf-8"),
                "token": base64.b64encode(bytes(r.token)).decode() if r.token else None}
               for r in rows]
    return devs, waivers


def pull_deviations(server: EvidenceServer, who: str, change_id: str,
                    account: Account | None = None) -> dict[str, Any]:
    """A change's held deviations and waivers, for ``vqual deviation pull`` (audited)."""
    try:
        valid_name(change_id, "change id")
    except BadInputError as exc:
        raise Refused(404, exc.message) from None
    held = held_deviations(server, change_id)
    if not held:
        raise Refused(404, f"no deviations of change {change_id} are held")
    sites = frozenset(s for h in held for s in h.sites)
    _authorize(server, account, "pull", change_id, sites)
    devs, waivers = layout_json(server, change_id)
    server.audit(who, "deviation.pull", "ok", f"change {change_id}: {len(devs)} deviations, "
                 f"{len(waivers)} waivers")
    return {"change_id": change_id, "sites": sorted(sites), "deviations": devs,
            "waivers": waivers}


__all__ = ["HeldDeviation", "held_deviations", "laid_out", "layout_json", "pull_deviations",
           "push_deviations", "store_made_waiver"]
