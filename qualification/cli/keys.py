"""``vqual keys``: create signing keys and list the trust store."""

from __future__ import annotations

from pathlib import Path

import click

from qualification.cli.shared import (
    domain_errors,
    passphrase_fd_option,
    read_passphrase,
    state_dir_option,
)
from qualification.errors import KeyFileError
from qualification.state import resolve_state_dir, trust_path


@click.group()
def keys() -> None:
    """Create signing keys and list the trust store."""


@keys.command("create")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Key file to write (default <state dir>/keys/<role>.pem for a service key).")
@click.option("--name", required=True, help="Printed name shown on signatures.")
@click.option("--identity", default=None, help="E-mail or account of the key's owner.")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["executor", "reviewer", "approver", "trust-admin", "log"]),
              help="Role(s) granted in the trust store (repeatable).")
@click.option("--service", is_flag=True,
              help="A service key (CI executor): no passphrase. Personal keys need one.")
@click.option("--throwaway", is_flag=True,
              help="A demo key: marked throwaway in the trust store, never for GxP use.")
@passphrase_fd_option("Read the new key's passphrase from this file descriptor.")
@click.option("--valid-days", type=int, default=365, show_default=True)
@state_dir_option
@domain_errors
def keys_create(
    out: Path | None, name: str, identity: str | None, roles: tuple[str, ...], service: bool,
    throwaway: bool, passphrase_fd: int | None, valid_days: int, state_dir: Path | None,
) -> None:
    """Create an Ed25519 key (mode 0600) and add its public key to the trust store."""
    from qualification.execution.keys import create_trusted_key

    state = resolve_state_dir(state_dir)
    passphrase = None
    if not (service or throwaway):
        passphrase = read_passphrase(passphrase_fd, "New key passphrase: ")
        if len(passphrase) < 8:
            raise KeyFileError("a personal key's passphrase needs at least 8 characters")
    path = out or state / "keys" / f"{roles[0]}.pem"
    keyid = create_trusted_key(
        path, state, name=name, identity=identity or name, roles=list(roles),
        passphrase=passphrase, throwaway=throwaway, valid_days=valid_days,
    )
    click.echo(f"created {path} (key id {keyid}), trusted as {', '.join(roles)} in "
               f"{trust_path(state)}")


@keys.command("list")
@state_dir_option
@domain_errors
def keys_list(state_dir: Path | None) -> None:
    """List the keys in the trust store with their roles and validity."""
    from qualification.execution.keys import describe_trust_store

    click.echo(describe_trust_store(resolve_state_dir(state_dir)))
