"""The run plan: which test runs on which target, with site values resolved.

Built once on the controller from the spec and the inventory, recorded in ``run.start``
(``targets``, ``planned``) and handed to Ansible as JSON, so playbooks and the evidence
callback work from one list and never re-derive it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from qualification.errors import BadInputError
from qualification.spec.expected import load_expected_values
from qualification.spec.inventory import SECRET_KEY, HostInfo, InventoryModel
from qualification.spec.model import Spec, TestDef
from qualification.spec.risk import RiskAssessment, assess_risk, select_tests

PLAN_VERSION = 1

#: Returned by :func:`lookup_expected` for a key the host does not have.
MISSING = object()

#: Check types that compare a clone with its master; on a clone the plan hands them the
#: master's fingerprint reference (``params.master``) and the allowed differences
#: (``params.allowed``) from the spec's ``clone`` section.
CLONE_COMPARE_CHECKS = frozenset({"clone_fingerprint"})


@dataclass(frozen=True)
class MasterBaseline:
    """The verified master bundle a clone run compares with.

    Made by :func:`qualification.baseline.master.load_master` after the bundle verified
    (and, where required, was approved); the plan only carries the reference.

    Attributes:
        bundle: the master bundle directory (absolute).
        seal: the master run's seal digest.
        change_id: the master run's change id.
        run_id: the master run's run id.
        subject: the fingerprint's subject (the master's inventory name).
        fingerprint_digest: digest of the master fingerprint (``Fingerprint.digest()``).
        approval: the approving signature {name, keyid, time, seal}, or None when the spec
            does not require one and there is none.
    """

    bundle: str
    seal: str
    change_id: str
    run_id: str
    subject: str
    fingerprint_digest: str
    approval: dict[str, Any] | None = field(default=None, hash=False)

    def reference(self) -> dict[str, str]:
        """What a comparison check needs to find and pin the master fingerprint."""
        return {
            "bundle": self.bundle,
            "seal": self.seal,
            "subject": self.subject,
            "digest": self.fingerprint_digest,
        }

    def record(self, allowed: Mapping[str, Any]) -> dict[str, Any]:
        """``run.start`` ``clone`` block: the master bundle, its seal and fingerprint digest."""
        return {
            "master_bundle": self.bundle,
            "master_seal": self.seal,
            "master_change_id": self.change_id,
            "master_run_id": self.run_id,
            "master_fingerprint": {"subject": self.subject, "digest": self.fingerprint_digest},
            "master_approval": copy.deepcopy(self.approval),
            "allowed": copy.deepcopy(dict(allowed)),
        }


@dataclass(frozen=True)
class PlannedTest:
    """One test on one target. ``expect`` is resolved: a ``value_from`` is replaced by the
    target's site value (the key stays as ``value_from``); ``same_across_hosts`` lists the
    ``hosts`` of the group that run the test."""

    test_id: str
    title: str
    protocol: str
    requirements: tuple[str, ...]
    target: str
    check: str
    params: dict[str, Any] = field(hash=False)
    expect: dict[str, Any] = field(hash=False)
    acceptance: str

    def to_json(self) -> dict[str, Any]:
        return {
            "test_id": self.test_id,
            "title": self.title,
            "protocol": self.protocol,
            "requirements": list(self.requirements),
            "target": self.target,
            "check": self.check,
            "params": copy.deepcopy(self.params),
            "expect": copy.deepcopy(self.expect),
            "acceptance": self.acceptance,
        }


@dataclass(frozen=True)
class TargetPlan:
    """A target with its kinds, its risk and why, and the tests it runs (spec order)."""

    name: str
    kinds: tuple[str, ...]
    risk: str
    risk_reason: str
    tests: list[PlannedTest] = field(hash=False)

    def record(self) -> dict[str, Any]:
        """``run.start`` ``targets`` entry: {name, kinds, risk, risk_reason}."""
        return {
            "name": self.name,
            "kinds": list(self.kinds),
            "risk": self.risk,
            "risk_reason": self.risk_reason,
        }


@dataclass(frozen=True)
class Plan:
    """What a run will do. ``spec`` is {name, version, digest}; ``inventory_digest`` is the
    digest of the inventory snapshot the plan was built from."""

    spec: dict[str, str] = field(hash=False)
    inventory_digest: str
    targets: list[TargetPlan] = field(hash=False)
    #: ``run.start`` ``clone`` block when clones are compared with a master, else None
    clone: dict[str, Any] | None = field(default=None, hash=False)

    def planned(self) -> list[dict[str, str]]:
        """``run.start`` ``planned`` field: [{test_id, target, protocol}], plan order."""
        return [
            {"test_id": test.test_id, "target": target.name, "protocol": test.protocol}
            for target in self.targets
            for test in target.tests
        ]

    def target(self, name: str) -> TargetPlan:
        """The plan for target ``name``.

        Raises:
            KeyError: the target is not in the plan.
        """
        for target in self.targets:
            if target.name == name:
                return target
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON data (the form handed to Ansible)."""
        out: dict[str, Any] = {
            "v": PLAN_VERSION,
            "spec": dict(self.spec),
            "inventory_digest": self.inventory_digest,
            "targets": [
                {**target.record(), "tests": [test.to_json() for test in target.tests]}
                for target in self.targets
            ],
        }
        if self.clone is not None:
            out["clone"] = copy.deepcopy(self.clone)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        """Read a plan written by :meth:`to_json`.

        Raises:
            BadInputError: not a plan of this version, or a field is missing or mistyped.
        """
        try:
            if data["v"] != PLAN_VERSION:
                raise BadInputError(f"plan version {data['v']!r} is not {PLAN_VERSION}")
            targets = [
                TargetPlan(
                    name=plain_text(target["name"]),
                    kinds=tuple(plain_text(kind) for kind in target["kinds"]),
                    risk=plain_text(target["risk"]),
                    risk_reason=plain_text(target["risk_reason"]),
                    tests=[
                        PlannedTest(
                            test_id=plain_text(test["test_id"]),
                            title=plain_text(test["title"]),
                            protocol=plain_text(test["protocol"]),
                            requirements=tuple(plain_text(req) for req in test["requirements"]),
                            target=plain_text(test["target"]),
                            check=plain_text(test["check"]),
                            params=plain_mapping(test["params"]),
                            expect=plain_mapping(test["expect"]),
                            acceptance=plain_text(test["acceptance"]),
                        )
                        for test in target["tests"]
                    ],
                )
                for target in data["targets"]
            ]
            spec = {key: plain_text(data["spec"][key]) for key in ("name", "version", "digest")}
            clone = plain_mapping(data["clone"]) if data.get("clone") is not None else None
            return cls(
                spec=spec,
                inventory_digest=plain_text(data["inventory_digest"]),
                targets=targets,
                clone=clone,
            )
        except (KeyError, TypeError) as exc:
            raise BadInputError(f"malformed plan: missing or mistyped field {exc}") from None


def plain_text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return str(value)


def plain_json(value: Any) -> Any:
    """A plain-JSON copy: a plan that went through Ansible comes back as subclasses of the
    plain types (tagged values), which records must not carry."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {plain_text(key): plain_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(item) for item in value]
    raise TypeError(f"{value!r} is not JSON data")


def plain_mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{value!r} is not a mapping")
    plain: dict[str, Any] = plain_json(value)
    return plain


def lookup_expected(expected: Mapping[str, Any], key: str) -> Any:
    """The site value ``key`` in ``vqual_expected``: the key itself, else a dotted path into
    nested mappings (``os.version_id``). Returns :data:`MISSING` when absent."""
    if key in expected:
        return expected[key]
    node: Any = expected
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING
        node = node[part]
    return node


def _resolve(
    test: TestDef,
    host: HostInfo,
    members: Sequence[str],
    shared: Mapping[str, Any],
    capture: bool,
) -> dict[str, Any]:
    expect = test.expect.to_json()
    key = test.expect.value_from
    if key is not None and capture:
        # vqual baseline capture: observe only; the value is what the capture writes
        expect["capture"] = True
    elif key is not None:

        def bad(message: str) -> BadInputError:
            return BadInputError(
                f"test {test.id} on host {host.name!r}: vqual_expected key {key!r} {message}"
            )

        if SECRET_KEY.search(key):
            raise bad("looks secret; secrets never reach evidence, so it cannot be an expectation")
        value = lookup_expected(host.expected, key)
        if value is MISSING:
            value = lookup_expected(shared, key)
        if value is MISSING:
            raise bad("is not set for this host" + (
                " nor in the spec's expected values" if shared else ""))
        op = test.expect.op
        if op == "range":
            if not isinstance(value, Mapping) or not ({"min", "max"} & set(value)):
                raise bad(f"must be a mapping with min and/or max for op 'range', not {value!r}")
            for bound in ("min", "max"):
                if bound in value:
                    if isinstance(value[bound], bool) or not isinstance(value[bound], (int, float)):
                        raise bad(f"{bound} must be a number, not {value[bound]!r}")
                    expect[bound] = value[bound]
            if "min" in expect and "max" in expect and expect["min"] > expect["max"]:
                raise bad(f"min {expect['min']} is greater than max {expect['max']}")
        else:
            if op == "in" and not isinstance(value, list):
                raise bad(f"must be a list for op 'in', not {value!r}")
            if op in ("regex", "version") and not isinstance(value, str):
                raise bad(f"must be a string for op {op!r}, not {value!r}")
            if op == "regex":
                try:
                    re.compile(value)
                except re.error as exc:
                    raise bad(f"is not a valid regular expression: {exc}") from None
            if op == "version" and test.expect.scheme == "pep440":
                try:
                    Version(value)
                except InvalidVersion:
                    raise bad(f"{value!r} is not a PEP 440 version") from None
            expect["value"] = copy.deepcopy(value)
    if test.expect.op == "same_across_hosts":
        expect["hosts"] = list(members)
    return expect


def _wanted(spec: Spec, test_ids: Sequence[str] | None) -> set[str] | None:
    """The test ids to run (None: all), each checked to be in the spec."""
    if test_ids is None:
        return None
    known = set(spec.test_ids)
    wanted: set[str] = set()
    for test_id in test_ids:
        # A testinfra spec test's id selects every test function it was expanded into.
        found = {k for k in known if k == test_id or k.startswith(f"{test_id}::")}
        if not found:
            raise BadInputError(f"unknown test id {test_id!r}: not in spec {spec.name!r}")
        wanted |= found
    return wanted


def _select(
    spec: Spec, inventory: InventoryModel, names: Sequence[str], wanted: set[str] | None
) -> tuple[dict[str, tuple[TestDef, ...]], dict[str, RiskAssessment]]:
    """Each target's tests (by its kinds and risk) and its risk assessment."""
    selected: dict[str, tuple[TestDef, ...]] = {}
    risks: dict[str, RiskAssessment] = {}
    for name in names:
        info = inventory.host(name)
        risks[name] = assess_risk(inventory, name)
        selected[name] = tuple(
            test
            for test in select_tests(spec, info.kinds, risks[name].level)
            if wanted is None or test.id in wanted
        )
    return selected, risks


def _planned_test(
    spec: Spec,
    inventory: InventoryModel,
    name: str,
    test: TestDef,
    selected: Mapping[str, tuple[TestDef, ...]],
    master: MasterBaseline | None,
    shared: Mapping[str, Any],
    capture: bool,
) -> PlannedTest:
    """One selected test on target ``name``, with its site values resolved (the host's
    ``vqual_expected``, else ``shared``: the spec's expected values)."""
    info = inventory.host(name)
    members: list[str] = []
    if test.expect.op == "same_across_hosts":
        if not info.cluster:
            raise BadInputError(
                f"test {test.id} on host {name!r}: compares across the cluster, "
                "but the host has no vqual_cluster"
            )
        members = [
            member
            for member in inventory.cluster_members(info.cluster)
            if member in selected and test in selected[member]
        ]
    params = copy.deepcopy(test.params)
    if "clone" in info.kinds and test.check in CLONE_COMPARE_CHECKS:
        if master is None:
            raise BadInputError(
                f"test {test.id} on clone {name!r} compares with the master, but no "
                "master bundle is given (vqual clone --master-bundle, or "
                "clone.master.bundle in the spec)"
            )
        params["master"] = master.reference()
        params["allowed"] = spec.clone_section.allowed_json()
    return PlannedTest(
        test_id=test.id,
        title=test.title,
        protocol=test.protocol,
        requirements=test.requirements,
        target=name,
        check=test.check,
        params=params,
        expect=_resolve(test, info, members, shared, capture),
        acceptance=test.acceptance,
    )


def build_plan(
    spec: Spec,
    inventory: InventoryModel,
    *,
    hosts: Sequence[str] | None = None,
    test_ids: Sequence[str] | None = None,
    master: MasterBaseline | None = None,
    capture: bool = False,
) -> Plan:
    """Select the tests every target must run and resolve their site values.

    A clone (kind ``clone``) gets the reduced set (:meth:`TestDef.applies`); its tests of a
    :data:`CLONE_COMPARE_CHECKS` type get the master reference and the spec's allowed
    differences as parameters.

    Args:
        spec: the loaded protocol.
        inventory: the inventory model.
        hosts: limit the run to these hosts (all inventory hosts when None); targets are
            sorted by name either way.
        test_ids: limit the run to these tests (all tests when None); each must be in the spec.
        master: the verified master bundle clones are compared with; required when a clone
            runs a comparison test.
        capture: a baseline capture: ``value_from`` tests observe only (``expect.capture``).

    Raises:
        BadInputError: an unknown host or test id; a ``value_from`` key that a target running
            the test does not have (or that is malformed for the op); a ``same_across_hosts``
            test on a host with no ``vqual_cluster``. The message names test, host and key.
    """
    names = sorted(inventory.hosts if hosts is None else set(hosts))
    for name in names:
        inventory.host(name)  # raises for an unknown host
    selected, risks = _select(spec, inventory, names, _wanted(spec, test_ids))
    found = spec.expected_file()
    shared = load_expected_values(found).values if found is not None else {}
    targets = [
        TargetPlan(
            name=name,
            kinds=inventory.host(name).kinds,
            risk=risks[name].level,
            risk_reason=risks[name].reason,
            tests=[
                _planned_test(spec, inventory, name, test, selected, master, shared, capture)
                for test in selected[name]
            ],
        )
        for name in names
    ]
    clone_targets = [target.name for target in targets if "clone" in target.kinds]
    return Plan(
        spec={"name": spec.name, "version": spec.version, "digest": spec.digest},
        inventory_digest=inventory.digest,
        targets=targets,
        clone=(
            master.record(spec.clone_section.allowed_json())
            if master is not None and clone_targets
            else None
        ),
    )
