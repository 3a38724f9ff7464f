"""Clone qualification by difference: ``vqual clone``, and making clones.

A clone of a qualified Master-VM needs only the reduced set of tests (the spec's tests whose
``scope`` includes ``clone``), and its fingerprint is compared with the master's (check type
``clone_fingerprint``). Before anything runs, creation included, the master bundle is checked
(:func:`qualification.baseline.master.load_master`, which says what a master must be).

Clones can be made from the master first: on libvirt a qcow2 overlay of each master disk
under a new name, UUID and MAC (the libvirt plug-in's ``create_clone``,
:mod:`qualification.platforms.libvirt.clones`); on vSphere a clone of the
template (``CloneVM_Task``, through the ``vm_clone`` module in ``playbooks/clone_qualify.yml``).

Docs: docs/clones.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification import checks
from qualification.baseline.master import load_master
from qualification.errors import BadInputError, VqualError
from qualification.execution.qualify import QualifyRequest, run_qualify
from qualification.platforms import registry
from qualification.platforms.base import SAFE_VM_NAME
from qualification.spec.loader import load_spec
from qualification.spec.plan import MasterBaseline

#: Safe VM names for created clones (also a libvirt domain and file name).
CLONE_NAME = SAFE_VM_NAME


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


def _main(argv: Sequence[str]) -> int:
    """``python -m qualification.baseline.clones create-<platform> ENDPOINT MASTER NAME`` and
    ``remove-<platform> ENDPOINT NAME`` (``create-libvirt URI MASTER NAME``): the platform
    plug-in's ``create_clone`` / ``remove_clone``, the steps of ``playbooks/clone_qualify.yml``
    that run on the controller, printing JSON; one line on stderr and the exit code on error."""
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
    sys.exit(_main(sys.argv[1:]))
