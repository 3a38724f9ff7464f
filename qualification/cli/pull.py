"""``vqual pull``: fetch a run from the evidence server with every signature it holds."""

from __future__ import annotations

from pathlib import Path

import click

from qualification.cli.shared import domain_errors, state_dir_option
from qualification.state import resolve_state_dir


@click.command()
@click.argument("run")
@click.option("--server", "server_url", required=True, envvar="VQUAL_SERVER_URL",
              help="The evidence server's URL (or $VQUAL_SERVER_URL).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File (mode 0600) holding the service-account token; default "
              "$VQUAL_SERVER_TOKEN.")
@click.option("-o", "--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Evidence root to write into: OUT/<change>/<run>.")
@state_dir_option
@domain_errors
def pull(run: str, server_url: str, token_file: Path | None, out_dir: Path,
         state_dir: Path | None) -> None:
    """Pull RUN (a run id or a seal) into OUT/<change>/<run>, and the log's proofs for it
    (the signed checkpoint, its seal's and signatures' inclusion, consistency from the last
    checkpoint seen) into OUT/<change>/<run>.log.json; check both, offline too, with
    vqual verify OUT/<change>/<run> --log OUT/<change>/<run>.log.json."""
    from qualification.server.client import Client, read_token
    from qualification.server.logcheck import PROOF_SUFFIX, fetch_proof, save_proof

    client = Client(server_url, read_token(token_file))
    info, target = client.pull(run, out_dir)
    click.echo(f"{target}: run {info['run_id']} seal {info['seal'][:16]}, {info['lines']} records")
    proof_file = target.with_name(target.name + PROOF_SUFFIX)
    save_proof(fetch_proof(client, target, resolve_state_dir(state_dir)), proof_file)
    click.echo(f"{proof_file}: the log's proofs for it")
    if info.get("voided"):
        click.echo(f"warning: run {info['run_id']} was voided by {info['voided']['by']} at "
                   f"{info['voided']['time']}", err=True)
