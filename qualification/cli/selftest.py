"""``vqual selftest``: qualify vqual itself."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from qualification.cli.shared import domain_errors, read_passphrase, run_options, state_dir_option
from qualification.state import resolve_state_dir

if TYPE_CHECKING:
    from qualification.selftest.base import SelfCheck
    from qualification.selftest.evidence import Scratch


@click.command()
@click.option("-c", "--change", "change_id", required=True,
              help="Change id the selftest run is recorded under (e.g. the installation's).")
@run_options(run_id=False)
@click.option("--golden", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Golden bundles directory (default: the source tree's).")
@click.option("--json", "json_mode", is_flag=True, help="Print the summary as JSON.")
@state_dir_option
@domain_errors
def selftest(change_id: str, key_file: Path | None, passphrase_fd: int | None,
             evidence_dir: Path, golden: Path | None, initiator: str | None, json_mode: bool,
             state_dir: Path | None) -> None:
    """Qualify vqual itself (versions, golden bundles, known-good and known-bad evidence)."""
    from qualification.execution.recorder import open_signer_with
    from qualification.selftest import run_selftest

    state = resolve_state_dir(state_dir)
    signer, _ = open_signer_with(
        key_file or state / "keys" / "executor.pem",
        lambda: read_passphrase(passphrase_fd, "Key passphrase: "),
    )
    who = initiator or os.environ.get("VQUAL_INITIATOR") or getpass.getuser()
    summary = run_selftest(state, evidence_dir, change_id, signer, who, golden=golden,
                           extra_checks=_server_checks())
    payload = {
        "schema": "vqual.selftest/v1", "bundle": str(summary.bundle), "verdict": summary.verdict,
        "counts": summary.counts, "seal": summary.seal, "verification": summary.verification,
        "failed": summary.failed, "exit_code": summary.exit_code,
    }
    if json_mode:
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items()))
        click.echo(f"vqual selftest: {summary.verdict.upper()} ({counts})\n"
                   f"  evidence: {summary.bundle}\n  seal:     {summary.seal}\n"
                   f"  verified: {summary.verification}")
        for line in summary.failed:
            click.echo(f"  {line}")
    sys.exit(summary.exit_code)


def _server_checks() -> Callable[[Callable[[], Scratch]], list[SelfCheck]]:
    """ST-OQ-26 (the evidence server's check), or its not-executed record without the extra."""
    from qualification.selftest.server import server_checks, unavailable_checks

    try:
        import alembic  # noqa: F401 - only whether the server extra is installed
        import pymerkle  # noqa: F401
        import sqlalchemy  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "the server extra"
        return lambda _scratch: unavailable_checks(missing)
    return server_checks
