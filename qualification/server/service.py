"""What the server does, without HTTP: push, pull, void, the log's proofs, the audit table.

A push is verified with the same verifier as ``vqual verify`` (:func:`verify_bundle`, the
trust of :func:`qualification.server.config.load_trust`) before anything is stored. A run is
addressed by its seal: a new run is stored and its seal (and any signatures after it) logged;
a re-push of a held run is accepted only when the held records are a prefix of the pushed ones
and the pushed ones add only records after the seal (signatures, timestamps), which are then
logged; anything else under a held run id is refused. Every outcome is in the audit table.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from qualification.errors import BadInputError, TrustError, VqualError
from qualification.evidence.bundle import RECORDS
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.verify import VALID, open_signed_document, verify_bundle
from qualification.server import db
from qualification.server.config import ServerConfig, load_trust
from qualification.server.files import is_seal, pack, unpack, valid_name
from qualification.server.leaves import (
    CHECKPOINT_TYPE,
    VOID_TYPE,
    SealedRun,
    after_seal_leaf,
    read_sealed,
    void_leaf,
)
from qualification.server.merkle import DbTree
from qualification.server.settings import (
    bundle_sites,
    decode_sites,
    encode_sites,
    load_settings,
    site_refusal,
)
from qualification.server.tokens import Account
from qualification.server.voiding import VOID_ROLES
from qualification.signing import Ed25519Signer
from qualification.signing.dsse import sign_envelope
from qualification.timeutil import utc_now_text


class Refused(VqualError):
    """The server refuses a request; ``status`` is the HTTP status that says so."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None,
                 run_id: str | None = None) -> None:
        self.status = status
        self.problems = problems or []
        self.run_id = run_id  # the run refused, for the audit trail
        super().__init__(message)


@dataclass
class PushOutcome:
    run_id: str
    change_id: str
    seal: str
    outcome: str  # stored | appended | unchanged
    appended: int = 0
    log_indexes: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class EvidenceServer:
    """One server: its database, its store and its log key."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = config.store
        self.incoming = config.store / ".incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.log_signer = Ed25519Signer.from_file(config.log_key, None)
        key = load_trust(config.state_dir).get(self.log_signer.keyid)
        if key is None or "log" not in key.roles:
            raise TrustError(
                f"log key {config.log_key} (key id {self.log_signer.keyid[:16]}) is not in the "
                "trust store with the log role; vqual keys create --role log --service"
            )
        self.log_name = key.name
        self.settings = load_settings(config.state_dir)  # sites and retention
        self.engine = db.make_engine(config.database_url)
        revision = db.current_revision(self.engine)
        if revision != db.HEAD:
            self.engine.dispose()
            raise BadInputError(
                f"database is at schema revision {revision or 'none'}, not {db.HEAD}; "
                "run vqual serve db upgrade"
            )

    def close(self) -> None:
        """Close the database connections this server holds."""
        self.engine.dispose()

    # ------------------------------------------------------------------------ audit
    def audit(self, who: str, action: str, outcome: str, detail: str,
              run_id: str | None = None, conn: Connection | None = None) -> None:
        row = {"time": utc_now_text(), "who": who[:64], "action": action, "run_id": run_id,
                   "outcome": outcome, "detail": detail[:4000]}
        if conn is not None:
            conn.execute(db.audit.insert().values(**row))
            return
        with db.write_tx(self.engine) as own:
            own.execute(db.audit.insert().values(**row))

    # ------------------------------------------------------------------------ push
    def push(self, who: str, body: bytes, account: Account | None = None) -> PushOutcome:
        """Verify and take one bundle (a tar); refusals raise :class:`Refused`, audited.
        ``account`` (the pusher) is held to its sites; None: not checked (in-process use)."""
        work = self.incoming / uuid.uuid4().hex
        try:
            try:
                unpack(body, work / "bundle", max_bytes=self.config.max_body)
            except BadInputError as exc:
                raise Refused(422, f"not a bundle: {exc.message}") from None
            bundle = work / "bundle"
            result = verify_bundle(bundle, load_trust(self.config.state_dir), workers=1)
            if result.status != VALID:
                first = result.problems[0] if result.problems else result.status
                raise Refused(422, f"does not verify ({result.status}): {first}",
                              list(result.problems[:50]))
            sealed = read_sealed(bundle)
            try:
                valid_name(sealed.change_id, "change id")
                valid_name(sealed.run_id, "run id")
            except BadInputError as exc:
                raise Refused(422, exc.message) from None
            self._authorize(account, "push", sealed.run_id, bundle_sites(bundle))
            with db.write_tx(self.engine) as conn:
                out = self._take(conn, who, bundle, sealed)
            return out
        except Refused as exc:
            self.audit(who, "push", "refused", exc.message, exc.run_id)
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _take(self, conn: Connection, who: str, bundle: Path, sealed: SealedRun) -> PushOutcome:
        held = conn.execute(sa.select(db.runs).where(db.runs.c.run_id == sealed.run_id)).first()
        if held is None:
            return self._store_new(conn, who, bundle, sealed)
        if held.seal != sealed.seal or held.change_id != sealed.change_id:
            raise Refused(409, f"run {sealed.run_id} is held with seal {held.seal[:16]}; a "
                          f"bundle with seal {sealed.seal[:16]} cannot replace it")
        target = self._run_dir(held.change_id, held.run_id)
        held_lines = (target / RECORDS).read_bytes()[:-1].split(b"\n")
        new = sealed.lines
        if new[: len(held_lines)] != held_lines:
            if held_lines[: len(new)] == new:
                return self._done(conn, who, sealed, "unchanged", [])
            at = next(i for i, (a, b) in enumerate(zip(held_lines, new, strict=False)) if a != b)
            raise Refused(409, f"run {sealed.run_id} differs from the held records at line "
                          f"{at + 1}; pull the held bundle and sign that")
        added = new[len(held_lines):]
        if not added:
            return self._done(conn, who, sealed, "unchanged", [])
        _atomic_write(target / RECORDS, b"\n".join(new) + b"\n")
        conn.execute(db.runs.update().where(db.runs.c.run_id == sealed.run_id).values(
            lines=len(new), records_sha256=_records_digest(new)))
        first_new = len(held_lines) - sealed.end_index - 1
        leaves = [after_seal_leaf(sealed.run_id, sealed.seal, k, line)
                  for k, line in sealed.after()[first_new:]]
        return self._done(conn, who, sealed, "appended", leaves)

    def _store_new(self, conn: Connection, who: str, bundle: Path,
                   sealed: SealedRun) -> PushOutcome:
        other = conn.execute(sa.select(db.runs.c.run_id).where(db.runs.c.seal == sealed.seal))
        if other.first() is not None:
            raise Refused(409, f"seal {sealed.seal[:16]} is held under another run id")
        gone = conn.execute(sa.select(db.tombstones.c.time).where(sa.or_(
            db.tombstones.c.run_id == sealed.run_id, db.tombstones.c.seal == sealed.seal))).first()
        if gone is not None:
            raise Refused(409, f"run {sealed.run_id} was purged past its retention at "
                          f"{gone.time}; its tombstone stays", run_id=sealed.run_id)
        target = self._run_dir(sealed.change_id, sealed.run_id)
        if target.exists():  # left by a push whose transaction did not commit
            shutil.move(str(target), str(self.incoming / f"debris-{uuid.uuid4().hex}"))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(bundle, target)
        conn.execute(db.runs.insert().values(
            run_id=sealed.run_id, change_id=sealed.change_id, seal=sealed.seal,
            records_sha256=_records_digest(sealed.lines), lines=len(sealed.lines),
            pushed=utc_now_text(), pushed_by=who[:64], sites=encode_sites(bundle_sites(target))))
        return self._done(conn, who, sealed, "stored", sealed.leaves())

    def _done(self, conn: Connection, who: str, sealed: SealedRun, outcome: str,
              leaves: list[bytes]) -> PushOutcome:
        out = PushOutcome(sealed.run_id, sealed.change_id, sealed.seal, outcome,
                          appended=max(0, len(leaves) - (1 if outcome == "stored" else 0)))
        if leaves:
            tree = DbTree(conn)
            now = utc_now_text()
            out.log_indexes = [tree.append_leaf(leaf, sealed.run_id, now) for leaf in leaves]
            self._checkpoint(conn, tree)
        self.audit(who, "push", outcome, f"seal {sealed.seal}; log {out.log_indexes}",
                   sealed.run_id, conn)
        return out

    # ------------------------------------------------------------------------ log
    def _checkpoint(self, conn: Connection, tree: DbTree) -> None:
        size = tree.get_size()
        root = tree.get_root().hex()
        payload = {"keyid": self.log_signer.keyid, "name": self.log_name, "root": root,
                   "size": size, "time": utc_now_text()}
        envelope = sign_envelope(canonical_bytes(payload), self.log_signer,
                                 CHECKPOINT_TYPE).to_bytes()
        conn.execute(db.checkpoints.insert().values(size=size, root=root, time=payload["time"],
                                                    envelope=envelope))

    def ensure_checkpoint(self) -> None:
        """Sign a checkpoint of the current size if there is none (after a migration)."""
        with db.write_tx(self.engine) as conn:
            tree = DbTree(conn)
            size = tree.get_size()
            have = conn.execute(sa.select(db.checkpoints.c.size)
                                .where(db.checkpoints.c.size == size)).first()
            if size and have is None:
                self._checkpoint(conn, tree)

    def latest_root(self) -> str:
        """The root of the latest signed checkpoint (hex)."""
        with db.read_tx(self.engine) as conn:
            return str(conn.execute(sa.select(db.checkpoints.c.root)
                                    .order_by(db.checkpoints.c.size.desc()).limit(1)).scalar_one())

    def checkpoint(self) -> bytes:
        with db.read_tx(self.engine) as conn:
            row = conn.execute(sa.select(db.checkpoints.c.envelope)
                               .order_by(db.checkpoints.c.size.desc()).limit(1)).first()
        if row is None:
            raise Refused(404, "the log is empty")
        return bytes(row.envelope)

    def inclusion(self, leaf_hash: str, size: int) -> dict[str, Any]:
        if not is_seal(leaf_hash):
            raise Refused(422, "leaf hash must be 64 lower-case hex digits")
        with db.read_tx(self.engine) as conn:
            tree = DbTree(conn)
            index = tree.find(leaf_hash)
            if index is None or index > size or size > tree.get_size():
                raise Refused(404, f"leaf {leaf_hash[:16]} is not in the log at size {size}")
            proof = tree.prove_inclusion(index, size)
        return {"index": index, "size": size, "proof": proof.serialize()}

    def consistency(self, first: int, second: int) -> dict[str, Any]:
        with db.read_tx(self.engine) as conn:
            tree = DbTree(conn)
            if not 0 < first <= second <= tree.get_size():
                raise Refused(404, f"no consistency proof from size {first} to {second}")
            proof = tree.prove_consistency(first, second)
        return {"first": first, "second": second, "proof": proof.serialize()}

    # ------------------------------------------------------------------------ pull, void
    def _run_dir(self, change_id: str, run_id: str) -> Path:
        target = (self.store / valid_name(change_id, "change id")
                  / valid_name(run_id, "run id")).resolve()
        if not target.is_relative_to(self.store.resolve()):
            raise Refused(404, "no such run")
        return target

    def _authorize(self, account: Account | None, action: str, run_id: str,
                   sites: frozenset[str]) -> None:
        why = None if account is None else site_refusal(
            self.settings, account.name, account.sites, action, run_id, sites)
        if why is not None:
            raise Refused(403, why, run_id=run_id)

    def run_info(self, ref: str, account: Account | None = None,
                 action: str = "read") -> dict[str, Any]:
        """The held run ``ref``; an ``account`` outside its sites is refused (403)."""
        column = db.runs.c.seal if is_seal(ref) else db.runs.c.run_id
        if not is_seal(ref):
            try:
                valid_name(ref, "run id")
            except BadInputError as exc:
                raise Refused(404, exc.message) from None
        with db.read_tx(self.engine) as conn:
            row = conn.execute(sa.select(db.runs).where(column == ref)).first()
            if row is None:
                raise Refused(404, f"no run {ref[:64]} is held")
            void = conn.execute(sa.select(db.voids.c.time, db.voids.c.signer)
                                .where(db.voids.c.run_id == row.run_id)).first()
        info = {k: row._mapping[k] for k in ("run_id", "change_id", "seal", "lines", "pushed",
                                             "pushed_by")}
        info["voided"] = None if void is None else {"time": void.time, "by": void.signer}
        sites = (decode_sites(row.sites) if row.sites is not None
                 else bundle_sites(self._run_dir(row.change_id, row.run_id)))
        self._authorize(account, action, row.run_id, sites)
        info["sites"] = sorted(sites)
        return info

    def pull(self, who: str, ref: str,
             account: Account | None = None) -> tuple[dict[str, Any], bytes]:
        info = self.run_info(ref, account, "pull")
        data = pack(self._run_dir(info["change_id"], info["run_id"]))
        self.audit(who, "pull", "ok", f"{len(data)} bytes", info["run_id"])
        return info, data

    def void(self, who: str, ref: str, envelope: bytes,
             account: Account | None = None) -> dict[str, Any]:
        """Void a held run by a signed document; the run stays, marked and logged (refusals
        raise :class:`Refused`; the HTTP layer audits them)."""
        info = self.run_info(ref, account, "void")
        envelope = envelope.rstrip(b"\n")
        doc = _open_void(envelope, load_trust(self.config.state_dir))
        if doc.payload.get("run_id") != info["run_id"] or doc.payload.get("seal") != info["seal"]:
            raise Refused(422, "the void document names another run or seal")
        with db.write_tx(self.engine) as conn:
            if conn.execute(sa.select(db.voids.c.run_id)
                            .where(db.voids.c.run_id == info["run_id"])).first():
                raise Refused(409, f"run {info['run_id']} is voided already")
            conn.execute(db.voids.insert().values(
                run_id=info["run_id"], seal=info["seal"], time=doc.payload["time"],
                signer=doc.key.name[:128], envelope=envelope))
            tree = DbTree(conn)
            index = tree.append_leaf(void_leaf(info["run_id"], info["seal"], envelope),
                                     info["run_id"], utc_now_text())
            self._checkpoint(conn, tree)
            self.audit(who, "void", "ok", f"signed by {doc.key.name}: "
                       f"{doc.payload.get('reason')}", info["run_id"], conn)
        return {"run_id": info["run_id"], "voided_by": doc.key.name, "log_index": index}

    def audit_rows(self, limit: int = 1000) -> list[dict[str, Any]]:
        with db.read_tx(self.engine) as conn:
            rows = conn.execute(sa.select(db.audit).order_by(db.audit.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]


def _open_void(envelope: bytes, trust: Any) -> Any:
    last: VqualError | None = None
    for role in VOID_ROLES:
        try:
            return open_signed_document(envelope, VOID_TYPE, trust, role, where="void")
        except VqualError as exc:
            last = exc
    assert last is not None
    raise Refused(422, f"the void document is not valid: {last.one_line()}")


def _records_digest(lines: list[bytes]) -> str:
    return hashlib.sha256(b"\n".join(lines) + b"\n").hexdigest()


def _atomic_write(target: Path, content: bytes) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
