"""Clone qualification by difference: the master bundle a clone run relies on, and clones.

A clone of a qualified Master-VM needs only the reduced set of tests (the spec's tests whose
``scope`` includes ``clone``), and its fingerprint is compared with the master's (check type
``clone_fingerprint``). Everything a clone run relies on is checked here before anything
runs (:func:`load_master`): the master bundle must verify, its run must have passed, it must
carry an ``approved`` signature where the spec requires one, and it must hold the master's
fingerprint. The reference to it (seal digest, fingerprint digest) goes into the clone
run's ``run.start`` (``clone`` block).

Clones can be made from the master first: on libvirt a qcow2 overlay of each master disk
under a new name, UUID and MAC (the libvirt plug-in's ``create_clone``,
:mod:`qualification.platforms.libvirt.clones`); on vSphere a clone of the
template (``CloneVM_Task``, through the ``vm_clone`` module in ``playbooks/clone_qualify.yml``).

Exit codes of the refusals: a master bundle that does not verify (invalid or incomplete) is
evidence that cannot be trusted, exit 1; a master that is not approved where approval is
required, whose run did not pass, or that has no usable fingerprint is bad input, exit 2.
Docs: docs/clones.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification.baseline.fingerprint import Fingerprint
from qualification.errors import (
    BadInputError,
    EvidenceInvalidError,
)
from qualification.platforms.base import SAFE_VM_NAME
from qualification.signing import TrustStore
from qualification.spec.plan import MasterBaseline

#: Safe VM names for created clones (also a libvirt domain and file name).
CLONE_NAME = SAFE_VM_NAME


def _first(problems: Sequence[str]) -> str:
    if not problems:
        return "no reason given"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def approval_of(signatures: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The approval that stands on a verified bundle, and if none, why.

    The latest ``approved`` or ``rejected`` signature decides: a rejection after an
    approval withdraws it. Only signatures of a bundle that verified count (the verifier
    already checked the signer's role and separation of duties).

    Returns:
        ({name, keyid, identity, time, seal} or None, reason when None).
    """
    decisive = [s for s in signatures if s.get("meaning") in ("approved", "rejected")]
    if not decisive:
        return None, "it carries no 'approved' signature (vqual sign BUNDLE --meaning approved)"
    last = max(decisive, key=lambda s: int(s.get("seq", 0)))
    if last.get("meaning") == "rejected":
        return None, f"it was rejected by {last.get('name')} at {last.get('time')}"
    return (
        {
            "name": last.get("name"),
            "keyid": last.get("keyid"),
            "identity": last.get("identity"),
            "time": last.get("time"),
            "seal": last.get("seal"),
        },
        "",
    )


def select_fingerprint(
    fingerprints: Mapping[str, Fingerprint], subject: str | None, *, where: str
) -> Fingerprint:
    """The master's fingerprint: ``subject``'s, else the bundle's only VM fingerprint.

    Raises:
        BadInputError: none, not the subject asked for, or several VMs and no subject.
    """
    if not fingerprints:
        raise BadInputError(
            "the master bundle has no fingerprint record: qualify the master with a "
            "fingerprint test (specs/master-vm.yaml) first",
            where=where,
        )
    if subject is not None:
        found = fingerprints.get(subject)
        if found is None:
            raise BadInputError(
                f"the master bundle has no fingerprint of {subject!r} "
                f"(it has: {', '.join(sorted(fingerprints))})",
                where=where,
            )
        return found
    vms = sorted(name for name, fp in fingerprints.items() if fp.kind == "vm")
    if len(vms) == 1:
        return fingerprints[vms[0]]
    if not vms:
        raise BadInputError(
            f"the master bundle has no VM fingerprint (it has: {', '.join(sorted(fingerprints))})",
            where=where,
        )
    raise BadInputError(
        f"the master bundle has fingerprints of several VMs ({', '.join(vms)}): "
        "name one with clone.master.subject in the spec or --master-subject",
        where=where,
    )


def load_master(
    bundle: Path,
    *,
    state_dir: Path,
    require_approval: bool,
    subject: str | None = None,
    trust: TrustStore | None = None,
) -> MasterBaseline:
    """Check the master bundle a clone run relies on, and return its reference.

    Args:
        bundle: the master run's bundle directory.
        state_dir: the state directory whose trust store judges the bundle.
        require_approval: the bundle must carry a standing ``approved`` signature.
        subject: the master's inventory name in the bundle; None: its only VM fingerprint.
        trust: the trust store already loaded for the run; None: ``state_dir``'s is loaded.

    Raises:
        BadInputError: not a bundle directory; not approved where required; its run did not
            pass; no usable fingerprint (exit 2).
        EvidenceInvalidError: the bundle does not verify or is incomplete (exit 1).
        TrustError: no usable trust store.
    """
    from qualification.baseline import FINGERPRINT_KIND, fingerprints_from_records
    from qualification.evidence.reader import read_bundle
    from qualification.evidence.verify import INCOMPLETE, VALID, verify_bundle
    from qualification.review.signed import load_trust

    where = f"master bundle {bundle}"
    if not (bundle / "records.jsonl").is_file():
        raise BadInputError("not an evidence bundle (no records.jsonl)", where=where)
    result = verify_bundle(bundle, trust if trust is not None else load_trust(state_dir))
    if result.status == INCOMPLETE:
        raise EvidenceInvalidError(
            "the master run did not finish (no run.end): it cannot serve as a master", where=where
        )
    if result.status != VALID:
        raise EvidenceInvalidError(f"does not verify: {_first(result.problems)}", where=where)
    if result.verdict != "pass":
        raise BadInputError(
            f"the master run's verdict is {result.verdict!r}: only a master that passed "
            "can be cloned",
            where=where,
        )
    approval, why = approval_of(result.signatures)
    if require_approval and approval is None:
        raise BadInputError(
            f"is not approved, and the spec requires an approved master: {why}", where=where
        )
    read = read_bundle(bundle)
    fingerprints = fingerprints_from_records(
        [(r.line, r.data) for r in read.of_kind(FINGERPRINT_KIND)],
        where=f"{bundle}/records.jsonl",
    )
    chosen = select_fingerprint(fingerprints, subject, where=where)
    assert result.seal_digest is not None  # a valid bundle is sealed
    return MasterBaseline(
        bundle=str(bundle.resolve()),
        seal=result.seal_digest,
        change_id=str(result.change_id),
        run_id=str(result.run_id),
        subject=chosen.subject,
        fingerprint_digest=chosen.digest(),
        approval=approval,
    )


def clone_names(count: int, prefix: str) -> list[str]:
    """``count`` clone names ``<prefix>-1`` .. ``<prefix>-<count>``.

    Raises:
        BadInputError: a count below 1 or a name that is not a safe VM name.
    """
    if count < 1:
        raise BadInputError(f"--create needs a count of at least 1, not {count}")
    names = [f"{prefix}-{i}" for i in range(1, count + 1)]
    for name in names:
        if not CLONE_NAME.match(name):
            raise BadInputError(f"clone name {name!r} is not a safe VM name ({CLONE_NAME.pattern})")
    return names


# --------------------------------------------------------------------------- vqual clone


def platform_tests(spec: Any) -> list[str]:
    """Ids of the spec's clone-scope tests observed through the platform (not the guest):
    what can run on a clone that was just created and has not booted."""
    from qualification import checks

    ids = []
    for test in spec.tests:
        if not test.for_clones:
            continue
        if checks.get_check(test.check).request(test.params).probe != "host":
            ids.append(test.id)
    return ids


@dataclass
class CloneRequest:
    """What ``vqual clone`` was asked to do.

    Attributes:
        inventory: the Ansible inventory with the master and (for ``clones``) the clones.
        spec: the Master-VM spec whose ``clone``-scope tests are the reduced set.
        master_bundle: the master's bundle; None: the spec's ``clone.master.bundle``.
        clones: inventory hosts or groups to qualify (``--clones``), or None.
        create: names of clones to create first (``--create N``), or None.
        master_host: the master's inventory host, where clones are created from.
        master_subject: the master's subject in the bundle; None: its only VM fingerprint.
        base: the :class:`qualification.execution.qualify.QualifyRequest` fields shared
            with ``vqual qualify`` (change, key, evidence and state directories...).
    """

    inventory: Path
    spec: Path
    master_bundle: Path | None
    clones: list[str] | None
    create: list[str] | None
    master_host: str | None
    master_subject: str | None
    base: dict[str, Any]


def run_clone(request: CloneRequest) -> tuple[Any, MasterBaseline]:
    """Check the master, then create and qualify the clones; returns the run summary
    (``QualifySummary``) and the master it was compared with.

    Raises:
        BadInputError: bad arguments, a spec without clone-scope tests, or a master that
            is not approved where required, did not pass or has no fingerprint (exit 2).
        EvidenceInvalidError: the master bundle does not verify (exit 1).
    """
    from qualification.execution.qualify import QualifyRequest, run_qualify
    from qualification.spec.loader import load_spec

    if bool(request.clones) == bool(request.create):
        raise BadInputError(
            "give either --clones (existing clones) or --create N, not both or neither"
        )
    if request.create and not request.master_host:
        raise BadInputError("--create needs --master-host (the master's inventory host)")
    spec = load_spec(request.spec)
    section = spec.clone_section
    bundle = request.master_bundle or section.master.bundle
    if bundle is None:
        raise BadInputError(
            f"no master bundle: give --master-bundle, or clone.master.bundle in {request.spec}"
        )
    if not any(t.for_clones for t in spec.tests):
        raise BadInputError(
            f"{request.spec}: no test has scope clone (or applies to clones): nothing to qualify"
        )
    # Before anything runs, creation included: the master must be one a clone may rely on.
    master = load_master(
        bundle,
        state_dir=Path(request.base["state_dir"]),
        require_approval=section.master.require_approval,
        subject=request.master_subject or section.master.subject,
    )
    extravars: dict[str, Any] = dict(request.base.pop("extravars", {}) or {})
    extravars["vqual_master_bundle"] = master.bundle
    extravars["vqual_master_subject"] = master.subject
    tests = request.base.pop("tests", None)
    if request.create:
        extravars["vqual_create_clones"] = list(request.create)
        extravars["vqual_master_host"] = request.master_host
        extravars["vqual_clone_hosts"] = "vqual_created_clones"
        # a created clone is stopped: only what the platform observes can run on it
        platform_ids = platform_tests(spec)
        if not platform_ids:
            raise BadInputError(
                f"{request.spec}: no clone-scope test is observed through the platform, and "
                "created clones have not booted (qualify started clones with --clones)"
            )
        tests = [t for t in tests if t in platform_ids] if tests else platform_ids
    else:
        extravars["vqual_clone_hosts"] = ":".join(request.clones or [])
    summary = run_qualify(
        QualifyRequest(
            inventory=request.inventory,
            spec=request.spec,
            playbook="clone_qualify.yml",
            extravars=extravars,
            tests=tests,
            **request.base,
        )
    )
    return summary, master


def _main(argv: Sequence[str]) -> int:
    """``python -m qualification.baseline.clones create-<platform> ENDPOINT MASTER NAME`` and
    ``remove-<platform> ENDPOINT NAME`` (``create-libvirt URI MASTER NAME``): the platform
    plug-in's ``create_clone`` / ``remove_clone``, the steps of ``playbooks/clone_qualify.yml``
    that run on the controller, printing JSON; one line on stderr and the exit code on error."""
    import json
    import sys

    from qualification.errors import VqualError
    from qualification.platforms import registry

    usage = ("usage: python -m qualification.baseline.clones "
             "create-<platform> ENDPOINT MASTER NAME | remove-<platform> ENDPOINT NAME")
    try:
        action, _, platform = (argv[0] if argv else "").partition("-")
        if action == "create" and len(argv) == 4:
            if not CLONE_NAME.match(argv[3]):
                raise BadInputError(
                    f"clone name {argv[3]!r} is not a safe VM name ({CLONE_NAME.pattern})"
                )
            print(json.dumps(registry.get(platform).create_clone(argv[1], argv[2], argv[3])))
            return 0
        if action == "remove" and len(argv) == 3:
            registry.get(platform).remove_clone(argv[1], argv[2])
            print(json.dumps({"removed": argv[2]}))
            return 0
        raise BadInputError(usage)
    except VqualError as exc:
        print(f"vqual: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
