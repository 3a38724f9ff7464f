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
