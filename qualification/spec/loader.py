"""Load and validate a spec: JSON Schema first, then the rules a schema cannot say.

Every error is a :class:`SpecError` whose ``where`` is ``file:line`` and whose message starts
with the field path, e.g. ``specs/x.yaml:14: tests[3].expect.op: 'equal' is not one of [...]``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import jsonschema
from jsonschema.exceptions import ValidationError
from packaging.version import InvalidVersion, Version

from qualification import checks
from qualification.checks.testinfra import CONFTEST as TESTINFRA_CONFTEST
from qualification.checks.testinfra import SEPARATOR as TESTINFRA_SEPARATOR
from qualification.checks.testinfra import TESTINFRA
from qualification.checks.testinfra import CollectError as TestinfraCollectError
from qualification.checks.testinfra import expand as expand_testinfra
from qualification.checks.testinfra import split_module as split_testinfra_module
from qualification.errors import SpecError
from qualification.platforms import registry as platform_registry
from qualification.reports.matrix import Requirement
from qualification.spec.expected import load_expected_values
from qualification.spec.model import (
    DEFAULT_SCOPE,
    EXPECT_OPS,
    IDENTITY_FIELDS,
    VALUE_OPS,
    CloneSection,
    DataFile,
    Expectation,
    MasterSource,
    SizingRange,
    Spec,
    TestDef,
    target_kinds,
)
from qualification.spec.requirements import load_requirements
from qualification.spec.source import FieldPath, LocatedDocument, read_located

SCHEMA_RESOURCE = "schema/spec-v1.schema.json"

# Long instance reprs (a whole test mapping) would make the one-line message unreadable.
_MAX_MESSAGE = 300


class CheckRegistry(Protocol):
    """What the loader needs from the check library (``qualification.checks`` satisfies it)."""

    def known_check_types(self) -> frozenset[str]: ...

    def validate_params(self, check: str, params: dict[str, Any]) -> str | None: ...


@functools.cache
def _schema_for(kinds: tuple[str, ...]) -> dict[str, Any]:
    text = resources.files("qualification.spec").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    schema["$defs"]["targetKind"]["enum"] = list(kinds)
    return schema


def spec_schema() -> dict[str, Any]:
    """The v1 JSON Schema, read from package data, its target kinds those of the registered
    platform plug-ins (the file names none: a new platform edits no schema)."""
    return _schema_for(target_kinds())


def _inline_refs(node: Any, defs: Mapping[str, Any]) -> Any:
    """``node`` with every local ``{"$ref": "#/$defs/x"}`` replaced by the definition."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and len(node) == 1:
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline_refs(value, defs) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    return node


def _validator() -> jsonschema.protocols.Validator:
    return _validator_for(target_kinds())


@functools.cache
def _validator_for(kinds: tuple[str, ...]) -> jsonschema.protocols.Validator:
    schema = _schema_for(kinds)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    # Reference lookups were most of the validation time; the schema has no recursive
    # references, so it is validated in an equivalent inlined form.
    validator: jsonschema.protocols.Validator = cls(_inline_refs(schema, schema["$defs"]))
    return validator


def default_registry() -> CheckRegistry:
    """The installed check library, with the check types of every platform plug-in."""
    platform_registry.plugins()  # loading the plug-ins adds their check types
    registry: CheckRegistry = checks  # a module satisfies the protocol structurally
    return registry


def load_spec(path: Path, *, registry: CheckRegistry | None = None) -> Spec:
    """Read, validate and return the spec at ``path``.

    Args:
        path: the spec file (YAML, ``apiVersion: vqual/v1``).
        registry: the check library to validate ``check`` and ``params`` against; the
            installed ``qualification.checks`` when None.

    Raises:
        SpecError: anything wrong with the spec or a data file it references; ``where`` is
            ``file:line`` and the message names the field path.
    """
    path = Path(path)
    raw, doc = read_located(path, "spec")
    if doc.data is None:
        raise doc.error((), "spec is empty")
    _check_schema(doc)
    return _build(doc, path, raw, registry if registry is not None else default_registry())


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _schema_errors(doc: LocatedDocument) -> list[tuple[int, FieldPath, str]]:
    """Every schema error as (line, field path, message)."""
    found: list[tuple[FieldPath, str]] = []
    for error in _validator().iter_errors(doc.data):
        found.extend(_explain(error))
    return [(doc.line(path), path, message) for path, message in found]


def _explain(error: ValidationError) -> list[tuple[FieldPath, str]]:
    """The field path(s) an error is about and a message for each."""
    path: FieldPath = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = [key for key in error.instance if key not in allowed]
        return [((*path, key), f"unknown field (allowed: {', '.join(allowed)})") for key in extra]
    if "propertyNames" in error.schema_path:
        # the error is about a key: point at the key, not at the mapping holding it
        return [((*path, str(error.instance)), f"bad name: {_short(error.message)}")]
    message = _short(error.message)
    if (
        error.validator == "type"
        and error.validator_value == "string"
        and isinstance(error.instance, (int, float, bool))
    ):
        message += " (quote it)"
    if error.validator == "const":
        message = f"must be {error.validator_value!r}, not {error.instance!r}"
    return [(path, message)]


def _check_schema(doc: LocatedDocument) -> None:
    errors = _schema_errors(doc)
    if not errors:
        return
    errors.sort(key=lambda item: (item[0], str(item[1])))
    _, path, message = errors[0]
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    raise doc.error(path, message)


def _build(doc: LocatedDocument, path: Path, raw: bytes, registry: CheckRegistry) -> Spec:
    data: dict[str, Any] = doc.data
    declared = list(data["requirements"])
    _no_duplicates(doc, ("requirements",), declared, "requirement")
    declared_set = set(declared)
    known_checks = registry.known_check_types()

    tests: list[TestDef] = []
    first_line: dict[str, int] = {}
    for index, item in enumerate(data["tests"]):
        base: FieldPath = ("tests", index)
        test_id = item["id"]
        if test_id in first_line:
            raise doc.error(
                (*base, "id"),
                f"duplicate test id {test_id!r} (first defined at line {first_line[test_id]})",
            )
        first_line[test_id] = doc.line((*base, "id"))
        for name, what in (
            ("requirements", "requirement"),
            ("applies_to", "kind"),
            ("risk", "risk level"),
        ):
            _no_duplicates(doc, (*base, name), item[name], what)
        for pos, requirement in enumerate(item["requirements"]):
            if requirement not in declared_set:
                raise doc.error(
                    (*base, "requirements", pos),
                    f"{requirement!r} is not declared in the top-level requirements",
                )
        check = item["check"]
        if check not in known_checks:
            raise doc.error(
                (*base, "check"),
                f"unknown check type {check!r} (known: {', '.join(sorted(known_checks))})",
            )
        params = dict(item.get("params") or {})
        problem = registry.validate_params(check, params)
        if problem:
            raise doc.error((*base, "params"), f"check {check!r}: {_short(problem)}")
        expect = _expectation(doc, (*base, "expect"), item["expect"])
        scope = tuple(item.get("scope") or DEFAULT_SCOPE)
        if "clone" in scope and not {"master_vm", "clone"} & set(item["applies_to"]):
            raise doc.error(
                (*base, "scope"),
                "scope 'clone' needs applies_to to name master_vm or clone "
                "(only a VM has clones)",
            )
        test = TestDef(
            id=test_id,
            title=item["title"],
            protocol=item["protocol"],
            requirements=tuple(item["requirements"]),
            applies_to=tuple(item["applies_to"]),
            risk=tuple(item["risk"]),
            check=check,
            params=params,
            expect=expect,
            acceptance=item["acceptance"],
            description=item.get("description"),
            line=doc.line(base), scope=scope,
        )
        tests.extend(_testinfra_tests(doc, base, path, test) if check == TESTINFRA.name else [test])

    return _assemble(doc, path, raw, data, declared, tests)


def _assemble(
    doc: LocatedDocument,
    path: Path,
    raw: bytes,
    data: dict[str, Any],
    declared: list[str],
    tests: list[TestDef],
) -> Spec:
    """The spec of a document whose tests are built: data files, requirements file, clone."""
    metadata = data["metadata"]
    data_files = _data_files(doc, path, data.get("data_files") or {})
    requirements_file = data.get("requirements_file")
    traceability = _traceability(doc, data_files, requirements_file, declared)
    expected_values = data.get("expected_values")
    if expected_values is not None:
        found = [d for d in data_files if d.name == expected_values]
        if not found:
            raise doc.error(("expected_values",), f"names no data file {expected_values!r}")
        load_expected_values(found[0])  # refused here, not at planning
    return Spec(
        path=path,
        raw=raw,
        digest=hashlib.sha256(raw).hexdigest(),
        name=metadata["name"],
        title=metadata["title"],
        version=metadata["version"],
        description=metadata.get("description"),
        requirements=tuple(declared),
        data_files=data_files + _testinfra_modules(tests),
        tests=tuple(tests),
        clone=_clone_section(doc, path, data["clone"]) if "clone" in data else None,
        requirements_file=requirements_file,
        traceability=traceability,
        expected_values=expected_values,
    )


def _testinfra_tests(
    doc: LocatedDocument, base: FieldPath, spec_path: Path, test: TestDef
) -> list[TestDef]:
    """A ``testinfra`` spec test as one test per test function of its module
    (:func:`qualification.checks.testinfra.expand`): ``<id>::<function>``, with the URS ids
    of the function's markers added to the test's requirements."""
    try:
        expanded = expand_testinfra(test.params, spec_path.parent)
    except TestinfraCollectError as exc:
        raise doc.error((*base, "params", "module"), f"test {test.id}: {exc}") from None
    return [
        dataclasses.replace(
            test,
            id=f"{test.id}{TESTINFRA_SEPARATOR}{one.name}",
            title=f"{test.title}: {one.name}",
            requirements=tuple(dict.fromkeys(test.requirements + one.requirements)),
            params=one.params,
        )
        for one in expanded
    ]


def _testinfra_modules(tests: list[TestDef]) -> tuple[DataFile, ...]:
    """The testinfra modules the tests run (and a ``conftest.py`` beside one), as data files
    of the spec: so the protocol approval covers them, ``run.start`` cites their digests and
    the bundle keeps the code that ran (``data/testinfra/<file name>``; with the digest in
    front where two share a name)."""
    found: dict[str, tuple[str, str]] = {}
    for test in tests:
        if test.check == TESTINFRA.name:
            declared = split_testinfra_module(str(test.params["module"]))[0]
            module = str(test.params["path"])
            found.setdefault(module, (declared, str(test.params["sha256"])))
            if "conftest_sha256" in test.params:
                conftest = str(Path(module).parent / TESTINFRA_CONFTEST)
                pair = (str(Path(declared).parent / TESTINFRA_CONFTEST),
                        str(test.params["conftest_sha256"]))
                found.setdefault(conftest, pair)
    names = Counter(Path(p).name for p in found)
    files: list[DataFile] = []
    for module, (declared, digest) in found.items():
        base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(module).name)
        name = f"testinfra/{base}" if names[Path(module).name] == 1 else (
            f"testinfra/{digest[:12]}-{base}"
        )
        raw = Path(module).read_bytes()
        if hashlib.sha256(raw).hexdigest() != digest:
            raise SpecError(f"testinfra module {module} changed while the spec was loading")
        files.append(DataFile(name, declared, Path(module), digest, raw))
    return tuple(files)


def _traceability(
    doc: LocatedDocument,
    data_files: tuple[DataFile, ...],
    name: str | None,
    declared: list[str],
) -> tuple[Requirement, ...]:
    """The requirements file's entries; every requirement the spec declares must be in it."""
    if name is None:
        return ()
    found = [d for d in data_files if d.name == name]
    if not found:
        known = ", ".join(d.name for d in data_files) or "none"
        raise doc.error(
            ("requirements_file",), f"names no data file {name!r} (data_files: {known})"
        )
    entries = load_requirements(found[0])
    ids = {r.id for r in entries}
    for pos, requirement in enumerate(declared):
        if requirement not in ids:
            raise doc.error(
                ("requirements", pos),
                f"{requirement!r} is not in the requirements file {found[0].declared}",
            )
    return entries


def _clone_section(doc: LocatedDocument, spec_path: Path, data: Mapping[str, Any]) -> CloneSection:
    """The ``clone:`` section (schema-valid already): ranges checked, master bundle resolved."""
    sizing: dict[str, SizingRange] = {}
    for name, bounds in (data.get("sizing") or {}).items():
        low, high = bounds.get("min"), bounds.get("max")
        if low is not None and high is not None and low > high:
            raise doc.error(("clone", "sizing", name, "min"), f"min {low} is greater than max {high}")
        sizing[name] = SizingRange(min=low, max=high)
    master = data.get("master") or {}
    declared = master.get("bundle")
    bundle: Path | None = None
    if declared is not None:
        # a relative path is relative to the spec file, as data files are
        bundle = Path(declared) if Path(declared).is_absolute() else spec_path.parent / declared
    identity = data.get("identity")
    return CloneSection(
        identity=tuple(identity) if identity is not None else IDENTITY_FIELDS,
        sizing=sizing,
        master=MasterSource(
            bundle=bundle,
            declared=declared,
            require_approval=bool(master.get("require_approval", True)),
            subject=master.get("subject"),
        ),
        disk_formats=tuple(data.get("disk_formats") or ()),
    )


def _no_duplicates(doc: LocatedDocument, path: FieldPath, items: list[Any], what: str) -> None:
    seen: set[Any] = set()
    for pos, item in enumerate(items):
        if item in seen:
            raise doc.error((*path, pos), f"duplicate {what} {item!r}")
        seen.add(item)


def _expectation(doc: LocatedDocument, path: FieldPath, data: Mapping[str, Any]) -> Expectation:
    op = data["op"]
    allowed = EXPECT_OPS[op]
    for key in data:
        if key != "op" and key not in allowed:
            uses = ", ".join(sorted(allowed)) or "nothing besides op"
            raise doc.error((*path, key), f"not used by op {op!r} (it uses: {uses})")
    has_value = "value" in data
    value_from = data.get("value_from")
    if op in VALUE_OPS:
        if has_value and value_from is not None:
            raise doc.error((*path, "value_from"), "give either value or value_from, not both")
        if not has_value and value_from is None:
            raise doc.error(path, f"op {op!r} needs value or value_from")
    if op == "range":
        bounds = [data.get("min"), data.get("max")]
        if value_from is not None and any(bound is not None for bound in bounds):
            raise doc.error((*path, "value_from"), "give either min/max or value_from, not both")
        if value_from is None and all(bound is None for bound in bounds):
            raise doc.error(path, "op 'range' needs min, max or value_from")
        low, high = bounds
        if low is not None and high is not None and low > high:
            raise doc.error((*path, "min"), f"min {low} is greater than max {high}")
    value: Any = data.get("value")
    if has_value and op == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            raise doc.error((*path, "value"), f"not a valid regular expression: {exc}") from None
    if has_value and op == "version" and data.get("scheme") == "pep440":
        try:
            Version(value)
        except InvalidVersion:
            raise doc.error((*path, "value"), f"{value!r} is not a PEP 440 version") from None
    return Expectation(
        op=op,
        value=value,
        value_from=value_from,
        min=data.get("min"),
        max=data.get("max"),
        cmp=data.get("cmp"),
        scheme=data.get("scheme"),
        group=data.get("group"),
    )


def _data_files(
    doc: LocatedDocument, spec_path: Path, declared: Mapping[str, str]
) -> tuple[DataFile, ...]:
    base = spec_path.parent
    files: list[DataFile] = []
    for name, rel in declared.items():
        where: FieldPath = ("data_files", name)
        if Path(rel).is_absolute():
            raise doc.error(where, f"{rel!r} must be relative to the spec file")
        target = base / rel
        if not target.is_file():
            raise doc.error(where, f"data file not found: {target}")
        try:
            content = target.read_bytes()
        except OSError as exc:
            raise doc.error(where, f"cannot read {target}: {exc.strerror or exc}") from None
        files.append(
            DataFile(
                name=name,
                declared=rel,
                path=target,
                digest=hashlib.sha256(content).hexdigest(),
                raw=content,
            )
        )
    return tuple(files)
