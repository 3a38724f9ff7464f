"""``vqual deviation``: approve and list the deviations of a change."""

from __future__ import annotations

from pathlib import Path

import click

from qualification.cli.shared import (
    domain_errors,
    personal_key_options,
    read_passphrase,
    state_dir_option,
    trust_root_options,
)
from qualification.state import resolve_state_dir


@click.group()
def deviation() -> None:
    """Deviations of a change (<state dir>/deviations/<change>/deviations.yaml) and waivers."""


@deviation.command("approve")
@click.argument("change_id")
@click.argument("deviation_id")
@click.option("--comment", default=None, help="Comment recorded with the waiver.")
@personal_key_options("approver")
@trust_root_options
@state_dir_option
@domain_errors
def deviation_approve(change_id: str, deviation_id: str, comment: str | None, key_file: Path,
                      passphrase_fd: int | None, trust_root: Path | None, legacy_trust: bool,
                      state_dir: Path | None) -> None:
    """Sign DEVIATION_ID of CHANGE_ID as approved: from then on it can waive a failed test.

    Only through a trust store the pinned trust root vouches for: legacy trust cannot approve.
    """
    from qualification.review.deviations import approve_deviation
    from qualification.review.pinned import approvable, choose_trust
    from qualification.review.signed import open_personal_signer

    state = resolve_state_dir(state_dir)
    choice = choose_trust(state, trust_root=trust_root, legacy=legacy_trust)
    approvable(choice)
    trust = choice.store
    signer = open_personal_signer(
        key_file, lambda: read_passphrase(passphrase_fd, "Key passphrase: ")
    )
    waiver = approve_deviation(state, change_id, deviation_id, signer, trust, comment)
    click.echo(f"approved deviation {deviation_id} of {change_id} by {waiver.name} "
               f"(expires {waiver.deviation.expiry}): {state / waiver.file}")
    click.echo(choice.describe())


@deviation.command("list")
@click.argument("change_id")
@trust_root_options
@state_dir_option
@domain_errors
def deviation_list(change_id: str, trust_root: Path | None, legacy_trust: bool,
                   state_dir: Path | None) -> None:
    """List CHANGE_ID's deviations with their status: approved, unsigned or expired.

    Waivers are judged through the pinned trust root, as `vqual verify` judges them; a trust
    store the root does not vouch for is refused (exit 1).
    """
    from qualification.evidence.records import utc_now
    from qualification.review.deviations import deviation_state
    from qualification.review.pinned import judged_trust

    state = resolve_state_dir(state_dir)
    choice = judged_trust(state, trust_root=trust_root, legacy=legacy_trust)
    found = deviation_state(state, change_id, choice.store)
    now = utc_now()
    if not found.deviations:
        click.echo(f"{change_id}: no deviations")
    for dev in found.deviations:
        waiver = found.waivers.get(dev.id)
        by = f" by {waiver.name} at {waiver.time}" if waiver else ""
        click.echo(f"{dev.id}  {dev.test_id} on {dev.target}  {found.status(dev, now)}{by}  "
                   f"expires {dev.expiry}  owner {dev.owner}")
    for reason in found.refused:
        click.echo(f"  not counted: {reason}")
    click.echo(choice.describe())


_server_option = click.option(
    "--server", "server_url", required=True, envvar="VQUAL_SERVER_URL",
    help="The evidence server's URL (or $VQUAL_SERVER_URL).")
_token_file_option = click.option(
    "--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="File (mode 0600) holding the service-account token; default $VQUAL_SERVER_TOKEN.")


@deviation.command("push")
@click.argument("change_id")
@click.option("--site", "sites", multiple=True,
              help="A site the deviations belong to (repeat; default: the sites of the "
              "change's runs the server holds).")
@_server_option
@_token_file_option
@state_dir_option
@domain_errors
def deviation_push(change_id: str, sites: tuple[str, ...], server_url: str,
                   token_file: Path | None, state_dir: Path | None) -> None:
    """Push CHANGE_ID's deviations and waivers to the evidence server, which judges them as
    vqual does, so an approver can approve them in the browser."""
    import json

    from qualification.errors import BadInputError
    from qualification.review.deviations import load_deviations
    from qualification.server.client import Client, read_token
    from qualification.server.deviation_files import read_layout

    state = resolve_state_dir(state_dir)
    found = load_deviations(state, change_id)
    if not found:
        raise BadInputError(f"{change_id} has no deviations in this state directory")
    body = {"change_id": change_id, "sites": list(sites),
            "deviations": [d.to_json() for d in found],
            "waivers": read_layout(state, change_id)}
    out = Client(server_url, read_token(token_file)).json(
        "POST", "/deviations", json.dumps(body).encode("utf-8"))
    click.echo(f"pushed deviations {', '.join(out['deviations'])} of {change_id} "
               f"(sites: {', '.join(out['sites']) or '-'}); new waivers: "
               f"{', '.join(out['waivers_added']) or '-'}")


@deviation.command("pull")
@click.argument("change_id")
@_server_option
@_token_file_option
@state_dir_option
@domain_errors
def deviation_pull(change_id: str, server_url: str, token_file: Path | None,
                   state_dir: Path | None) -> None:
    """Pull CHANGE_ID's waivers (approved in the browser or pushed) into this state
    directory, where they count offline as if vqual deviation approve had written them."""
    import urllib.parse

    from qualification.server.client import Client, read_token
    from qualification.server.deviation_files import pull_into

    state = resolve_state_dir(state_dir)
    got = Client(server_url, read_token(token_file)).json(
        "GET", f"/deviations/{urllib.parse.quote(change_id, safe='')}")
    for line in pull_into(state, change_id, got):
        click.echo(line)
