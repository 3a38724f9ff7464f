"""``check: testinfra``: a site's testinfra suite as qualification tests.

A spec test names a test module (``module: suite/test_host.py``, or one test in it:
``suite/test_host.py::test_sshd``). When the spec loads, :func:`expand` reads the module
(statically, without importing it: the spec loads in processes that must not run site code)
and the spec test becomes one test per test function, ``<spec id>::<function>``, whose
requirements are the spec test's plus the URS ids of the function's ``urs`` markers
(``@pytest.mark.urs("URS-SEC-01")``, on the function, its class or the module's
``pytestmark``). ``qualification.execution.testinfra`` runs the module with pytest against
the target through testinfra's backends and answers each function's request with its
outcome; :meth:`TestinfraCheck.extract` turns that into the observed value.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification.checks.base import Observed, ProbeRequest, StepNotExecuted, unknown_params
from qualification.checks.registry import register

#: The probe that answers testinfra requests (on the controller, through testinfra's backends).
PROBE = "testinfra"
#: testinfra backends a spec may ask for; without one, the inventory's connection decides.
BACKENDS = ("ssh", "paramiko", "local", "ansible")
#: The pytest marker that maps a test function to URS requirement ids.
URS_MARKER = "urs"
#: Separator between the spec test id and the function in an expanded test id (pytest's own).
SEPARATOR = "::"

_PARAMS = {"module", "backend", "sudo", "test", "path", "sha256", "conftest_sha256"}
#: pytest loads this file beside a module (its fixtures, hooks): it is pinned with the module.
CONFTEST = "conftest.py"


class CollectError(ValueError):
    """The module cannot be run: missing, unreadable, not Python, no tests, no such test."""


@dataclass(frozen=True)
class CollectedTest:
    """A test function of a module, as read from its source.

    Attributes:
        name: ``test_x`` or ``TestClass::test_x``: the pytest node id without the file.
        line: where the function is defined.
        requirements: the URS ids of its ``urs`` markers (module, class, function), in order.
    """

    name: str
    line: int
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class Expanded:
    """One spec test made from a test function: the id suffix, its parameters and URS ids."""

    name: str
    params: dict[str, Any]
    requirements: tuple[str, ...]


def _is_urs_marker(node: ast.expr) -> bool:
    """``pytest.mark.urs(...)`` or ``mark.urs(...)``."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == URS_MARKER
    ):
        return False
    owner = node.func.value
    return (isinstance(owner, ast.Attribute) and owner.attr == "mark") or (
        isinstance(owner, ast.Name) and owner.id == "mark"
    )


def _urs_ids(nodes: Sequence[ast.expr]) -> list[str]:
    ids: list[str] = []
    for node in nodes:
        if _is_urs_marker(node):
            assert isinstance(node, ast.Call)
            ids.extend(
                str(arg.value)
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            )
    return ids


def _pytestmark(body: Sequence[ast.stmt]) -> list[str]:
    """URS ids of a ``pytestmark = ...`` assignment (one marker or a list) in ``body``."""
    ids: list[str] = []
    for stmt in body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets
        ):
            value = stmt.value
            items = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
            ids.extend(_urs_ids(items))
    return ids


def _functions(
    body: Sequence[ast.stmt], prefix: str, inherited: list[str]
) -> list[CollectedTest]:
    found: list[CollectedTest] = []
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name.startswith(
            "test"
        ):
            ids = inherited + _urs_ids(stmt.decorator_list)
            found.append(
                CollectedTest(f"{prefix}{stmt.name}", stmt.lineno, tuple(dict.fromkeys(ids)))
            )
        elif isinstance(stmt, ast.ClassDef) and stmt.name.startswith("Test"):
            ids = inherited + _urs_ids(stmt.decorator_list) + _pytestmark(stmt.body)
            found.extend(_functions(stmt.body, f"{prefix}{stmt.name}{SEPARATOR}", ids))
    return found


def collect(source: bytes, filename: str) -> list[CollectedTest]:
    """The test functions of a module's source, as pytest's default rules name them.

    Raises:
        CollectError: the source is not valid Python, or defines no test.
    """
    try:
        tree = ast.parse(source, filename=filename)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise CollectError(
            f"{filename} is not valid Python{where}: {getattr(exc, 'msg', exc)}"
        ) from None
    tests = _functions(tree.body, "", _pytestmark(tree.body))
    if not tests:
        raise CollectError(f"{filename} has no tests (no test_* function or Test* class)")
    return tests


def split_module(module: str) -> tuple[str, str | None]:
    """``path::test`` -> (path, test); a plain path -> (path, None)."""
    path, sep, test = module.partition(SEPARATOR)
    return path, (test if sep else None)


def expand(params: Mapping[str, Any], base: Path) -> list[Expanded]:
    """The tests a ``testinfra`` spec test stands for, one per selected test function.

    ``module`` is resolved against ``base`` (the spec's directory) when relative; each
    expanded test's parameters carry the absolute ``path``, its ``test`` name and the
    module's ``sha256`` (and ``conftest_sha256`` of a ``conftest.py`` beside it), so the run
    executes the very files the spec was approved with.

    Raises:
        CollectError: one line naming what is wrong with the module.
    """
    declared, wanted = split_module(str(params["module"]))
    # Absolute at once: the run executes in another working directory than the load.
    path = (base / declared).absolute()
    if not path.is_file():
        raise CollectError(f"testinfra module not found: {path}")
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise CollectError(f"cannot read {path}: {exc.strerror or exc}") from None
    tests = collect(source, str(path))
    if wanted is not None:
        tests = [t for t in tests if t.name == wanted or t.name.startswith(wanted + SEPARATOR)]
        if not tests:
            raise CollectError(f"no test {wanted!r} in {path}")
    common = {k: v for k, v in params.items() if k in ("backend", "sudo")}
    common["sha256"] = hashlib.sha256(source).hexdigest()
    conftest = path.parent / CONFTEST
    if conftest.is_file():
        common["conftest_sha256"] = hashlib.sha256(conftest.read_bytes()).hexdigest()
    return [
        Expanded(
            name=t.name,
            params={**common, "module": str(params["module"]), "path": str(path),
                    "test": t.name},
            requirements=t.requirements,
        )
        for t in tests
    ]


@dataclass
class TestinfraCheck:
    """One test function of a testinfra module; observed: ``passed`` or ``failed``."""

    __test__ = False  # not a pytest test class, despite the name

    name: str = "testinfra"
    description: str = (
        "a test function of a testinfra module, run against the target through testinfra's "
        "backends; observed: passed or failed (a skipped test is not-executed)"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        problem = unknown_params(self.name, params, _PARAMS)
        if problem:
            return problem
        module = params.get("module")
        if not isinstance(module, str) or not split_module(module)[0].strip():
            return f"{self.name}: parameter module (a test module path) is required"
        backend = params.get("backend")
        if backend is not None and backend not in BACKENDS:
            return f"{self.name}: parameter backend must be one of {', '.join(BACKENDS)}"
        if "sudo" in params and not isinstance(params["sudo"], bool):
            return f"{self.name}: parameter sudo must be true or false"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        args = {
            key: params[key]
            for key in ("path", "test", "sha256", "conftest_sha256", "backend", "sudo")
            if key in params
        }
        return ProbeRequest(PROBE, "pytest", args)

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        """``{outcome, message}`` from the runner -> ``passed``/``failed``; a test that
        errors is ``failed`` with the exception's message; a skipped one is not-executed."""
        outcome = str(value.get("outcome"))
        message = value.get("message") or None
        if outcome == "skipped":
            raise StepNotExecuted(f"skipped: {message or 'no reason given'}")
        if outcome == "passed":
            return "passed"
        return Observed("failed", reason=message or f"the test {outcome}")


TESTINFRA = TestinfraCheck()
register(TESTINFRA)
