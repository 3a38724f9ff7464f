"""``vqual push`` and ``vqual void``: hand evidence to the evidence server, or void a pushed run."""

from __future__ import annotations

from pathlib import Path

import click

from qualification.cli.shared import (
    domain_errors,
    personal_key_options,
    read_passphrase,
    state_dir_option,
)
from qualification.state import resolve_state_dir

server_option = click.option(
    "--server", "server_url", required=True, envvar="VQUAL_SERVER_URL",
    help="The evidence server's URL (or $VQUAL_SERVER_URL).")
token_file_option = click.option(
    "--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="File (mode 0600) holding the service-account token; default $VQUAL_SERVER_TOKEN.")


@click.command()
@click.argument("target", type=click.Path(exists=True, file_okay=False, path_type=Path))
@server_option
@token_file_option
@domain_errors
def push(target: Path, server_url: str, token_file: Path | None) -> None:
    """Push TARGET, a sealed bundle or a change directory (every run, oldest first).

    The server verifies each run and refuses one that does not verify, saying why (exit 1).
    """
    from qualification.evidence.bundle import RECORDS
    from qualification.server.client import Client, read_token

    client = Client(server_url, read_token(token_file))
    runs = [target] if (target / RECORDS).exists() else sorted(
        p for p in target.iterdir() if p.is_dir() and (p / RECORDS).is_file())
    if not runs:
        from qualification.errors import BadInputError

        raise BadInputError(f"{target} is neither a bundle nor a change directory of bundles")
    for run in runs:
        out = client.push(run)
        extra = f", {out['appended']} record(s) after the seal" if out["appended"] else ""
        click.echo(f"{run}: {out['outcome']} as run {out['run_id']} (seal {out['seal'][:16]}"
                   f"{extra}); log entries {out['log_indexes'] or '-'}")


@click.command()
@click.argument("run")
@click.option("--reason", required=True, help="Why the pushed run is void (recorded, signed).")
@server_option
@token_file_option
@personal_key_options("signing")
@state_dir_option
@domain_errors
def void(run: str, reason: str, server_url: str, token_file: Path | None, key_file: Path,
         passphrase_fd: int | None, state_dir: Path | None) -> None:
    """Void RUN (run id or seal) on the server by a document you sign (approver or
    trust-admin); the run stays held, marked void, and the void is logged."""
    from qualification.review.signed import load_trust, open_personal_signer
    from qualification.server.client import Client, read_token
    from qualification.server.voiding import void_document

    client = Client(server_url, read_token(token_file))
    info = client.json("GET", f"/runs/{run}")
    signer = open_personal_signer(key_file, lambda: read_passphrase(passphrase_fd,
                                                                    "Key passphrase: "))
    envelope = void_document(signer, load_trust(resolve_state_dir(state_dir)), info, reason)
    out = client.void(info["run_id"], envelope)
    click.echo(f"voided run {out['run_id']} by {out['voided_by']}; log entry {out['log_index']}")
