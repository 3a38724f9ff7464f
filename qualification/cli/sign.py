"""``vqual sign``: e-sign a sealed evidence bundle, or approve a spec before it runs."""

from __future__ import annotations

from pathlib import Path

import click

from qualification.cli.shared import (
    domain_errors,
    existing_shipped_file,
    personal_key_options,
    read_passphrase,
    state_dir_option,
    trust_root_options,
)
from qualification.errors import BadInputError
from qualification.state import resolve_state_dir


@click.command()
@click.argument("target", type=click.Path(path_type=Path), callback=existing_shipped_file)
@click.option("--meaning", required=True, type=click.Choice(["reviewed", "approved", "rejected"]),
              help="What the signature means; a spec can only be approved.")
@click.option("--comment", default=None, help="Comment recorded with the signature.")
@personal_key_options("signing")
@trust_root_options
@state_dir_option
@domain_errors
def sign(target: Path, meaning: str, comment: str | None, key_file: Path,
         passphrase_fd: int | None, trust_root: Path | None, legacy_trust: bool,
         state_dir: Path | None) -> None:
    """E-sign TARGET: a sealed evidence bundle, or a spec file to approve it before it runs.

    Only through a trust store the pinned trust root vouches for: legacy trust cannot sign.
    """
    from qualification.review.pinned import approvable, choose_trust
    from qualification.review.signed import open_personal_signer

    state = resolve_state_dir(state_dir)
    choice = choose_trust(state, trust_root=trust_root, legacy=legacy_trust)
    approvable(choice)
    trust = choice.store
    click.echo(choice.describe())
    signer = open_personal_signer(
        key_file, lambda: read_passphrase(passphrase_fd, "Key passphrase: ")
    )
    if target.is_dir():
        from qualification.review.esign import sign_bundle

        done = sign_bundle(target, signer, trust, meaning, comment)
        click.echo(f"signed {done.meaning} by {done.name} ({done.keyid[:16]}): {target} "
                   f"seq {done.seq}, seal {done.seal}")
        return
    if meaning != "approved":
        raise BadInputError(f"a spec can only be approved, not {meaning}", where=str(target))
    from qualification.review.approval import approve_protocol

    approval = approve_protocol(target, signer, trust, state, comment)
    click.echo(f"approved {target} (sha256 {approval.spec_digest}) by {approval.name}: "
               f"{state / approval.file}")
