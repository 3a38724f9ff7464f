"""The loaded spec (protocol): frozen dataclasses built by :func:`qualification.spec.load_spec`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.platforms import registry
from qualification.reports.matrix import Requirement

API_VERSION = "vqual/v1"
PROTOCOLS = ("IQ", "OQ", "PQ")

#: Risk levels from lowest to highest; the order matters for inheritance (highest wins).
RISK_LEVELS = ("low", "medium", "high")



def target_kinds() -> tuple[str, ...]:
    """Kinds of target a test can apply to (``applies_to``) and a host can be
    (``vqual_target_kinds``): a Linux host, each registered platform's kinds, the VM roles."""
    return registry.target_kinds()


#: Roles a test can be run in (``scope``): on the qualified type (the Master-VM, and every
#: non-VM target), or on a clone, as part of the reduced, difference-based set.
SCOPES = ("master", "clone")
DEFAULT_SCOPE = ("master",)

#: Identity fields of a VM: expected to differ between a master and each clone.
IDENTITY_FIELDS = ("name", "uuid", "macs", "hostname", "machine_id", "addresses", "ssh_host_keys")

#: Sizing values a clone may override within an allowed range.
SIZING_FIELDS = ("vcpus", "memory_mib")

#: Expectation operators and, for each, the fields it uses besides ``op``.
EXPECT_OPS: dict[str, frozenset[str]] = {
    "equals": frozenset({"value", "value_from"}),
    "in": frozenset({"value", "value_from"}),
    "regex": frozenset({"value", "value_from"}),
    "contains": frozenset({"value", "value_from"}),
    "absent": frozenset(),
    "range": frozenset({"min", "max", "value_from"}),
    "version": frozenset({"value", "value_from", "cmp", "scheme"}),
    "same_across_hosts": frozenset({"group"}),
}

#: Operators that compare with a value (given literally or with ``value_from``).
VALUE_OPS = frozenset({"equals", "in", "regex", "contains", "version"})


@dataclass(frozen=True)
class Expectation:
    """A test's acceptance criterion in machine form.

    Attributes:
        op: the operator, one of :data:`EXPECT_OPS`.
        value: the literal value to compare with (ops in :data:`VALUE_OPS`); ``None`` when
            ``value_from`` is used or the op takes no value.
        value_from: key in the target's ``vqual_expected`` that supplies the value at plan
            time (for ``range``: a mapping with ``min`` and/or ``max``).
        min: lower bound of ``range`` (inclusive), or None.
        max: upper bound of ``range`` (inclusive), or None.
        cmp: comparison of ``version``: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``.
        scheme: version ordering of ``version``: ``pep440``, ``debian`` or ``rpm``.
        group: grouping of ``same_across_hosts`` (``cluster``).
    """

    op: str
    value: Any = field(default=None, hash=False)
    value_from: str | None = None
    min: float | int | None = None
    max: float | int | None = None
    cmp: str | None = None
    scheme: str | None = None
    group: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The expectation as written (unresolved): only the fields its op uses."""
        out: dict[str, Any] = {"op": self.op}
        if self.value_from is not None:
            out["value_from"] = self.value_from
        elif self.op in VALUE_OPS:
            out["value"] = self.value
        for name in ("min", "max", "cmp", "scheme", "group"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class TestDef:
    """One test of the protocol, as written in the spec. ``line`` is where it starts."""

    __test__ = False  # not a pytest test class, despite the name

    id: str
    title: str
    protocol: str
    requirements: tuple[str, ...]
    applies_to: tuple[str, ...]
    risk: tuple[str, ...]
    check: str
    params: dict[str, Any] = field(hash=False, compare=True)
    expect: Expectation
    acceptance: str
    description: str | None = None
    line: int = 0
    scope: tuple[str, ...] = DEFAULT_SCOPE

    @property
    def for_clones(self) -> bool:
        """True if a clone runs this test: written for clones, or a Master-VM test whose
        scope includes ``clone`` (the reduced set)."""
        return "clone" in self.applies_to or (
            "clone" in self.scope and "master_vm" in self.applies_to
        )

    def applies(self, kinds: tuple[str, ...] | frozenset[str], risk: str) -> bool:
        """True if a target of these kinds at this risk level must run this test.

        A clone (kind ``clone``) runs the tests written for clones (``applies_to`` names
        ``clone``) and the Master-VM tests whose ``scope`` includes ``clone``: the reduced
        set. Any other target runs the tests of its kinds whose scope includes ``master``.
        """
        if risk not in self.risk:
            return False
        if "clone" in kinds:
            return self.for_clones
        return "master" in self.scope and any(kind in self.applies_to for kind in kinds)


@dataclass(frozen=True)
class DataFile:
    """A file the spec references (expected values, HCL); covered by the protocol approval.

    Attributes:
        name: the key under ``data_files``; the bundle stores the file as ``data/<name>``.
        declared: the path as written in the spec (relative to the spec file).
        path: the resolved path that was read.
        digest: SHA-256 (hex) of ``raw``.
        raw: the bytes read at load time, so what is recorded is what was approved.
    """

    name: str
    declared: str
    path: Path
    digest: str
    raw: bytes = field(repr=False)


@dataclass(frozen=True)
class SizingRange:
    """Allowed range of one sizing value on a clone (inclusive; None: unbounded)."""

    min: int | None = None
    max: int | None = None

    def to_json(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        return out


@dataclass(frozen=True)
class MasterSource:
    """Where a clone run finds its master's bundle (the spec's ``clone.master``).

    Attributes:
        bundle: the master bundle directory, resolved against the spec file; None when the
            command line gives it (``vqual clone --master-bundle``).
        declared: ``bundle`` as written in the spec, or None.
        require_approval: the master bundle must carry a valid ``approved`` signature.
        subject: the fingerprint's subject in the master bundle; None: the bundle's only VM
            fingerprint.
    """

    bundle: Path | None = None
    declared: str | None = None
    require_approval: bool = True
    subject: str | None = None


@dataclass(frozen=True)
class CloneSection:
    """The spec's ``clone:`` section: what may differ between a clone and its master.

    Attributes:
        identity: identity fields expected to differ (never reported).
        sizing: sizing values a clone may override, each with its allowed range; a sizing
            value not named here must equal the master's.
        master: where the master bundle comes from and whether it must be approved.
        disk_formats: image formats a clone's disk may have whatever the master's is (a
            qcow2 overlay of a raw master disk); empty: the format must equal the master's.
    """

    identity: tuple[str, ...] = IDENTITY_FIELDS
    sizing: dict[str, SizingRange] = field(default_factory=dict, hash=False)
    master: MasterSource = field(default_factory=MasterSource)
    disk_formats: tuple[str, ...] = ()

    def allowed_json(self) -> dict[str, Any]:
        """The allowed differences as JSON: ``{identity: [...], sizing: {name: {min, max}}}``
        and ``disk_formats`` when the spec names any."""
        out: dict[str, Any] = {
            "identity": list(self.identity),
            "sizing": {name: rng.to_json() for name, rng in sorted(self.sizing.items())},
        }
        if self.disk_formats:
            out["disk_formats"] = list(self.disk_formats)
        return out


@dataclass(frozen=True)
class Spec:
    """A validated protocol.

    ``raw`` is the file byte for byte and ``digest`` its SHA-256, so the bundle records
    exactly what ran and an approval can be bound to it.
    """

    path: Path
    raw: bytes = field(repr=False)
    digest: str
    name: str
    title: str
    version: str
    description: str | None
    requirements: tuple[str, ...]
    data_files: tuple[DataFile, ...]
    tests: tuple[TestDef, ...]
    clone: CloneSection | None = None
    #: the data file holding the requirements file (docs/spec.md), or None
    requirements_file: str | None = None
    #: the requirements file's entries, in its order (empty without one)
    traceability: tuple[Requirement, ...] = field(default=(), hash=False)
    #: the data file holding site values for ``value_from`` (docs/spec.md), or None
    expected_values: str | None = None

    def expected_file(self) -> DataFile | None:
        """The expected-values data file, or None when the spec names none."""
        return self.data_file(self.expected_values) if self.expected_values else None

    def test(self, test_id: str) -> TestDef:
        """The test with this id.

        Raises:
            KeyError: no such test.
        """
        for test in self.tests:
            if test.id == test_id:
                return test
        raise KeyError(test_id)

    @property
    def clone_section(self) -> CloneSection:
        """The ``clone:`` section, or its defaults when the spec has none."""
        return self.clone if self.clone is not None else CloneSection()

    @property
    def test_ids(self) -> tuple[str, ...]:
        return tuple(test.id for test in self.tests)

    def data_file(self, name: str) -> DataFile:
        """The data file declared under ``name``.

        Raises:
            KeyError: no such data file.
        """
        for data_file in self.data_files:
            if data_file.name == name:
                return data_file
        raise KeyError(name)

    def record(self) -> dict[str, Any]:
        """``run.start`` ``spec`` field: {path, name, version, digest}."""
        return {
            "path": str(self.path),
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
        }

    def traceability_record(self) -> dict[str, Any] | None:
        """``run.start`` ``traceability``: {file, requirements}, or None without a file."""
        if self.requirements_file is None:
            return None
        return {
            "file": self.requirements_file,
            "requirements": [r.to_json() for r in self.traceability],
        }

    def data_files_record(self) -> list[dict[str, Any]]:
        """``run.start`` ``data_files`` field: [{path, digest, name}], ``path`` as in the bundle."""
        return [
            {"path": f"data/{item.name}", "digest": item.digest, "name": item.name}
            for item in self.data_files
        ]
