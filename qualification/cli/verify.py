"""``vqual verify``: verify an evidence bundle: signatures, hash chain, manifest and seal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from qualification.cli.shared import domain_errors, state_dir_option, trust_root_options
from qualification.state import resolve_state_dir


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--json", "json_mode", is_flag=True, help="Print the result as JSON.")
@click.option("--record", is_flag=True,
              help="Append a failed verification to the audit log in the state directory.")
@trust_root_options
@state_dir_option
@domain_errors
def verify(bundle: Path, json_mode: bool, record: bool, trust_root: Path | None,
           legacy_trust: bool, state_dir: Path | None) -> None:
    """Verify BUNDLE: signatures, hash chain, manifest and seal, and that run.end, the
    JUnit and the report agree with the records.

    BUNDLE may be a change directory (evidence/<change_id>): every run, the prev_run_seal
    chain between them and what is missing; the latest run is reported as not anchored.

    Signatures count only through a trust store that the pinned trust root vouches for
    (--trust-root, $VQUAL_TRUST_ROOT, /etc/vqual/trust-root.yaml), each record judged by the
    version in force at its time; --legacy-trust judges without a root, and says so.

    Exit 0 valid and complete; 1 invalid (naming the record, file or run, or the trust
    store the root does not vouch for); 3 incomplete (a run that did not finish, naming the
    tests not executed).
    """
    from qualification.execution.verifying import verify_command

    text, payload, code = verify_command(bundle, resolve_state_dir(state_dir), record=record,
                                         trust_root=trust_root, legacy=legacy_trust)
    click.echo(json.dumps(payload, indent=2, sort_keys=True) if json_mode else text)
    sys.exit(code)
