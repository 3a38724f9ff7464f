"""``vqual export``: a verified bundle in a standard result format (SARIF, OHDF, in-toto)."""

from __future__ import annotations

from pathlib import Path

import click

from qualification.cli.shared import (
    domain_errors,
    passphrase_fd_option,
    read_passphrase,
    state_dir_option,
    trust_root_options,
)
from qualification.errors import BadInputError
from qualification.state import resolve_state_dir

FORMATS = ("sarif", "ohdf", "in-toto")  # qualification.reports.exports.FORMATS, kept light


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--format", "fmt", default=None, metavar="|".join(FORMATS),
              help="sarif (SARIF 2.1.0), ohdf (OASIS Heimdall Data Format) or in-toto (a "
              "Statement with the test-result predicate, signed as DSSE).")
@click.option("--inspector", is_flag=True,
              help="Write one folder an inspector verifies offline: BUNDLE is a change "
              "directory (evidence/<change_id>); its runs, the trust store and its history, "
              "the keys in securesystemslib's format (docs/inspector.md). Needs --output.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="File to write (atomically); default standard output.")
@click.option("--key", "key_file", type=click.Path(path_type=Path), default=None,
              help="in-toto only: the executor's signing key (Ed25519 PEM, mode 0600); "
              "default <state dir>/keys/executor.pem.")
@passphrase_fd_option()
@trust_root_options
@state_dir_option
@domain_errors
def export(bundle: Path, fmt: str | None, inspector: bool, output: Path | None,
           key_file: Path | None, passphrase_fd: int | None, trust_root: Path | None,
           legacy_trust: bool, state_dir: Path | None) -> None:
    """Export BUNDLE, verified first, as SARIF, OHDF or a signed in-toto attestation, or
    (--inspector) a change as one folder an inspector verifies offline.

    Exit 0 written; 1 the bundle does not verify; 2 bad input (unknown format, no bundle,
    unwritable output: nothing is written); 3 the run did not finish.
    """
    if inspector:
        _export_inspector(bundle, fmt, output, state_dir, trust_root, legacy_trust)
        return
    if fmt is None:
        raise BadInputError(f"give --format {'|'.join(FORMATS)}, or --inspector",
                            where="--format")
    if fmt not in FORMATS:
        raise BadInputError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}",
                            where="--format")
    if not bundle.is_dir():
        raise BadInputError(f"{bundle} is not an evidence bundle directory")
    if output is not None and not output.parent.is_dir():
        raise BadInputError(f"{output.parent} is not a directory", where="--output")

    from qualification.execution.recorder import open_signer_with
    from qualification.reports.exports import check_output, export_bundle, write_atomic
    from qualification.review.pinned import judged_trust
    from qualification.signing import Signer

    if output is not None:
        check_output(bundle, output)
    state = resolve_state_dir(state_dir)
    # judged as `vqual verify` judges: a store the pinned root does not vouch for is refused
    choice = judged_trust(state, trust_root=trust_root, legacy=legacy_trust)

    def signer() -> Signer:
        key = key_file or state / "keys" / "executor.pem"
        return open_signer_with(key, lambda: read_passphrase(passphrase_fd, "Key passphrase: "))[0]

    data = export_bundle(bundle, choice.store, fmt, signer)
    if output is None:
        click.echo(data.decode("utf-8"), nl=False)
    else:
        write_atomic(output, data)
        click.echo(f"vqual: wrote {fmt} export of {bundle} to {output}", err=True)
    click.echo(f"vqual: {choice.describe()}", err=True)


def _export_inspector(change: Path, fmt: str | None, output: Path | None,
                      state_dir: Path | None, trust_root: Path | None, legacy: bool) -> None:
    if fmt is not None:
        raise BadInputError("--inspector writes a folder, not a format; drop --format",
                            where="--format")
    if output is None:
        raise BadInputError("--inspector needs --output DIR (a new folder)", where="--output")
    from qualification.execution.inspecting import export_for_inspector

    files, root = export_for_inspector(change, output, resolve_state_dir(state_dir),
                                       trust_root=trust_root, legacy=legacy)
    click.echo(f"vqual: wrote the inspector folder {output} ({len(files)} files) for {change} "
               f"({root}); docs/inspector.md says how to verify it, with or without vqual",
               err=True)
