"""Domain errors. Each carries the exit code the CLI maps it to (DESIGN.md section 5).

Exit codes: 0 all passed / valid; 1 failed, drift found, or evidence invalid; 2 bad input,
nothing executed; 3 incomplete or resumable; 4 platform or connection error.
"""

from __future__ import annotations

from qualification.verdict import Verdict

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INCOMPLETE = 3
EXIT_PLATFORM = 4

#: Exit code of a run that sealed its bundle, by the bundle's overall verdict (docs/formats.md):
#: ``not-executed`` is 3, "incomplete": planned tests have no result, so the run must not
#: report success, yet nothing failed, nothing was refused and no platform error stopped it.
EXIT_BY_VERDICT: dict[str, int] = {
    Verdict.PASS: EXIT_OK,
    Verdict.WAIVED: EXIT_OK,
    Verdict.FAIL: EXIT_FAILED,
    Verdict.ERROR: EXIT_PLATFORM,
    Verdict.NOT_EXECUTED: EXIT_INCOMPLETE,
}


def exit_code_for_verdict(verdict: str) -> int:
    """The exit code of a finished run whose overall verdict is ``verdict``; an unknown
    verdict is 1 (never 0)."""
    return EXIT_BY_VERDICT.get(verdict, EXIT_FAILED)


class VqualError(Exception):
    """Base of every error vqual reports to a user: one line, an exit code."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message as the CLI prints it: ``where: message`` on one line."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        return " ".join(text.split())


class BadInputError(VqualError):
    """Malformed spec, inventory, change id, key or argument: nothing was executed."""

    exit_code = EXIT_BAD_INPUT


class SpecError(BadInputError):
    """A spec failed validation; ``where`` is ``file:line`` and the message names the field."""


class ChangeIdError(BadInputError):
    """A change id is missing or does not match the configured pattern."""


class KeyFileError(BadInputError):
    """A key file is missing, unreadable, malformed, has loose permissions or a wrong passphrase."""


class TrustError(VqualError):
    """The trust store is missing, malformed, unsigned or does not grant what was asked."""

    exit_code = EXIT_BAD_INPUT


class EvidenceInvalidError(VqualError):
    """A bundle failed verification: broken chain, bad signature, edited file."""

    exit_code = EXIT_FAILED


class EvidenceIncompleteError(VqualError):
    """A bundle is a valid prefix of a run that did not finish (a crash)."""

    exit_code = EXIT_INCOMPLETE


class PlatformError(VqualError):
    """A platform or connection could not be reached or refused an operation."""

    exit_code = EXIT_PLATFORM


class NotSupported(PlatformError):
    """The platform cannot perform an operation; a check becomes ``not-executed`` with the reason.

    Attributes:
        operation: what was asked, e.g. ``migrate``.
        reason: why this platform cannot do it, one line.
    """

    def __init__(self, operation: str, reason: str, *, where: str | None = None) -> None:
        self.operation = operation
        self.reason = " ".join(reason.split())
        super().__init__(f"{operation} not supported: {self.reason}", where=where)



#: The optional extras of the ``vqual`` distribution (pyproject.toml), so a site installs only
#: the platforms it has: extra -> (the package it installs, what needs it).
EXTRAS: dict[str, tuple[str, str]] = {
    "libvirt": ("libvirt-python", "libvirt/KVM support"),
    "vsphere": ("pyvmomi", "vSphere support"),
    "hyperv": ("pywinrm", "Hyper-V support"),
    "pdf": ("weasyprint", "PDF output"),
    "server": ("starlette", "the evidence server"),
}
#: The extra behind each top-level module vqual imports from an optional dependency.
OPTIONAL_MODULES: dict[str, str] = {
    "libvirt": "libvirt",
    "libvirt_qemu": "libvirt",
    "pyVmomi": "vsphere",
    "pyVim": "vsphere",
    "winrm": "hyperv",
    "weasyprint": "pdf",
    **dict.fromkeys(("starlette", "uvicorn", "sqlalchemy", "alembic", "pymerkle"), "server"),
}


class MissingExtraError(BadInputError):
    """An optional dependency is not installed; the message names the extra that adds it."""

    def __init__(self, extra: str, *, where: str | None = None) -> None:
        self.extra = extra
        package, purpose = EXTRAS[extra]
        super().__init__(
            f"{purpose} needs {package}, which is not installed: pip install 'vqual[{extra}]'",
            where=where,
        )


def missing_extra(exc: BaseException) -> MissingExtraError | None:
    """The :class:`MissingExtraError` behind ``exc`` (or its causes) when the import of an
    optional dependency failed; None for any other error."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        if isinstance(seen, ModuleNotFoundError) and seen.name:
            extra = OPTIONAL_MODULES.get(seen.name.split(".")[0])
            if extra is not None:
                return MissingExtraError(extra)
        seen = seen.__cause__ or seen.__context__
    return None
