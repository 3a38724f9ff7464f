"""Which trust store a command judges with: pinned to a trust root, or legacy when asked.

``verify``, ``sign``, ``qualify`` and ``patch`` judge signatures with a trust store that a
pinned root vouches for (:func:`qualification.review.trust_history.rooted_store`). Without a
pin, or with an unsigned store, they refuse, unless the user asks for legacy trust
explicitly (``--legacy-trust`` or ``VQUAL_LEGACY_TRUST=1``): then the state directory's store
is used as it is, and every output says "legacy: no trust root". Nothing in ``config.yaml``
relaxes this; ``require_signed_trust`` only tightens the legacy path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification.config import load_config
from qualification.errors import BadInputError, EvidenceInvalidError, TrustError
from qualification.review.trust_history import rooted_store, trusted_store
from qualification.signing import TrustStore
from qualification.signing.trust_root import (
    PIN_ENV,
    SYSTEM_PIN,
    TrustRoot,
    TrustTimeline,
    find_pin,
)
from qualification.state import trust_path

#: Setting this to ``1`` asks for legacy trust, like ``--legacy-trust`` (for scripts).
LEGACY_ENV = "VQUAL_LEGACY_TRUST"
LEGACY_TEXT = "legacy: no trust root"


@dataclass(frozen=True)
class TrustChoice:
    """The trust store a command judges with and what vouches for it."""

    store: TrustStore
    version: int | None
    root: TrustRoot | None = None

    @property
    def legacy(self) -> bool:
        return self.root is None

    @property
    def root_keyid(self) -> str | None:
        return self.store.root_keyid if isinstance(self.store, TrustTimeline) else None

    def describe(self) -> str:
        """One line every output carries: the root used, or that there is none."""
        if self.root is None or self.root_keyid is None:
            return LEGACY_TEXT
        return (f"trust root: {self.root_keyid[:16]} from {self.root.source}, "
                f"trust version {self.version}")

    def citation(self) -> dict[str, Any] | None:
        """What ``run.start`` records as ``trust_root`` (None: legacy)."""
        if self.root_keyid is None:
            return None
        return {"keyid": self.root_keyid, "version": self.version}


def legacy_requested(flag: bool, environ: Mapping[str, str] | None = None) -> bool:
    """``--legacy-trust`` given, or :data:`LEGACY_ENV` set to ``1``."""
    env = os.environ if environ is None else environ
    return flag or env.get(LEGACY_ENV, "") == "1"


def choose_trust(state_dir: Path, *, trust_root: Path | None = None,
                 legacy: bool = False) -> TrustChoice:
    """The trust store to judge with (see the module's docstring).

    Raises:
        BadInputError: no trust store, no pin (and legacy not asked for), or a pin refused.
        TrustError: the store is unsigned, broken, or not vouched for by the pinned root.
    """
    path = trust_path(state_dir)
    if not path.exists():
        raise BadInputError(f"no trust store at {path}; signatures are judged against it")
    if legacy_requested(legacy):
        # As before pinning; config.yaml may still tighten it (require_signed_trust).
        config = load_config(state_dir)
        store, version = trusted_store(state_dir, require_signed=config.require_signed_trust)
        return TrustChoice(store, version)
    root = find_pin(state_dir, trust_root)
    if root is None:
        raise BadInputError(
            f"no trust root pinned: give --trust-root FILE, set {PIN_ENV} or install "
            f"{SYSTEM_PIN}; to judge with an unpinned store ask for --legacy-trust"
        )
    timeline = rooted_store(state_dir, root)
    return TrustChoice(timeline, timeline.version, root)


def judged_trust(state_dir: Path, *, trust_root: Path | None = None,
                 legacy: bool = False) -> TrustChoice:
    """The one judgement every reader of evidence makes (``verify``, ``report``, ``export``,
    ``deviation list``, ``drift --baseline``, ``audit``): :func:`choose_trust`, where a store
    the pinned root does not vouch for (tampered, re-signed by another key, an unsigned
    change) makes what it would vouch for untrusted: invalid, exit 1, with the reason.

    Raises:
        BadInputError: no trust store, no pin and no legacy trust asked for, a pin refused.
        EvidenceInvalidError: the pinned root does not vouch for the trust store.
    """
    try:
        return choose_trust(state_dir, trust_root=trust_root, legacy=legacy)
    except TrustError as exc:
        raise EvidenceInvalidError(f"trust store refused: {exc.one_line()}") from None


def approvable(choice: TrustChoice) -> None:
    """Refuse a new approval or signature judged without a trust root.

    Raises:
        TrustError: ``choice`` is legacy.
    """
    if choice.legacy:
        raise TrustError(
            "legacy trust (no trust root) cannot be used to sign or approve: pin a trust "
            "root (--trust-root, VQUAL_TRUST_ROOT) over a signed trust store"
        )
