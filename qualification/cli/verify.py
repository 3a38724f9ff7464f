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
@click.option("--log", "log", default=None, metavar="URL|PROOF",
              help="Also prove the run (of a change: its latest run) included in the evidence "
              "server's transparency log at URL, or by PROOF, a log proof vqual pull saved "
              "(offline), and the log consistent with the last checkpoint seen.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --log URL: file (mode 0600) holding a reader token; default "
              "$VQUAL_SERVER_TOKEN.")
@trust_root_options
@state_dir_option
@domain_errors
def verify(bundle: Path, json_mode: bool, record: bool, log: str | None,
           token_file: Path | None, trust_root: Path | None, legacy_trust: bool,
           state_dir: Path | None) -> None:
    """Verify BUNDLE: signatures, hash chain, manifest and seal, and that run.end, the
    JUnit and the report agree with the records.

    BUNDLE may be a change directory (evidence/<change_id>): every run, the prev_run_seal
    chain between them and what is missing; the latest run is reported as not anchored.

    Signatures count only through a trust store that the pinned trust root vouches for
    (--trust-root, $VQUAL_TRUST_ROOT, /etc/vqual/trust-root.yaml), each record judged by the
    version in force at its time; --legacy-trust judges without a root, and says so.

    With --log, the run (of a change directory, the latest run, which no later run cites)
    must be included in the transparency log under a checkpoint signed by a log key, and
    the log consistent with the checkpoint this state directory saw last (first contact
    says so); each failure is one line: not included, log inconsistent, bad checkpoint
    signature.

    Exit 0 valid and complete; 1 invalid (naming the record, file or run, or the trust
    store the root does not vouch for; or the log check failed); 3 incomplete (a run that
    did not finish, naming the tests not executed).
    """
    from qualification.execution.verifying import verify_command

    state = resolve_state_dir(state_dir)
    text, payload, code = verify_command(bundle, state, record=record,
                                         trust_root=trust_root, legacy=legacy_trust)
    if log is not None:
        from qualification.review.pinned import choose_trust
        from qualification.server.logcheck import drop_anchored_warnings, verify_log

        trust = choose_trust(state, trust_root=trust_root, legacy=legacy_trust).store
        logged = verify_log(bundle, payload, log, state, trust, token_file)
        text = "\n".join([drop_anchored_warnings(text, payload, logged.anchored),
                          *logged.lines])
        payload["log"] = logged.to_json()
        if logged.problems:
            code = payload["exit_code"] = 1
    click.echo(json.dumps(payload, indent=2, sort_keys=True) if json_mode else text)
    sys.exit(code)
