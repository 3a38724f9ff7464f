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


@trust.command("add-key")
@click.option("--public", "public", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Public key (PEM), e.g. a .pub of `vqual keys create` or "
              "`vqual serve user add`.")
@click.option("--name", required=True, help="Printed name shown on signatures.")
@click.option("--identity", required=True, help="E-mail or account of the key's owner.")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["executor", "reviewer", "approver", "trust-admin", "log"]),
              help="Role(s) granted (repeatable).")
@click.option("--valid-days", type=click.IntRange(1), default=365, show_default=True)
@state_dir_option
@domain_errors
def trust_add_key(public: Path, name: str, identity: str, roles: tuple[str, ...],
                  valid_days: int, state_dir: Path | None) -> None:
    """Add someone's public key to trust.yaml; it counts once `vqual trust sign` signs it."""
    from datetime import timedelta

    from qualification.signing import TrustStore
    from qualification.timeutil import utc_now

    path = trust_path(resolve_state_dir(state_dir))
    store = TrustStore.load(path)
    now = utc_now()
    key = store.add_key(public_key_pem=public.read_text(encoding="utf-8"), name=name,
                        identity=identity, roles=list(roles),
                        valid_from=now - timedelta(minutes=5),
                        valid_until=now + timedelta(days=valid_days))
    store.save()
    click.echo(f"added {key.keyid[:16]} ({name}: {', '.join(roles)}) to {path}; it counts "
               "once a trust-admin signs this version (vqual trust sign)")


@trust.command("rotate-root")
@click.option("--trust-root", "pin", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The pin file to rotate (outside the state directory).")
@personal_key_options("current root's")
@click.option("--new-public", required=True, type=click.Path(exists=True, path_type=Path),
              help="Public key (PEM) of the new root, e.g. the .pub of `vqual keys create`.")
@click.option("--name", default="Trust root", show_default=True,
              help="Printed name of the new root.")
@domain_errors
def trust_rotate_root(pin: Path, key_file: Path, passphrase_fd: int | None, new_public: Path,
                      name: str) -> None:
    """Hand the trust root over to a new key from now on, endorsed by the current root: the
    old root's validity ends, so it can sign no later trust store version."""
    from datetime import UTC, datetime

    from qualification.review.signed import open_personal_signer
    from qualification.signing.trust_root import parse_pin, pin_yaml, rotate, write_pin

    roots = parse_pin(pin.read_bytes(), str(pin))
    signer = open_personal_signer(
        key_file, lambda: read_passphrase(passphrase_fd, "Key passphrase: ")
    )
    rotated = rotate(roots, signer, new_public.read_text(encoding="utf-8"), name,
                     datetime.now(UTC))
    write_pin(pin, pin_yaml(rotated))
    click.echo(f"{pin}: root {rotated[-1].keyid[:16]} ({name}) from "
               f"{rotated[-1].period()}, endorsed by {rotated[-2].keyid[:16]}")


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


@trust.group("tsa")
def trust_tsa() -> None:
    """The Time-Stamp Authority trust.yaml names (its `tsa` section, docs/formats.md).

    A change counts once a trust-admin signs that version with `vqual trust sign`, as for
    keys; until then commands judging through the pinned root refuse the store.
    """


@trust_tsa.command("add")
@click.option("--name", required=True, help="What records, reports and verify call the TSA.")
@click.option("--url", required=True, help="Where tokens are asked for (RFC 3161 over HTTP(S)).")
@click.option("--roots", "roots", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="PEM file of the TSA's trusted root certificate(s).")
@click.option("--policy", default=None, help="The TSA policy OID its tokens must name "
              "(default: any).")
@click.option("--valid-from", "valid_from", default=None, metavar="TIME",
              help="From this UTC time (ISO 8601) on, seals and signatures must carry its "
              "tokens (default: now).")
@click.option("--replace", is_flag=True, help="Replace the TSA the store already names.")
@state_dir_option
@domain_errors
def trust_tsa_add(name: str, url: str, roots: Path, policy: str | None,
                  valid_from: str | None, replace: bool, state_dir: Path | None) -> None:
    """Name the TSA in trust.yaml; it counts once `vqual trust sign` signs it."""
    from qualification.errors import BadInputError, TrustError
    from qualification.signing import TrustStore
    from qualification.signing.trusted_tsa import new_tsa
    from qualification.timeutil import parse_utc, utc_now

    path = trust_path(resolve_state_dir(state_dir))
    store = TrustStore.load(path)
    if store.tsa is not None and not replace:
        raise BadInputError(f"the trust store already names the TSA {store.tsa.name} "
                            f"({store.tsa.url}); give --replace, or remove it first",
                            where=str(path))
    try:
        since = parse_utc(valid_from) if valid_from else utc_now()
    except ValueError:
        raise BadInputError(f"{valid_from!r} is not an ISO 8601 time",
                            where="--valid-from") from None
    try:
        store.tsa = new_tsa(name, url, roots.read_text(encoding="utf-8"), policy, since)
    except (TrustError, UnicodeDecodeError) as exc:
        text = exc.one_line() if isinstance(exc, TrustError) else f"{roots}: not PEM text"
        raise BadInputError(text) from None
    store.save()
    click.echo(f"named the TSA {name} ({url}) in {path}; it counts once a trust-admin signs "
               "this version (vqual trust sign)")


@trust_tsa.command("remove")
@state_dir_option
@domain_errors
def trust_tsa_remove(state_dir: Path | None) -> None:
    """Remove the TSA from trust.yaml; it counts once `vqual trust sign` signs it."""
    from qualification.errors import BadInputError
    from qualification.signing import TrustStore

    path = trust_path(resolve_state_dir(state_dir))
    store = TrustStore.load(path)
    if store.tsa is None:
        raise BadInputError("the trust store names no TSA", where=str(path))
    old, store.tsa = store.tsa, None
    store.save()
    click.echo(f"removed the TSA {old.name} ({old.url}) from {path}; it counts once a "
               "trust-admin signs this version (vqual trust sign)")


@trust_tsa.command("list")
@state_dir_option
@domain_errors
def trust_tsa_list(state_dir: Path | None) -> None:
    """Show the TSA trust.yaml names and whether that is its signed version."""
    from qualification.review.trust_history import history
    from qualification.signing import TrustStore

    state = resolve_state_dir(state_dir)
    store = TrustStore.load(trust_path(state))
    click.echo("\n".join(store.tsa.describe()) if store.tsa is not None
               else "no TSA: runs say 'no trusted time'")
    versions = history(state)
    if versions and versions[-1].digest == store.digest:
        click.echo(f"as in signed trust store version {versions[-1].version}")
    else:
        click.echo("not signed: an unsigned change until a trust-admin runs `vqual trust sign`")
