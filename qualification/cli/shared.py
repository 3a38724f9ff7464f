"""What every command shares: the error edge, the passphrase reader and the common options.

The error edge: every domain error becomes one line on stderr (``vqual: <where>: <what>``)
and its exit code (docs/formats.md), never a traceback; a reader that leaves stdout early
(``vqual ... | head``) ends the command quietly. The options: ``--state-dir`` for every
command, one set of run options (``--key``, ``--passphrase-fd``, ``--evidence-dir``,
``--run-id``, ``--initiator``) for the commands that write an evidence bundle, and the
vault options of the commands that read an inventory, and the personal key of the commands
that e-sign. Command modules import this module only, never
each other nor the package.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from qualification.errors import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    KeyFileError,
    VqualError,
    missing_extra,
)
from qualification.execution.collection import find_shipped
from qualification.execution.inventory import VaultOptions

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- the error edge
def _fail(error: VqualError) -> NoReturn:
    click.echo(f"vqual: {error.one_line()}", err=True)
    sys.exit(error.exit_code)


def domain_errors(func: F) -> F:
    """Turn domain errors into one line and an exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VqualError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("vqual: interrupted", err=True)
            sys.exit(EXIT_INCOMPLETE)
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            raise
        except BrokenPipeError:  # the reader left (`| head`): not a bug; main says nothing
            raise
        except Exception as exc:  # a bug, not bad input: say so on one line, keep the details
            missing = missing_extra(exc)
            if missing is not None:  # an optional dependency this site did not install
                _fail(missing)
            if os.environ.get("VQUAL_DEBUG") == "1":
                raise
            text = " ".join(f"{type(exc).__name__}: {exc}".split())
            click.echo(f"vqual: internal error: {text} (VQUAL_DEBUG=1 shows the traceback)",
                       err=True)
            sys.exit(EXIT_FAILED)

    return wrapper  # type: ignore[return-value]


#: Exit code when the reader of stdout goes away (`vqual ... | head`): 128 + SIGPIPE, as a
#: process killed by the signal reports in the shell; none of the documented codes.
EXIT_PIPE_CLOSED = 141


class QuietPipeGroup(click.Group):
    """The top-level group: a closed stdout ends the command quietly with EXIT_PIPE_CLOSED.

    The Python docs' pattern (signal module, "Note on SIGPIPE"): catch BrokenPipeError at the
    entry point and point stdout at /dev/null so the flush at shutdown cannot fail again.
    SIGPIPE keeps Python's default (ignored), so a closed socket stays an error, not a kill.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _quiet_when_pipe_closes():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with _quiet_when_pipe_closes():
            return super().invoke(ctx)


@contextlib.contextmanager
def _quiet_when_pipe_closes() -> Iterator[None]:
    try:
        try:
            yield
        finally:
            sys.stdout.flush()  # output still buffered fails here, not at shutdown
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # no real stdout (a test runner): nothing to redirect
            pass
        raise click.exceptions.Exit(EXIT_PIPE_CLOSED) from None


# --------------------------------------------------------------------------- passphrase
def read_passphrase(fd: int | None, prompt: str) -> bytes:
    """A passphrase from a file descriptor or the terminal; never from the command line."""
    if fd is not None:
        try:
            with os.fdopen(fd, "rb", closefd=False) as handle:
                return handle.readline().rstrip(b"\r\n")
        except OSError as exc:
            raise KeyFileError(f"cannot read the passphrase from fd {fd}: {exc.strerror}") from exc
    if not sys.stdin.isatty():
        raise KeyFileError(
            "the key is passphrase-protected: give --passphrase-fd N or run on a terminal"
        )
    return getpass.getpass(prompt).encode("utf-8")


# --------------------------------------------------------------------------- progress
def progress_printer(json_mode: bool) -> Callable[[Any], None]:
    """Print a qualify run's progress events (planned tests, each target's counts) to stderr."""

    def show(event: Any) -> None:
        if event.kind == "planned":
            click.echo(f"vqual: {event.message} tests planned", err=True)
        elif event.kind == "target":
            counts = "  ".join(f"{k} {v}" for k, v in sorted(event.counts.items()))
            click.echo(f"vqual:   {event.target}: {counts or 'no tests'}", err=True)
        elif event.kind == "unreachable":
            click.echo(f"vqual:   {event.target}: unreachable: {event.message}", err=True)
        elif event.kind == "failed":
            click.echo(f"vqual:   {event.target}: failed: {event.message}", err=True)

    return show


# --------------------------------------------------------------------------- options
def shipped_path(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """Click callback: the path as given, else the collection's shipped copy (specs/...)."""
    return None if value is None else find_shipped(value)


def existing_shipped_file(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """Click callback: like :func:`shipped_path`, and the result must exist."""
    path = find_shipped(value)
    if not path.exists():
        raise click.BadParameter(f"{value}: no such file or directory", ctx=ctx, param=param)
    return path


def _stacked(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    """One decorator applying ``options`` so that ``--help`` lists them in this order."""

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def state_dir_option(func: F) -> F:
    """``--state-dir``: the state directory (trust store, config, keys, approvals)."""
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="State directory (trust store, config); default $VQUAL_STATE_DIR or "
        "~/.local/share/vqual.",
    )(func)


def trust_root_options(func: F) -> F:
    """``--trust-root FILE`` (``trust_root``) and ``--legacy-trust`` (``legacy_trust``):
    the pin that vouches for the trust store, or judging without one (docs/review.md)."""
    return _stacked([
        click.option("--trust-root", type=click.Path(dir_okay=False, path_type=Path),
                     default=None,
                     help="Pin file of the trust root, outside the state directory (default "
                     "$VQUAL_TRUST_ROOT, then /etc/vqual/trust-root.yaml)."),
        click.option("--legacy-trust", is_flag=True,
                     help="Judge with an unpinned or unsigned trust store (also "
                     "VQUAL_LEGACY_TRUST=1); shown as 'legacy: no trust root'."),
    ])(func)


_PASSPHRASE_FD_HELP = "Read the key's passphrase from this file descriptor (else the terminal asks)."


def passphrase_fd_option(help_text: str = _PASSPHRASE_FD_HELP) -> Callable[[F], F]:
    """``--passphrase-fd N`` (parameter ``passphrase_fd``): never the passphrase itself."""
    return click.option("--passphrase-fd", type=int, default=None, help=help_text)


def run_options(*, run_id: bool = True) -> Callable[[F], F]:
    """The options of a command that writes an evidence bundle, in this order.

    ``--key`` (``key_file``, default None: the command takes ``<state dir>/keys/executor.pem``),
    ``--passphrase-fd`` (``passphrase_fd``), ``--evidence-dir`` (``evidence_dir``, default
    ``./evidence`` or ``$VQUAL_EVIDENCE_DIR``), ``--run-id`` (``run_id``; left out with
    ``run_id=False`` for a command whose run id is not chosen) and ``--initiator``
    (``initiator``, default None: the command takes ``$VQUAL_INITIATOR`` or the login user).
    """
    options: list[Callable[[F], F]] = [
        click.option("--key", "key_file", type=click.Path(path_type=Path), default=None,
                     envvar="VQUAL_KEY_FILE",
                     help="Executor's signing key (Ed25519 PEM, mode 0600; $VQUAL_KEY_FILE, "
                     "as an AAP credential sets it); default <state dir>/keys/executor.pem."),
        passphrase_fd_option(),
        click.option("--evidence-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=Path("evidence"), show_default=True, envvar="VQUAL_EVIDENCE_DIR",
                     help="Root of evidence bundles ($VQUAL_EVIDENCE_DIR)."),
    ]
    if run_id:
        options.append(click.option("--run-id", default=None,
                                    help="Run id (default: UTC time and a random suffix)."))
    options.append(click.option(
        "--initiator", default=None,
        help="Person or pipeline user who started the run (default: $VQUAL_INITIATOR or the "
        "login user).",
    ))
    return _stacked(options)


def personal_key_options(kind: str) -> Callable[[F], F]:
    """``--key`` (required, ``key_file``) and ``--passphrase-fd`` of a command that e-signs
    with a person's key; ``kind`` names the key in the help (signing, approver, trust-admin).
    """
    return _stacked([
        click.option("--key", "key_file", required=True, type=click.Path(path_type=Path),
                     help=f"Your passphrase-protected {kind} key (Ed25519 PEM, mode 0600)."),
        passphrase_fd_option(),
    ])


def vault_options(func: F) -> F:
    """Ansible's ``--vault-password-file`` and ``--vault-id`` for a command that reads an
    inventory, handed to it as one ``vault`` argument (:class:`VaultOptions`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, vault_password_files: tuple[Path, ...], vault_ids: tuple[str, ...],
                **kwargs: Any) -> Any:
        vault = VaultOptions(password_files=vault_password_files, ids=vault_ids)
        return func(*args, vault=vault, **kwargs)

    stacked: Callable[[F], F] = _stacked([
        click.option(
            "--vault-password-file", "vault_password_files", multiple=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Vault password file (or script) for vault-encrypted inventory values "
            "(repeatable); $ANSIBLE_VAULT_PASSWORD_FILE and ansible.cfg apply as well."),
        click.option(
            "--vault-id", "vault_ids", multiple=True, metavar="[LABEL@]SOURCE",
            help="Vault identity for vault-encrypted inventory values, as for "
            "ansible-playbook (repeatable)."),
    ])
    return stacked(wrapper)  # type: ignore[arg-type]


def push_options(func: F) -> F:
    """``--push URL`` (``push_url``; $VQUAL_SERVER_URL), ``--no-push`` and ``--token-file``:
    push the run to the evidence server when it is sealed (docs/server.md)."""
    return _stacked([
        click.option("--push", "push_url", default=None, envvar="VQUAL_SERVER_URL",
                     metavar="URL",
                     help="Push the run to this evidence server when it is sealed (default "
                     "$VQUAL_SERVER_URL, then push_server in the state's config.yaml); the "
                     "token as vqual push takes it."),
        click.option("--no-push", is_flag=True, help="Do not push, whatever is configured."),
        click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="With a push: file (mode 0600) holding a pusher token; "
                     "default $VQUAL_SERVER_TOKEN(_FILE)."),
    ])(func)


def push_on_seal(state: Path, push_url: str | None, no_push: bool, token_file: Path | None,
                 bundle: Path | None) -> dict[str, Any] | None:
    """Push a sealed run (``bundle``; None: nothing was sealed) to the configured server.

    Returns the push's JSON (None: no server configured or nothing sealed; ``message`` is
    its one line); a failed push leaves the run sealed here and does not raise.
    """
    from qualification.config import load_config

    url = None if no_push or bundle is None else push_url or load_config(state).push_server
    if url is None or bundle is None:
        return None
    from qualification.server.client import push_sealed

    return push_sealed(bundle, url, token_file).to_json()


def forks_option(func: F) -> F:
    """``--forks N`` (``forks``) for a command that runs a playbook: Ansible's parallel
    workers; by default ``$ANSIBLE_FORKS``, else chosen from this machine's CPUs and memory
    (docs/performance.md, "Sizing forks")."""
    return click.option(
        "--forks", type=click.IntRange(min=1), default=None, metavar="N",
        help="Hosts worked on at once (Ansible forks); default $ANSIBLE_FORKS, else 4 per "
        "CPU within 5-50, bounded by memory and the inventory's hosts.")(func)


def playbook_run_options(schema: str, change_help: str) -> Callable[[F], F]:
    """The options a command that runs a playbook into an evidence bundle shares after its
    own, in this order: ``-c/--change`` (``change_id``, ``change_help`` says whose), the run
    options (:func:`run_options`), ``--json`` (``json_mode``; one document of ``schema``),
    ``--forks``, the vault options (``vault``) and ``--state-dir``."""
    return _stacked([
        click.option("-c", "--change", "change_id", default=None,
                     help=f"{change_help} (required), e.g. CHG0012345."),
        run_options(),
        click.option("--json", "json_mode", is_flag=True,
                     help=f"Print one JSON document (schema {schema}) on stdout."),
        forks_option,
        vault_options,
        state_dir_option,
    ])


def run_identity(state: Path, key_file: Path | None, passphrase_fd: int | None,
                 initiator: str | None) -> dict[str, Any]:
    """The signing key, its passphrase reader, the state directory and the initiator of a run,
    as the run requests take them (``key_file``, ``passphrase_reader``, ``state_dir``,
    ``initiator``), from the run options' values and their defaults."""
    return {
        "key_file": key_file or state / "keys" / "executor.pem",
        "passphrase_reader": lambda: read_passphrase(passphrase_fd, "Key passphrase: "),
        "state_dir": state,
        "initiator": initiator or os.environ.get("VQUAL_INITIATOR") or getpass.getuser(),
    }


def echo_summary(summary: Any, json_mode: bool) -> NoReturn:
    """Print a run's summary (``to_json`` or ``to_text``) and exit with its exit code."""
    if json_mode:
        click.echo(json.dumps(summary.to_json(), indent=2, sort_keys=True))
    else:
        click.echo(summary.to_text())
    sys.exit(summary.exit_code)
