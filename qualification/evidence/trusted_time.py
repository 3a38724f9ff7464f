"""Trusted time as records (format v2, docs/formats.md "Trusted time").

Writing: :func:`stamp_record` asks the trust store's TSA for an RFC 3161 token over the
SHA-256 of a line as written (without its newline) and gives the ``timestamp`` record's data;
a TSA that gives no token yields a record that says why (one warning; the run is still
sealed, with "no trusted time"). :func:`stamp_file` does the same for a document, stored
beside it (``<name>.tsr``: trust-store versions, protocol approvals, waivers); there a TSA that
gives no token stops the signing, since a document without its token would not count.

Verifying: :func:`check_bundle` judges the records from ``run.end`` on, once the whole chain
is read: each ``timestamp`` record's token covers the previous line's digest, chains to the
store's TSA roots with the timeStamping usage, and its ``genTime`` lies in the stamped
record's window; a ``run.end`` or ``signature`` written while the store named a TSA without
a ``timestamp`` after it is invalid (dropped).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from qualification.errors import EvidenceInvalidError, VqualError
from qualification.evidence.kinds import RUN_END, SIGNATURE, TIMESTAMP
from qualification.evidence.kinds.timestamp import TimestampData
from qualification.evidence.records import format_time, parse_time
from qualification.evidence.result import VerificationResult
from qualification.signing.timestamping import (
    DEFAULT_TIMEOUT,
    TimestampError,
    TimestampInvalid,
    request_token,
    verify_token,
)
from qualification.signing.trust import TrustStore
from qualification.signing.trusted_tsa import TsaEntry

log = logging.getLogger(__name__)

#: Clocks of the controller and the TSA may differ by this much (both NTP-synchronised);
#: a token's genTime may lie this far before the stamped record's time.
SKEW = timedelta(seconds=2)
#: A token is asked for at once after its record is written: genTime may lie at most this
#: far after the stamped record's time (the request's timeout is far shorter).
MAX_LAG = timedelta(seconds=60)
#: Format versions whose bundles carry timestamp records.
STAMPED_VERSIONS = frozenset({2})
#: Kinds a timestamp record follows.
STAMPED_KINDS = (RUN_END, SIGNATURE)
#: What is said where a bundle has no token for its seal.
NO_TRUSTED_TIME = "no trusted time"

_Line = tuple[str | None, str | None, dict[str, Any] | None]


# ---------------------------------------------------------------- writing


def stamp_record(
    tsa: TsaEntry, digest: bytes, seq: int, *, timeout: float = DEFAULT_TIMEOUT
) -> TimestampData:
    """The ``timestamp`` record's data for the line of seq ``seq`` whose SHA-256 (of its
    bytes as written, without the newline) is ``digest``."""
    try:
        token = request_token(tsa.url, digest, timeout=timeout)
    except VqualError as exc:
        reason = exc.one_line()
        log.warning("%s: TSA %s gave no token for seq %d: %s", NO_TRUSTED_TIME, tsa.name, seq,
                    reason)
        return {"stamps": seq, "digest": digest.hex(), "tsa": tsa.name, "token": None,
                "gen_time": None, "error": reason}
    return {
        "stamps": seq,
        "digest": digest.hex(),
        "tsa": tsa.name,
        "token": base64.b64encode(token.der).decode("ascii"),
        "gen_time": format_time(token.gen_time),
        "error": None,
    }


def token_path(document: Path) -> Path:
    """Where the token of a stored document is kept: beside it, ``<name>.tsr``."""
    return document.with_name(document.name + ".tsr")


def stamp_file(trust: TrustStore | None, document: Path, *, undo: Sequence[Path] = ()) -> Path | None:
    """Store a token over ``document``'s bytes beside it, when the store names a TSA.

    One call at each site that stores a signed document (trust-store versions, approvals,
    waivers), so none can be backdated. Without a TSA nothing is written. A document the TSA
    gives no token for would not count later, so it is not kept: ``document`` and ``undo``
    (the files written with it) are removed and the error says so.

    Raises:
        TimestampError: the TSA is unreachable or refuses (exit 4); nothing is stored.
    """
    if trust is None or trust.tsa is None:
        return None
    try:
        token = request_token(trust.tsa.url, hashlib.sha256(document.read_bytes()).digest())
    except VqualError as exc:
        for path in (document, *undo):
            path.unlink(missing_ok=True)
        raise TimestampError(
            f"{document.name} not stored: TSA {trust.tsa.name} gave no token "
            f"({exc.one_line()}); {NO_TRUSTED_TIME} for it would let it be backdated"
        ) from None
    out = token_path(document)
    out.write_bytes(token.der)
    return out


def check_file(
    trust: TrustStore,
    document: Path,
    signed_at: object,
    *,
    error: type[VqualError] = EvidenceInvalidError,
) -> None:
    """Refuse ``document`` unless its token holds, where one is needed.

    A document signed (``signed_at``: its payload's record-form time) while the store named a
    TSA needs its ``.tsr``, over the document's bytes as stored, from that TSA, with a
    genTime in the window after ``signed_at``.

    Raises:
        ``error`` (EvidenceInvalidError by default): no token where one is needed, or one that
            does not hold; the message says which.
    """
    tsa, when = trust.tsa, parse_time(signed_at)
    if tsa is None or when is None:
        return
    tsr = token_path(document)
    if not tsr.is_file():
        if tsa.named_at(when):
            raise error(f"no time-stamp token {tsr.name} from TSA {tsa.name}", where=document.name)
        return
    try:
        verify_token(tsr.read_bytes(), hashlib.sha256(document.read_bytes()).digest(),
                     tsa.roots(), not_before=when - SKEW, not_after=when + MAX_LAG)
    except VqualError as exc:
        raise error(f"{tsr.name}: {exc.message}", where=document.name) from None


# ---------------------------------------------------------------- verifying


def check_bundle(
    res: VerificationResult,
    trust: TrustStore,
    lines: Sequence[_Line],
    digests: Sequence[str],
    version: int | None,
) -> None:
    """Judge trusted time from the first ``run.end`` on; record what it proves in ``res``."""
    recs = [rec for _, _, rec in lines]
    end = next((i for i, r in enumerate(recs) if r is not None and r["kind"] == RUN_END), None)
    if end is None:
        res.no_trusted_time = "the run is not sealed"
        return
    judge = _Judge(res, trust, version)
    for i in range(end, len(recs)):
        rec = recs[i]
        if rec is None:
            continue
        if rec["kind"] == TIMESTAMP:
            judge.token(i, rec, recs[i - 1], digests[i - 1])
        elif rec["kind"] in STAMPED_KINDS:
            nxt = recs[i + 1] if i + 1 < len(recs) else None
            if nxt is None or nxt["kind"] != TIMESTAMP:
                judge.unstamped(i, rec)
    if res.no_trusted_time is None and not any(
        t["kind"] == RUN_END for t in res.trusted_time
    ):
        res.no_trusted_time = "the seal has no token"


def _where(i: int, rec: Mapping[str, Any]) -> str:
    return f"records.jsonl line {i + 1} (seq {rec['seq']})"


class _Judge:
    def __init__(self, res: VerificationResult, trust: TrustStore, version: int | None) -> None:
        self.res = res
        self.tsa = trust.tsa
        self.version = version
        self._roots: list[x509.Certificate] | None = None

    def roots(self) -> list[x509.Certificate]:
        if self._roots is None:
            assert self.tsa is not None
            self._roots = self.tsa.roots()
        return self._roots

    def unstamped(self, i: int, rec: Mapping[str, Any]) -> None:
        """A run.end or signature with no timestamp record after it."""
        when = parse_time(rec["time"])
        tsa = self.tsa
        if (
            tsa is not None
            and self.version in STAMPED_VERSIONS
            and when is not None
            and tsa.named_at(when)
        ):
            self.res.problems.append(
                f"{_where(i, rec)}: {rec['kind']} has no timestamp record after it, although "
                f"the trust store names TSA {tsa.name} since {tsa.to_json()['valid_from']} "
                "(dropped?)"
            )
        elif rec["kind"] == RUN_END:
            self.res.no_trusted_time = (
                "format v1 has no timestamp records" if self.version not in STAMPED_VERSIONS
                else "the trust store named no TSA when the run was sealed"
            )

    def token(
        self, i: int, rec: Mapping[str, Any], prev: Mapping[str, Any] | None, digest: str
    ) -> None:
        where = _where(i, rec)
        problems = self.res.problems
        data = rec["data"]
        if self.version not in STAMPED_VERSIONS:
            problems.append(f"{where}: timestamp records are not part of format v{self.version}")
            return
        if prev is None or prev["kind"] not in STAMPED_KINDS:
            problems.append(f"{where}: timestamp follows no run.end or signature")
            return
        if rec["actor"] != prev["actor"]:
            problems.append(f"{where}: timestamp is signed by another key than seq {prev['seq']}")
        if not data.get("token"):
            if prev["kind"] == RUN_END:
                self.res.no_trusted_time = f"TSA {data.get('tsa')} gave no token: {data.get('error')}"
            self.res.warnings.append(
                f"{where}: {NO_TRUSTED_TIME} for seq {prev['seq']} ({prev['kind']}): TSA "
                f"{data.get('tsa')} gave no token ({data.get('error')})"
            )
            return
        reason = self._token_problem(rec, prev, digest)
        if reason is not None:
            problems.append(f"{where}: token for seq {prev['seq']} ({prev['kind']}): {reason}")

    def _token_problem(
        self, rec: Mapping[str, Any], prev: Mapping[str, Any], digest: str
    ) -> str | None:
        tsa, data = self.tsa, rec["data"]
        if tsa is None:
            return "the trust store names no TSA to check it with"
        stamped, written = parse_time(prev["time"]), parse_time(rec["time"])
        if stamped is None or written is None:
            return "record times are malformed"
        try:
            der = base64.b64decode(str(data["token"]), validate=True)
            verified = verify_token(
                der, bytes.fromhex(digest), self.roots(),
                not_before=stamped - SKEW,
                not_after=max(stamped - SKEW, min(stamped + MAX_LAG, written + SKEW)),
            )
        except (binascii.Error, ValueError):
            return "token is not base64"
        except TimestampInvalid as exc:
            return exc.message
        except VqualError as exc:
            return exc.one_line()
        if tsa.policy is not None and verified.policy != tsa.policy:
            return f"token policy {verified.policy} is not the store's {tsa.policy}"
        if data.get("gen_time") != format_time(verified.time):
            return f"gen_time {data.get('gen_time')} is not the token's {format_time(verified.time)}"
        self.res.trusted_time.append(
            {"seq": prev["seq"], "kind": prev["kind"], "tsa": data.get("tsa"),
             "subject": verified.tsa_subject, "time": format_time(verified.time)}
        )
        return None


def summary(res: VerificationResult) -> str:
    """One line for people: what the seal's token proves, or that there is none."""
    seal = next((t for t in res.trusted_time if t["kind"] == RUN_END), None)
    if seal is None:
        return f"{NO_TRUSTED_TIME} ({res.no_trusted_time or 'the seal has no token'})"
    signed = sum(1 for t in res.trusted_time if t["kind"] == SIGNATURE)
    return (f"sealed by {seal['time']} per TSA {seal['tsa']} (RFC 3161); "
            f"{signed} of {len(res.signatures)} signatures time-stamped")
