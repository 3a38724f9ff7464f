"""The ``vqual`` command: parse arguments, call the core, map errors to exit codes.

Every domain error becomes one line on stderr (``vqual: <where>: <what>``) and its exit code
(docs/formats.md); nothing here holds logic of its own.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from qualification import __version__
from qualification.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    BadInputError,
    KeyFileError,
    VqualError,
)
from qualification.execution.collection import find_shipped
from qualification.state import resolve_state_dir, trust_path

F = TypeVar("F", bound=Callable[..., Any])


def _fail(error: VqualError) -> NoReturn:
    click.echo(f"vqual: {error.one_line()}", err=True)
    sys.exit(error.exit_code)


def domain_errors(func: F) -> F:
    """Turn domain errors into one line and an exit code; never a traceback."""
    import functools

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
            if os.environ.get("VQUAL_DEBUG") == "1":
                raise
            text = " ".join(f"{type(exc).__name__}: {exc}".split())
            click.echo(f"vqual: internal error: {text} (VQUAL_DEBUG=1 shows the traceback)",
                       err=True)
            sys.exit(EXIT_FAILED)

    return wrapper  # type: ignore[return-value]


def _state_dir_option(func: F) -> F:
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="State directory (trust store, config); default $VQUAL_STATE_DIR or "
        "~/.local/share/vqual.",
    )(func)


def _read_passphrase(fd: int | None, prompt: str) -> bytes:
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


#: Exit code when the reader of stdout goes away (`vqual ... | head`): 128 + SIGPIPE, as a
#: process killed by the signal reports in the shell; none of the documented codes.
EXIT_PIPE_CLOSED = 141


class _QuietPipeGroup(click.Group):
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


@click.group(cls=_QuietPipeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vqual")
def main() -> None:
    """vqual: IQ/OQ qualification of virtual infrastructure with signed evidence.

    Exit codes: 0 passed/valid, 1 failed or invalid, 2 bad input (nothing executed),
    3 incomplete, 4 platform or connection error.
    """


# --------------------------------------------------------------------------- qualify
def _check_playbook(name: str) -> None:
    """A playbook name for ``--playbook``: a file in the collection's ``playbooks/``."""
    from qualification.execution.collection import find_collection_root

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.ya?ml", name):
        raise BadInputError(
            f"--playbook {name!r}: give a file name from playbooks/, e.g. kvm_cluster.yml"
        )
    if not (find_collection_root() / "playbooks" / name).is_file():
        raise BadInputError(f"--playbook {name}: no such playbook in the collection's playbooks/")


def _progress_printer(json_mode: bool) -> Callable[[Any], None]:
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


@main.command()
@click.option("-i", "--inventory", required=True, type=click.Path(exists=True, path_type=Path),
              help="Ansible inventory (file or directory).")
@click.option("-s", "--spec", required=True, type=click.Path(path_type=Path),
              callback=lambda _ctx, _param, value: find_shipped(value),
              help="Spec (protocol) file, apiVersion vqual/v1; a shipped one also by name "
              "(linux-virt-host) or as specs/<name>.yaml from anywhere.")
@click.option("-c", "--change", "change_id", default=None,
              help="Change id the run belongs to (required), e.g. CHG0012345.")
@click.option("--key", "key_file", type=click.Path(path_type=Path), default=None,
              help="Executor's signing key (Ed25519 PEM, mode 0600); default "
              "<state dir>/keys/executor.pem.")
@click.option("--passphrase-fd", type=int, default=None,
              help="Read the key's passphrase from this file descriptor.")
@click.option("--evidence-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("evidence"), show_default=True, envvar="VQUAL_EVIDENCE_DIR",
              help="Root of evidence bundles ($VQUAL_EVIDENCE_DIR).")
@click.option("--run-id", default=None, help="Run id (default: UTC time and a random suffix).")
@click.option("--limit", default=None, help="Only these hosts (Ansible limit pattern).")
@click.option("--test", "tests", multiple=True, help="Only this test id (repeatable).")
@click.option("--initiator", default=None,
              help="Person or pipeline user who started the run (default: login user).")
@click.option("--check", "check_mode", is_flag=True,
              help="Ansible check mode: IQ reads only; OQ steps are not executed.")
@click.option("--json", "json_mode", is_flag=True,
              help="Print one JSON document (schema vqual.qualify/v1) on stdout.")
@click.option("--allow-empty", is_flag=True,
              help="Record a run even if no test applies (else exit 2); to measure start-up.")
@click.option("--playbook", default="qualify.yml", show_default=True,
              help="Playbook of the collection's playbooks/ to run, e.g. kvm_cluster.yml "
              "(its host group; -s still names the spec).")
@_state_dir_option
@domain_errors
def qualify(
    inventory: Path, spec: Path, change_id: str | None, key_file: Path | None,
    passphrase_fd: int | None, evidence_dir: Path, run_id: str | None, limit: str | None,
    tests: tuple[str, ...], initiator: str | None, check_mode: bool, json_mode: bool,
    allow_empty: bool, playbook: str, state_dir: Path | None,
) -> None:
    """Qualify the inventory's targets against SPEC and write a signed evidence bundle."""
    from qualification.execution.qualify import QualifyRequest, run_qualify

    _check_playbook(playbook)
    state = resolve_state_dir(state_dir)
    request = QualifyRequest(
        inventory=inventory, spec=spec, change_id=change_id,
        key_file=key_file or state / "keys" / "executor.pem",
        passphrase_reader=lambda: _read_passphrase(passphrase_fd, "Key passphrase: "),
        evidence_dir=evidence_dir, run_id=run_id, limit=limit, tests=list(tests) or None,
        initiator=initiator or os.environ.get("VQUAL_INITIATOR") or getpass.getuser(),
        check_mode=check_mode, state_dir=state,
        progress=_progress_printer(json_mode),
        extravars={"vqual_allow_empty": True} if allow_empty else {},
        playbook=playbook,
    )
    summary = run_qualify(request)
    if json_mode:
        click.echo(json.dumps(summary.to_json(), indent=2, sort_keys=True))
    else:
        click.echo(summary.to_text())
    sys.exit(summary.exit_code)


# --------------------------------------------------------------------------- verify
@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--json", "json_mode", is_flag=True, help="Print the result as JSON.")
@click.option("--record", is_flag=True,
              help="Append a failed verification to the audit log in the state directory.")
@_state_dir_option
@domain_errors
def verify(bundle: Path, json_mode: bool, record: bool, state_dir: Path | None) -> None:
    """Verify BUNDLE: signatures, hash chain, manifest and seal.

    Exit 0 valid and complete; 1 invalid (naming the record or file); 3 incomplete (a run
    that did not finish, naming the tests not executed).
    """
    from qualification.execution.verifying import verify_command

    text, payload, code = verify_command(bundle, resolve_state_dir(state_dir), record=record)
    click.echo(json.dumps(payload, indent=2, sort_keys=True) if json_mode else text)
    sys.exit(code)


# --------------------------------------------------------------------------- cleanup
@main.command()
@click.argument("run_id")
@click.option("-i", "--inventory", required=True, type=click.Path(path_type=Path),
              help="Inventory; hosts with vqual_libvirt_uri or vqual_vsphere_host are cleaned.")
@click.option("--json", "json_mode", is_flag=True, help="Print the result as JSON.")
@_state_dir_option
@domain_errors
def cleanup(run_id: str, inventory: Path, json_mode: bool, state_dir: Path | None) -> None:
    """Remove every throwaway VM run RUN_ID made, also after a crash (found by its tag),
    and the libvirt maintenance markers it set.

    Exit 0 when nothing of the run is left; 4 when a host could not be reached or something
    could not be removed.
    """
    from qualification.cleanup import cleanup as run_cleanup
    from qualification.errors import EXIT_PLATFORM

    result = run_cleanup(inventory, run_id, resolve_state_dir(state_dir))
    if json_mode:
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        for target in result.targets:
            removed = ", ".join(target.removed) or "nothing of this run"
            click.echo(f"{target.endpoint} ({', '.join(target.hosts)}): removed {removed}")
            for problem in target.errors + [f"file left: {f}" for f in target.files_left]:
                click.echo(f"vqual: {target.endpoint}: {problem}", err=True)
    sys.exit(0 if result.ok else EXIT_PLATFORM)


# --------------------------------------------------------------------------- keys
@main.group()
def keys() -> None:
    """Create signing keys and list the trust store."""


@keys.command("create")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Key file to write (default <state dir>/keys/<role>.pem for a service key).")
@click.option("--name", required=True, help="Printed name shown on signatures.")
@click.option("--identity", default=None, help="E-mail or account of the key's owner.")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["executor", "reviewer", "approver", "trust-admin"]),
              help="Role(s) granted in the trust store (repeatable).")
@click.option("--service", is_flag=True,
              help="A service key (CI executor): no passphrase. Personal keys need one.")
@click.option("--throwaway", is_flag=True,
              help="A demo key: marked throwaway in the trust store, never for GxP use.")
@click.option("--passphrase-fd", type=int, default=None,
              help="Read the new key's passphrase from this file descriptor.")
@click.option("--valid-days", type=int, default=365, show_default=True)
@_state_dir_option
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
        passphrase = _read_passphrase(passphrase_fd, "New key passphrase: ")
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
@_state_dir_option
@domain_errors
def keys_list(state_dir: Path | None) -> None:
    """List the keys in the trust store with their roles and validity."""
    from qualification.execution.keys import describe_trust_store

    click.echo(describe_trust_store(resolve_state_dir(state_dir)))


# --------------------------------------------------------------------------- report
@main.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the rendering (default BUNDLE/views, outside the sealed set).")
@click.option("--pdf", is_flag=True, help="Also write a PDF.")
@_state_dir_option
@domain_errors
def report(bundle: Path, out: Path | None, pdf: bool, state_dir: Path | None) -> None:
    """Render a current view of BUNDLE's report, with signatures added since it was sealed."""
    from qualification.execution.verifying import render_current_report

    for path in render_current_report(bundle, resolve_state_dir(state_dir), out=out, pdf=pdf):
        click.echo(str(path))


# --------------------------------------------------------------------------- sign
@main.command()
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--meaning", required=True, type=click.Choice(["reviewed", "approved", "rejected"]),
              help="What the signature means; a spec can only be approved.")
@click.option("--comment", default=None, help="Comment recorded with the signature.")
@click.option("--key", "key_file", required=True, type=click.Path(path_type=Path),
              help="Your passphrase-protected signing key (Ed25519 PEM, mode 0600).")
@click.option("--passphrase-fd", type=int, default=None,
              help="Read the key's passphrase from this file descriptor (else the terminal asks).")
@_state_dir_option
@domain_errors
def sign(target: Path, meaning: str, comment: str | None, key_file: Path,
         passphrase_fd: int | None, state_dir: Path | None) -> None:
    """E-sign TARGET: a sealed evidence bundle, or a spec file to approve it before it runs."""
    from qualification.review.signed import load_trust, open_personal_signer

    state = resolve_state_dir(state_dir)
    trust = load_trust(state)
    signer = open_personal_signer(
        key_file, lambda: _read_passphrase(passphrase_fd, "Key passphrase: ")
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


# --------------------------------------------------------------------------- deviation
@main.group()
def deviation() -> None:
    """Deviations of a change (<state dir>/deviations/<change>/deviations.yaml) and waivers."""


@deviation.command("approve")
@click.argument("change_id")
@click.argument("deviation_id")
@click.option("--comment", default=None, help="Comment recorded with the waiver.")
@click.option("--key", "key_file", required=True, type=click.Path(path_type=Path),
              help="Your passphrase-protected approver key (Ed25519 PEM, mode 0600).")
@click.option("--passphrase-fd", type=int, default=None,
              help="Read the key's passphrase from this file descriptor (else the terminal asks).")
@_state_dir_option
@domain_errors
def deviation_approve(change_id: str, deviation_id: str, comment: str | None, key_file: Path,
                      passphrase_fd: int | None, state_dir: Path | None) -> None:
    """Sign DEVIATION_ID of CHANGE_ID as approved: from then on it can waive a failed test."""
    from qualification.review.deviations import approve_deviation
    from qualification.review.signed import load_trust, open_personal_signer

    state = resolve_state_dir(state_dir)
    trust = load_trust(state)
    signer = open_personal_signer(
        key_file, lambda: _read_passphrase(passphrase_fd, "Key passphrase: ")
    )
    waiver = approve_deviation(state, change_id, deviation_id, signer, trust, comment)
    click.echo(f"approved deviation {deviation_id} of {change_id} by {waiver.name} "
               f"(expires {waiver.deviation.expiry}): {state / waiver.file}")


@deviation.command("list")
@click.argument("change_id")
@_state_dir_option
@domain_errors
def deviation_list(change_id: str, state_dir: Path | None) -> None:
    """List CHANGE_ID's deviations with their status: approved, unsigned or expired."""
    from qualification.evidence.records import utc_now
    from qualification.review.deviations import deviation_state
    from qualification.review.signed import load_trust

    state = resolve_state_dir(state_dir)
    found = deviation_state(state, change_id, load_trust(state))
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


# --------------------------------------------------------------------------- audit
@main.command()
@click.option("--since", required=True,
              help="From this UTC date or time on (YYYY-MM-DD or ISO 8601).")
@click.option("--until", default=None, help="Up to (not including) this UTC date or time.")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text",
              show_default=True, help="Output format.")
@click.option("--evidence-dir", "evidence_dirs", multiple=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Root of evidence bundles (repeatable; default $VQUAL_EVIDENCE_DIR or "
              "./evidence if it exists).")
@_state_dir_option
@domain_errors
def audit(since: str, until: str | None, fmt: str, evidence_dirs: tuple[Path, ...],
          state_dir: Path | None) -> None:
    """List who did what and when, across bundles and the state directory, for QA review."""
    from qualification.review.audit_trail import collect_events, parse_since, render_events

    roots = list(evidence_dirs)
    if not roots:
        default = Path(os.environ.get("VQUAL_EVIDENCE_DIR") or "evidence")
        roots = [default] if default.is_dir() else []
    start = parse_since(since)
    end = parse_since(until, "--until") if until else None
    events = collect_events(resolve_state_dir(state_dir), roots, start, end)
    click.echo(render_events(events, fmt, start, end), nl=fmt != "csv")


# --------------------------------------------------------------------------- selftest
@main.command()
@click.option("-c", "--change", "change_id", required=True,
              help="Change id the selftest run is recorded under (e.g. the installation's).")
@click.option("--key", "key_file", type=click.Path(path_type=Path), default=None,
              help="Executor's signing key; default <state dir>/keys/executor.pem.")
@click.option("--passphrase-fd", type=int, default=None,
              help="Read the key's passphrase from this file descriptor.")
@click.option("--evidence-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("evidence"), show_default=True, envvar="VQUAL_EVIDENCE_DIR",
              help="Root of evidence bundles ($VQUAL_EVIDENCE_DIR).")
@click.option("--golden", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Golden bundles directory (default: the source tree's).")
@click.option("--initiator", default=None,
              help="Who started the selftest (default: $VQUAL_INITIATOR or the login user).")
@click.option("--json", "json_mode", is_flag=True, help="Print the summary as JSON.")
@_state_dir_option
@domain_errors
def selftest(change_id: str, key_file: Path | None, passphrase_fd: int | None,
             evidence_dir: Path, golden: Path | None, initiator: str | None, json_mode: bool,
             state_dir: Path | None) -> None:
    """Qualify vqual itself (versions, golden bundles, known-good and known-bad evidence)."""
    from qualification.execution.recorder import open_signer_with
    from qualification.review.selftest import run_selftest

    state = resolve_state_dir(state_dir)
    signer, _ = open_signer_with(
        key_file or state / "keys" / "executor.pem",
        lambda: _read_passphrase(passphrase_fd, "Key passphrase: "),
    )
    who = initiator or os.environ.get("VQUAL_INITIATOR") or getpass.getuser()
    summary = run_selftest(state, evidence_dir, change_id, signer, who, golden=golden)
    payload = {
        "schema": "vqual.selftest/v1", "bundle": str(summary.bundle), "verdict": summary.verdict,
        "counts": summary.counts, "seal": summary.seal, "verification": summary.verification,
        "failed": summary.failed, "exit_code": summary.exit_code,
    }
    if json_mode:
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items()))
        click.echo(f"vqual selftest: {summary.verdict.upper()} ({counts})\n"
                   f"  evidence: {summary.bundle}\n  seal:     {summary.seal}\n"
                   f"  verified: {summary.verification}")
        for line in summary.failed:
            click.echo(f"  {line}")
    sys.exit(summary.exit_code)


# --------------------------------------------------------------------------- trust
@main.group()
def trust() -> None:
    """Sign and check versions of the trust store (trust.yaml)."""


@trust.command("sign")
@click.option("--key", "key_file", required=True, type=click.Path(path_type=Path),
              help="Your passphrase-protected trust-admin key.")
@click.option("--passphrase-fd", type=int, default=None,
              help="Read the key's passphrase from this file descriptor (else the terminal asks).")
@click.option("--comment", default=None, help="Why the trust store changed.")
@_state_dir_option
@domain_errors
def trust_sign(key_file: Path, passphrase_fd: int | None, comment: str | None,
               state_dir: Path | None) -> None:
    """Sign the current trust.yaml as its next version (a trust-admin of the previous one)."""
    from qualification.review.signed import open_personal_signer
    from qualification.review.trust_history import sign_trust_store

    signer = open_personal_signer(
        key_file, lambda: _read_passphrase(passphrase_fd, "Key passphrase: ")
    )
    version = sign_trust_store(resolve_state_dir(state_dir), signer, comment)
    click.echo(f"trust store version {version.version} (sha256 {version.digest}) signed by "
               f"{version.signed_by}")
    for change in version.changes:
        click.echo(f"  {change}")


@trust.command("status")
@_state_dir_option
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


def run() -> None:  # pragma: no cover - console entry for python -m
    main()


if __name__ == "__main__":  # pragma: no cover
    run()


def _register_patch() -> None:
    from qualification.cli_patch import patch

    main.add_command(patch)


_register_patch()

__all__ = ["EXIT_BAD_INPUT", "BadInputError", "main"]


def _register_drift() -> None:
    from qualification.cli_drift import drift

    main.add_command(drift)


_register_drift()


def _register_clone() -> None:
    from qualification.cli_clone import clone

    main.add_command(clone)


_register_clone()
