"""``vqual trust``: sign and check versions of the trust store."""

from __future__ import annotations

from pathlib import Path

import click

from qualification.cli.shared import (
    domain_errors,
    personal_key_options,
    read_passphrase,
    state_dir_option,
)
from qualification.state import resolve_state_dir, trust_path


@click.group()
def trust() -> None:
    """Sign and check versions of the trust store (trust.yaml)."""


@trust.command("sign")
@personal_key_options("trust-admin")
@click.option("--comment", default=None, help="Why the trust store changed.")
@state_dir_option
@domain_errors
def trust_sign(key_file: Path, passphrase_fd: int | None, comment: str | None,
               state_dir: Path | None) -> None:
    """Sign the current trust.yaml as its next version (a trust-admin of the previous one)."""
    from qualification.review.signed import open_personal_signer
    from qualification.review.trust_history import sign_trust_store

    signer = open_personal_signer(
        key_file, lambda: read_passphrase(passphrase_fd, "Key passphrase: ")
    )
    version = sign_trust_store(resolve_state_dir(state_dir), signer, comment)
    click.echo(f"trust store version {version.version} (sha256 {version.digest}) signed by "
               f"{version.signed_by}")
    for change in version.changes:
        click.echo(f"  {change}")


@trust.command("status")
@state_dir_option
@domain_errors
def trust_status(state_dir: Path | None) -> None:
    """Check the trust store against its signed history and list the versions."""
    from qualification.review.trust_history import check_history, history

    state = resolve_state_dir(state_dir)
    store, current = check_history(state)
    if current is None:
        click.echo(f"{trust_path(state)}: not signed (sha256 {store.digest})")
        return
    click.echo(f"{trust_path(state)}: signed version {current.version} (sha256 {store.digest})")
    for version in history(state):
        click.echo(f"  v{version.version} {version.time} by {version.signed_by}: "
                   f"{'; '.join(version.changes) or 'no key changes'}")
