"""Clone qualification by difference: the ``vqual clone`` run.

A clone of a qualified Master-VM needs only the reduced set of tests (the spec's tests whose
``scope`` includes ``clone``), and its fingerprint is compared with the master's (check type
``clone_fingerprint``). Before anything runs, creation included, the master bundle is checked
(:func:`qualification.baseline.master.load_master`, which says what a master must be). How
clones are made: :mod:`qualification.baseline.clones`.

Docs: docs/clones.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification import checks
from qualification.baseline.master import load_master
from qualification.errors import BadInputError
from qualification.execution.qualify import QualifyRequest, run_qualify
from qualification.spec.loader import load_spec
from qualification.spec.plan import MasterBaseline


def platform_tests(spec: Any) -> list[str]:
    """Ids of the spec's clone-scope tests observed through the platform (not the guest):
    what can run on a clone that was just created and has not booted."""
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
