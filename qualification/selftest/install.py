"""IQ self checks: vqual, Python, the collection, every dependency and every installed
optional extra in their declared versions (VQ-01, VQ-28)."""

from __future__ import annotations

import platform
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

from qualification import __version__
from qualification.errors import EXTRAS, BadInputError, MissingExtraError
from qualification.execution.collection import collection_version, find_collection_root
from qualification.selftest.base import Outcome, SelfCheck, never_run


def _installed_version() -> Outcome:
    try:
        installed = metadata.version("vqual")
    except metadata.PackageNotFoundError:
        return Outcome(False, None, "the vqual distribution is not installed")
    ok = installed == __version__
    return Outcome(ok, installed, None if ok else f"package says {__version__}")


def collection_check(root: Path) -> Callable[[], Outcome]:
    def run() -> Outcome:
        found = collection_version(root)
        ok = found == __version__
        reason = None if ok else f"the collection at {root} says {found or 'no version'}"
        return Outcome(ok, found, reason)

    return run


def _collection_root() -> tuple[Path | None, str | None]:
    """The collection this vqual runs, or why none was found (a verify-only install)."""
    try:
        return find_collection_root(), None
    except BadInputError as exc:
        return None, f"{exc.one_line()} (only needed to run qualifications)"


def _requirement_check(req: Requirement) -> Callable[[], Outcome]:
    def run() -> Outcome:
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            return Outcome(False, None, f"{req.name} is not installed")
        ok = req.specifier.contains(installed, prereleases=True)
        return Outcome(ok, installed, None if ok else f"{installed} is not {req.specifier}")

    return run


def _python_version() -> Outcome:
    try:
        declared = metadata.metadata("vqual")["Requires-Python"] or ""
    except metadata.PackageNotFoundError:
        return Outcome(False, platform.python_version(), "the vqual distribution is not installed")
    ok = SpecifierSet(declared).contains(platform.python_version())
    return Outcome(ok, platform.python_version(), None if ok else f"needs Python {declared}")


def _declared() -> list[Requirement]:
    """vqual's installed ``Requires-Dist`` lines, parsed (unparsable ones skipped)."""
    try:
        declared = metadata.requires("vqual") or []
    except metadata.PackageNotFoundError:
        return []
    found = []
    for text in declared:
        try:
            found.append(Requirement(text))
        except InvalidRequirement:
            continue
    return found


def _dependencies() -> list[Requirement]:
    # Only what this installation needs (no extras, markers that apply here).
    return [r for r in _declared() if r.marker is None or r.marker.evaluate({"extra": ""})]


def extra_requirements(extra: str, declared: list[Requirement]) -> list[Requirement]:
    """The requirements ``extra`` adds (its ``extra == "<name>"`` lines) that apply here."""
    return [
        r
        for r in declared
        if r.marker is not None
        and r.marker.evaluate({"extra": extra})
        and not r.marker.evaluate({"extra": ""})
        and r.name != "vqual"  # `all` names the others; an extra of EXTRAS names packages
    ]


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def extra_check(extra: str, reqs: list[Requirement]) -> Callable[[], Outcome]:
    """Every package ``extra`` declares, installed in its declared version."""

    def run() -> Outcome:
        if not reqs:
            return Outcome(False, None, f"vqual's metadata declares no requirement for extra "
                           f"{extra!r} (pyproject.toml and qualification.errors.EXTRAS differ)")
        observed = {r.name: _installed(r.name) for r in reqs}
        wrong = [
            f"{r.name} {observed[r.name] or 'is not installed'}"
            + (f" is not {r.specifier}" if observed[r.name] else "")
            for r in reqs
            if observed[r.name] is None
            or not r.specifier.contains(str(observed[r.name]), prereleases=True)
        ]
        return Outcome(not wrong, observed, "; ".join(wrong) or None)

    return run


def extra_absent(extra: str, reqs: list[Requirement]) -> str | None:
    """Why ``extra``'s check is not executed here (its package is not installed), or None."""
    package = EXTRAS[extra][0]
    names = {r.name for r in reqs} or {package}
    if all(_installed(name) is None for name in names):
        return MissingExtraError(extra).one_line()
    return None


def installation_checks() -> list[SelfCheck]:
    """IQ: vqual, Python, the collection and every dependency in their declared versions."""
    eq = {"op": "equals", "value": True}
    found = [
        SelfCheck(
            "ST-IQ-01",
            "installed vqual is this version",
            "IQ",
            "VQ-01",
            "importlib.metadata.version('vqual')",
            {"op": "equals", "value": __version__},
            _installed_version,
        ),
        SelfCheck(
            "ST-IQ-02",
            "Python meets Requires-Python",
            "IQ",
            "VQ-01",
            "platform.python_version()",
            eq,
            _python_version,
        ),
    ]
    root, missing = _collection_root()
    found.append(
        SelfCheck(
            "ST-IQ-04",
            "the vqual.qualification collection is found and is this version",
            "IQ",
            "VQ-01",
            "galaxy.yml / MANIFEST.json of the collection vqual runs",
            {"op": "equals", "value": __version__},
            collection_check(root) if root else never_run,
            not_executed=missing,
        )
    )
    for req in _dependencies():
        found.append(
            SelfCheck(
                f"ST-IQ-03-{req.name}",
                f"dependency {req}",
                "IQ",
                "VQ-01",
                f"importlib.metadata.version({req.name!r})",
                {"op": "in_specifier", "value": str(req.specifier)},
                _requirement_check(req),
            )
        )
    return found + extras_checks(_declared())


def extras_checks(declared: list[Requirement]) -> list[SelfCheck]:
    """IQ: each optional extra (qualification.errors.EXTRAS) that is installed is in its
    declared version. An extra none of whose packages is installed is a site's choice (a site
    without Hyper-V installs no pywinrm), so it is not planned: the selftest of a complete
    installation for that site exits 0, and the planned ids name the extras present."""
    found = []
    for extra in EXTRAS:
        reqs = extra_requirements(extra, declared)
        if extra_absent(extra, reqs) is not None:
            continue
        found.append(
            SelfCheck(
                f"ST-IQ-05-{extra}",
                f"extra {extra} ({EXTRAS[extra][1]}) is in its declared version",
                "IQ",
                "VQ-28",
                f"Requires-Dist of vqual marked extra == {extra!r}, importlib.metadata.version",
                {"op": "in_specifier", "value": {r.name: str(r.specifier) for r in reqs}},
                extra_check(extra, reqs),
            )
        )
    return found
