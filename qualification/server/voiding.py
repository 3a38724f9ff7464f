"""A signed void of a pushed run: the document an approver or trust-admin signs.

A wrong push is never deleted: the run stays held, and this document (a DSSE envelope of
payload type :data:`~qualification.server.leaves.VOID_TYPE`) marks it void; the server checks
it like every signed document and logs it.
"""

from __future__ import annotations

from typing import Any

from qualification.errors import TrustError
from qualification.review.documents import check_signer, sign_document, signer_fields
from qualification.server.leaves import VOID_TYPE
from qualification.signing import Signer, TrustStore
from qualification.timeutil import utc_now_text

VOID_ROLES = ("approver", "trust-admin")


def void_document(signer: Signer, trust: TrustStore, run: dict[str, Any], reason: str) -> bytes:
    """The signed void of ``run`` (the server's run info: ``run_id``, ``seal``).

    Raises:
        TrustError: the signer holds neither the approver nor the trust-admin role.
    """
    if not reason.strip():
        raise TrustError("a void needs a reason")
    key = trust.get(signer.keyid)
    role = next((r for r in VOID_ROLES if key is not None and r in key.roles), VOID_ROLES[0])
    key = check_signer(trust, signer.keyid, role)
    payload = signer_fields(key, utc_now_text(), None)
    payload.update({"run_id": run["run_id"], "seal": run["seal"], "reason": reason.strip()})
    return sign_document(signer, VOID_TYPE, payload)
