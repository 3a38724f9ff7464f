"""Decommissioning with evidence (URS-DECOM-01): what must hold before a VM may be removed.

Checked when a decommissioning run (mode ``decommission``) is planned, for each target,
before anything changes; the first that fails refuses the run with the reason:

1. **No dependent**: no inventory host lists the target in ``vqual_depends_on``.
2. **Its evidence is complete and verifies**: every bundle in the evidence directory whose
   ``run.start`` names the target verifies (chain, signatures, manifest, sealed), and there is
   at least one (exit 1 for a bundle that does not verify: evidence invalid).
3. **Its backups are retained**, as observed in the backup store, never as an inventory flag:
   ``vqual_backup_store`` names a directory holding ``<target>/<backup file>`` with a
   ``<backup file>.sha256`` written when the backup was taken; a backup counts when the file
   is there and its SHA-256 is the recorded one; ``vqual_backup_policy: {min_backups: N}``
   (default 1) says how many must count.

With an evidence server configured (``vqual decommission --server``), each of those bundles
must also be held there, by its seal, and not voided (the server verifies a bundle when it is
pushed and holds only what verified); a bundle it does not hold refuses the run (push it
first), and so does a server that cannot be asked.

What was found (the bundles with their seals, the backups with their digests, the server
asked) goes into the run's ``run.start`` as its ``decommission`` block, so the evidence of
the removal cites it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from qualification.errors import BadInputError, EvidenceInvalidError
from qualification.evidence.reader import read_bundle
from qualification.evidence.verify import VALID, verify_bundle
from qualification.signing import TrustStore

DEPENDS_VAR = "vqual_depends_on"
STORE_VAR = "vqual_backup_store"
POLICY_VAR = "vqual_backup_policy"


class EvidenceServer(Protocol):
    """The evidence server as decommissioning asks it (``qualification.server.client.HeldRuns``:
    the layers above hand it in)."""

    url: str

    def held(self, seal: str) -> Mapping[str, Any] | None:
        """What the server says of the run sealed ``seal`` (``run_id``, ``seal``, ``voided``),
        or None when it holds none.

        Raises:
            PlatformError: the server cannot be reached; BadInputError: it refused the token.
        """
        ...


def held_on_server(target: str, bundles: Sequence[Mapping[str, Any]],
                   server: EvidenceServer) -> None:
    """Refuse unless ``server`` holds every bundle of ``bundles`` by its seal, not voided.

    Raises:
        BadInputError: a bundle is not held there (exit 2: push it first).
        EvidenceInvalidError: the server holds it voided, or under another seal (exit 1).
    """
    for bundle in bundles:
        seal = str(bundle["seal"])
        info = server.held(seal)
        what = f"decommission of {target} refused: its bundle {bundle['bundle']} (seal {seal[:16]})"
        if info is None:
            raise BadInputError(f"{what} is not held by the evidence server {server.url}; push "
                                "it first (vqual push)")
        if info.get("seal") != seal:
            raise EvidenceInvalidError(f"{what}: the evidence server {server.url} answers with "
                                       f"seal {str(info.get('seal'))[:16]}")
        if info.get("voided"):
            raise EvidenceInvalidError(f"{what} is voided on the evidence server {server.url}")


def dependents(target: str, hostvars: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The inventory hosts that declare they depend on ``target``."""
    found = []
    for host, values in sorted(hostvars.items()):
        declared = values.get(DEPENDS_VAR) or []
        if isinstance(declared, str):
            declared = [declared]
        if host != target and target in declared:
            found.append(host)
    return found


def _targets_of(bundle: Path) -> set[str]:
    try:
        start = read_bundle(bundle).run_start
    except Exception:  # noqa: BLE001 - an unreadable bundle is judged by verify below
        return {"?"}
    if start is None:
        return {"?"}
    return {str(t.get("name")) for t in start.data.get("targets") or [] if isinstance(t, Mapping)}


def bundles_of(target: str, evidence_dir: Path, trust: TrustStore) -> list[dict[str, Any]]:
    """``[{bundle, seal}]`` of every bundle naming ``target``, each verified.

    Raises:
        EvidenceInvalidError: one does not verify or did not finish (naming it and why).
        BadInputError: there is none.
    """
    found = []
    for records in sorted(Path(evidence_dir).glob("*/*/records.jsonl")):
        bundle = records.parent
        targets = _targets_of(bundle)
        if target not in targets and "?" not in targets:
            continue
        result = verify_bundle(bundle, trust)
        if result.status != VALID:
            why = result.problems[0] if result.problems else result.status
            raise EvidenceInvalidError(
                f"decommission of {target} refused: its evidence bundle does not verify "
                f"({result.status}): {why}", where=str(bundle))
        if target in targets:
            found.append({"bundle": str(bundle.resolve()), "seal": result.seal_digest})
    if not found:
        raise BadInputError(
            f"decommission of {target} refused: no qualification evidence of it in {evidence_dir}")
    return found


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def backups_of(target: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{file, sha256}]`` of the target's backups observed in its backup store.

    Raises:
        BadInputError: no store declared, or fewer verified backups than the policy requires
            (naming each backup that did not count and why).
    """
    store = values.get(STORE_VAR)
    if not isinstance(store, str) or not store:
        raise BadInputError(
            f"decommission of {target} refused: no backup store to observe its backups in "
            f"({STORE_VAR})")
    policy = values.get(POLICY_VAR) or {}
    need = policy.get("min_backups", 1) if isinstance(policy, Mapping) else 1
    if not isinstance(need, int) or isinstance(need, bool) or need < 1:
        raise BadInputError(f"{POLICY_VAR}.min_backups must be a positive integer", where=target)
    counted: list[dict[str, Any]] = []
    rejected: list[str] = []
    folder = Path(store) / target
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.endswith(".sha256") or not path.is_file():
            continue
        sidecar = path.with_name(path.name + ".sha256")
        recorded = sidecar.read_text().split()[0] if sidecar.is_file() and sidecar.read_text().split() else None
        actual = _sha256(path)
        if recorded is None:
            rejected.append(f"{path.name}: no recorded digest ({sidecar.name})")
        elif recorded != actual:
            rejected.append(f"{path.name}: sha256 {actual}, recorded {recorded}")
        else:
            counted.append({"file": str(path), "sha256": actual})
    if len(counted) < need:
        more = f" ({'; '.join(rejected)})" if rejected else ""
        raise BadInputError(
            f"decommission of {target} refused: {len(counted)} backup(s) observed retained in "
            f"{folder}, the policy requires {need}{more}")
    return counted


def decommission_block(
    targets: Sequence[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    evidence_dir: Path,
    trust: TrustStore,
    server: EvidenceServer | None = None,
) -> dict[str, Any]:
    """Check every target (see the module doc) and return ``run.start`` ``decommission``;
    with ``server``, each target's bundles must be held there.

    Raises:
        BadInputError: a dependent is declared, no evidence, backups not retained, a bundle
            the server does not hold (exit 2).
        EvidenceInvalidError: a bundle of a target does not verify, or is voided on the
            server (exit 1).
        PlatformError: the server cannot be asked (exit 4).
    """
    out: dict[str, Any] = {"evidence_dir": str(Path(evidence_dir).resolve()), "targets": {}}
    if server is not None:
        out["server"] = server.url
    for target in targets:
        depending = dependents(target, hostvars)
        if depending:
            raise BadInputError(
                f"decommission of {target} refused: {', '.join(depending)} depend(s) on it "
                f"({DEPENDS_VAR} in the inventory)")
        bundles = bundles_of(target, evidence_dir, trust)
        if server is not None:
            held_on_server(target, bundles, server)
        backups = backups_of(target, hostvars.get(target) or {})
        out["targets"][target] = {"bundles": bundles, "backups": backups}
    return out
