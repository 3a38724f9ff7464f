"""``vqual state``: look after the state directory (``upgrade`` to a pinned trust root)."""

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


@click.group()
def state() -> None:
    """Look after the state directory."""


@state.command("upgrade")
@personal_key_options("trust-admin")
@click.option("--trust-root", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Pin file to write (or that already pins the key), outside the state "
              "directory; default $VQUAL_TRUST_ROOT, then /etc/vqual/trust-root.yaml.")
@click.option("--name", default="Trust root", show_default=True,
              help="Printed name of the key when it is added to trust.yaml.")
@state_dir_option
@domain_errors
def state_upgrade(key_file: Path, passphrase_fd: int | None, trust_root: Path | None,
                  name: str, state_dir: Path | None) -> None:
    """Move the state directory to the pinned-root rules (docs/upgrade.md): back it up,
    sign the trust store with the trust-admin KEY and pin that key outside it. A second run
    says there is nothing to do."""
    from qualification.review.signed import open_personal_signer
    from qualification.review.upgrade import upgrade_state
    from qualification.signing import Ed25519Signer

    state_path = resolve_state_dir(state_dir)
    signer = open_personal_signer(
        key_file, lambda: read_passphrase(passphrase_fd, "Key passphrase: ")
    )
    assert isinstance(signer, Ed25519Signer)
    result = upgrade_state(state_path, signer, pin=trust_root, name=name)
    for line in result.lines:
        click.echo(line)
