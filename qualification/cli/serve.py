"""``vqual serve``: run the evidence server; its service accounts and its database."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from qualification.cli.shared import (
    domain_errors,
    personal_key_options,
    read_passphrase,
    state_dir_option,
    trust_root_options,
)
from qualification.errors import BadInputError
from qualification.state import resolve_state_dir

if TYPE_CHECKING:
    from qualification.server.config import ServerConfig
    from qualification.server.web.settings import WebSettings

_db_option = click.option(
    "--database-url", default=None,
    help="SQLAlchemy URL of the database (default $VQUAL_SERVER_DATABASE_URL, else SQLite in "
    "<state dir>/server/server.db); PostgreSQL: postgresql+psycopg://user@host/db.")


def _config(state_dir: Path | None, database_url: str | None) -> ServerConfig:
    from qualification.server.config import ServerConfig

    return ServerConfig.from_state(resolve_state_dir(state_dir), database_url=database_url)


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8780, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True,
              help="Worker processes (several need a database both reach: PostgreSQL, or "
              "SQLite on one machine).")
@click.option("--log-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The log role's service key that signs checkpoints (default "
              "<state dir>/keys/log.pem).")
@click.option("--max-body", type=int, default=None,
              help="Largest request body in bytes (default 256 MiB).")
@click.option("--session-idle-minutes", type=click.IntRange(1), default=None,
              help="Browser sessions end after this long without a request (default 15).")
@click.option("--session-absolute-minutes", type=click.IntRange(1), default=None,
              help="Browser sessions end this long after login (default 480).")
@click.option("--insecure-cookies", is_flag=True,
              help="Send cookies without Secure, for plain http on loopback in tests only.")
@_db_option
@trust_root_options
@state_dir_option
@click.pass_context
@domain_errors
def serve(ctx: click.Context, host: str, port: int, workers: int, log_key: Path | None,
          max_body: int | None, session_idle_minutes: int | None,
          session_absolute_minutes: int | None, insecure_cookies: bool,
          database_url: str | None, trust_root: Path | None, legacy_trust: bool,
          state_dir: Path | None) -> None:
    """Run the evidence server: push, pull, the transparency log (docs/server.md).

    Brings the database to the newest schema first; stop it with SIGTERM or Ctrl-C. Pushed
    bundles are judged through the pinned trust root, as `vqual verify` judges them.
    """
    from qualification.review.pinned import LEGACY_ENV
    from qualification.signing.trust_root import PIN_ENV

    # The subcommands and every worker judge trust the same way: through the environment.
    if trust_root is not None:
        os.environ[PIN_ENV] = str(trust_root.absolute())
    if legacy_trust:
        os.environ[LEGACY_ENV] = "1"
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from qualification.server import db
    from qualification.server.config import ServerConfig
    from qualification.server.service import EvidenceServer

    state = resolve_state_dir(state_dir)
    config = ServerConfig.from_state(state, database_url=database_url, log_key=log_key,
                                     max_body=max_body)
    db.upgrade(config.database_url)
    server = EvidenceServer(config)  # refuses an untrusted log key before any worker starts
    server.ensure_checkpoint()
    server.close()
    # The workers build their app from the environment (uvicorn imports the factory).
    os.environ["VQUAL_STATE_DIR"] = str(state)
    os.environ["VQUAL_SERVER_DATABASE_URL"] = config.database_url
    os.environ["VQUAL_LOG_KEY"] = str(config.log_key)
    os.environ["VQUAL_SERVER_MAX_BODY"] = str(config.max_body)
    web = _web_settings(session_idle_minutes, session_absolute_minutes, insecure_cookies)
    os.environ.update(web.to_env())
    if not web.secure_cookies:
        click.echo("vqual serve: WARNING cookies without Secure (--insecure-cookies): plain "
                   "http, for tests on loopback only", err=True)
    from qualification.review.pinned import choose_trust

    click.echo(f"vqual serve: http://{host}:{port} (store {config.store}; "
               f"{choose_trust(state).describe()})", err=True)
    uvicorn.run("qualification.server.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="warning", server_header=False)


def _web_settings(idle: int | None, absolute: int | None, insecure: bool) -> WebSettings:
    from dataclasses import replace

    from qualification.server.web.settings import WebSettings

    web = WebSettings.from_env()
    if idle is not None:
        web = replace(web, idle_minutes=idle)
    if absolute is not None:
        web = replace(web, absolute_minutes=absolute)
    return replace(web, secure_cookies=False) if insecure else web


@serve.group("token")
def token() -> None:
    """Service-account tokens (stored hashed; shown once)."""


def _check_sites(state_dir: Path, sites: tuple[str, ...]) -> None:
    """With sites configured, an account (token or person) names its sites, each configured
    (or '*')."""
    from qualification.server.settings import ALL_SITES, load_settings

    settings = load_settings(state_dir)
    if settings.per_site:
        if not sites:
            raise BadInputError("the server's settings configure sites: give the account "
                                "--site (repeat it, or '*' for every site)")
        unknown = sorted(set(sites) - set(settings.sites) - {ALL_SITES})
        if unknown:
            raise BadInputError(f"site {unknown[0]} is not among the configured sites "
                                f"({', '.join(settings.sites)})")


@token.command("create")
@click.option("--name", required=True, help="The service account, e.g. ci-pipeline.")
@click.option("--role", required=True, type=click.Choice(["pusher", "reader", "admin"]))
@click.option("--site", "sites", multiple=True,
              help="A site whose runs the account reaches (repeat; '*' every site); needed "
              "when the server's settings configure sites.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the token to this new file (mode 0600) instead of stdout.")
@_db_option
@state_dir_option
@domain_errors
def token_create(name: str, role: str, sites: tuple[str, ...], out: Path | None,
                 database_url: str | None, state_dir: Path | None) -> None:
    """Create a service account's token; it is printed (or written) once, never again."""
    from qualification.server import db
    from qualification.server.tokens import create_token

    config = _config(state_dir, database_url)
    _check_sites(config.state_dir, sites)
    url = config.database_url
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        secret = create_token(engine, name, role, sites)
    finally:
        engine.dispose()
    if out is None:
        click.echo(secret)
        return
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    click.echo(f"token for {name} ({role}) written to {out}")


@token.command("revoke")
@click.option("--name", required=True)
@_db_option
@state_dir_option
@domain_errors
def token_revoke(name: str, database_url: str | None, state_dir: Path | None) -> None:
    """Revoke a service account's token."""
    from qualification.server import db
    from qualification.server.tokens import revoke_token

    engine = db.make_engine(_config(state_dir, database_url).database_url)
    try:
        revoke_token(engine, name)
    finally:
        engine.dispose()
    click.echo(f"revoked {name}")


@serve.group("user")
def user() -> None:
    """People's accounts for the browser review (roles reviewer, approver, admin)."""


@user.command("add")
@click.option("--user-id", required=True, help="The login name, e.g. rita.")
@click.option("--name", required=True, help="Printed name shown on signatures.")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["reviewer", "approver", "admin"]), help="Repeatable.")
@click.option("--site", "sites", multiple=True,
              help="A site whose runs and deviations the user sees (repeat; '*' every site); "
              "needed when the server's settings configure sites (else: every site).")
@click.option("--password-fd", "password_fd", type=int, default=None,
              help="Read the password from this file descriptor (never the command line); "
              "default: ask on the terminal.")
@click.option("--public-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the signing key's public half (PEM) here for the trust-admin "
              "(default <state dir>/keys/<user id>.web.pub).")
@_db_option
@state_dir_option
@domain_errors
def user_add(user_id: str, name: str, roles: tuple[str, ...], sites: tuple[str, ...],
             password_fd: int | None, public_out: Path | None, database_url: str | None,
             state_dir: Path | None) -> None:
    """Create an account and its Ed25519 signing key, sealed under the password.

    The key signs only once a trust-admin adds its public half to the trust store with the
    person's roles (`vqual trust add-key`) and signs that version (`vqual trust sign`).
    """
    from qualification.server import db
    from qualification.server.web.accounts import add_user

    config = _config(state_dir, database_url)
    _check_sites(config.state_dir, sites)
    if password_fd is None and not sys.stdin.isatty():
        raise BadInputError("give the password with --password-fd N or run on a terminal")
    password = read_passphrase(password_fd, "Password: ").decode("utf-8", "replace")
    db.upgrade(config.database_url)
    engine = db.make_engine(config.database_url)
    try:
        new = add_user(engine, user_id, name, list(roles), password, list(sites))
    finally:
        engine.dispose()
    out = public_out or config.state_dir / "keys" / f"{user_id}.web.pub"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# name: {name}\n# identity: {user_id}\n# keyid: {new.keyid}\n"
                   f"{new.public_pem}", encoding="utf-8")
    click.echo(f"user {user_id} ({', '.join(sorted(set(roles)))}) created; signing key "
               f"{new.keyid[:16]} counts once a trust-admin adds {out} to the trust store "
               "(vqual trust add-key) and signs it (vqual trust sign)")


@user.command("disable")
@click.option("--user-id", required=True)
@_db_option
@state_dir_option
@domain_errors
def user_disable(user_id: str, database_url: str | None, state_dir: Path | None) -> None:
    """Disable an account and end its sessions (its signatures stay valid)."""
    from qualification.server import db
    from qualification.server.web.accounts import disable_user

    engine = db.make_engine(_config(state_dir, database_url).database_url)
    try:
        disable_user(engine, user_id)
    finally:
        engine.dispose()
    click.echo(f"disabled {user_id}")


@serve.command("upgrade")
@_db_option
@state_dir_option
@domain_errors
def upgrade(database_url: str | None, state_dir: Path | None) -> None:
    """Bring the database to the newest schema (vqual serve does this when it starts)."""
    from qualification.server import db

    url = _config(state_dir, database_url).database_url
    db.upgrade(url)
    click.echo(f"database at schema revision {db.HEAD}")


@serve.command("audit")
@click.option("--from", "start", default=None, help="From this UTC date or time (inclusive).")
@click.option("--to", "end", default=None, help="Until this UTC date or time (exclusive).")
@click.option("--account", default=None, help="Only this service account (or signer).")
@click.option("--action", default=None, help="Only this action (push, pull, read, void, "
              "purge, audit).")
@click.option("--run", "run_id", default=None, help="Only this run id.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header instead of JSON lines.")
@_db_option
@state_dir_option
@domain_errors
def audit(start: str | None, end: str | None, account: str | None, action: str | None,
          run_id: str | None, as_csv: bool, database_url: str | None,
          state_dir: Path | None) -> None:
    """Print the server's audit trail (newest first) as JSON lines, or CSV."""
    from qualification.server import auditlog, db

    wanted = auditlog.make_filter(start, end, account, action, run_id)
    engine = db.make_engine(_config(state_dir, database_url).database_url)
    try:
        rows = auditlog.query(engine, wanted)
    finally:
        engine.dispose()
    if as_csv:
        click.echo(auditlog.to_csv(rows), nl=False)
        return
    for row in rows:
        click.echo(json.dumps(row, sort_keys=True))


@serve.command("backup")
@click.argument("out", type=click.Path(path_type=Path))
@_db_option
@state_dir_option
@domain_errors
def backup(out: Path, database_url: str | None, state_dir: Path | None) -> None:
    """Back up the database and the store to OUT, a new directory (a running server's
    writers wait while it is taken)."""
    from qualification.server.backup import backup as take_backup

    index = take_backup(_config(state_dir, database_url), out)
    rows = ", ".join(f"{name} {t['rows']}" for name, t in sorted(index["tables"].items()))
    click.echo(f"backup written to {out} ({rows})")


@serve.command("restore")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_db_option
@state_dir_option
@domain_errors
def restore(source: Path, database_url: str | None, state_dir: Path | None) -> None:
    """Restore the backup SOURCE into an empty database and store, then check the log's
    consistency and the store as `vqual serve check` does (exit 1 naming what is wrong)."""
    from qualification.server.backup import restore as restore_backup

    config = _config(state_dir, database_url)
    restore_backup(config, source)
    click.echo(f"restored {source} into {config.store.parent}")
    _check_and_exit(config)


@serve.command("check")
@_db_option
@state_dir_option
@domain_errors
def check(database_url: str | None, state_dir: Path | None) -> None:
    """Check the server: every signed checkpoint against the log's entries and the trust
    store, every run's records against the database. Exit 0 consistent, 1 otherwise."""
    _check_and_exit(_config(state_dir, database_url))


def _check_and_exit(config: ServerConfig) -> None:
    import sys

    from qualification.server.backup import check_server

    problems, counts = check_server(config)
    what = (f"{counts['entries']} log entries, {counts['checkpoints']} signed checkpoints, "
            f"{counts['runs']} runs")
    if problems:
        click.echo(f"INCONSISTENT: {what}")
        for problem in problems:
            click.echo(f"  {problem}")
        sys.exit(1)
    click.echo(f"consistent: {what}")


@serve.group("retention")
def retention() -> None:
    """Runs past their retention, and purging one (a signed, logged act)."""


@retention.command("list")
@click.option("--all", "show_all", is_flag=True, help="Every held run, not only those past.")
@_db_option
@state_dir_option
@domain_errors
def retention_list(show_all: bool, database_url: str | None, state_dir: Path | None) -> None:
    """List the held runs past their retention (JSON lines: run, sites, retained until)."""
    from qualification.server.retention import held_runs
    from qualification.server.service import EvidenceServer
    from qualification.timeutil import utc_now

    server = EvidenceServer(_config(state_dir, database_url))
    try:
        now = utc_now()
        for run in held_runs(server):
            if show_all or run.past(now):
                click.echo(json.dumps({**run.to_json(), "past": run.past(now)}, sort_keys=True))
    finally:
        server.close()


@retention.command("purge")
@click.argument("run")
@click.option("--reason", required=True, help="Why the run is purged (recorded, signed).")
@personal_key_options("signing")
@_db_option
@state_dir_option
@domain_errors
def retention_purge(run: str, reason: str, key_file: Path, passphrase_fd: int | None,
                    database_url: str | None, state_dir: Path | None) -> None:
    """Purge RUN (run id or seal), past its retention, by a document you sign (approver or
    trust-admin): its files leave the store; a tombstone, the log entry and the audit stay."""
    from qualification.review.signed import load_trust, open_personal_signer
    from qualification.server.retention import purge, purge_document, purgeable
    from qualification.server.service import EvidenceServer
    from qualification.timeutil import utc_now

    config = _config(state_dir, database_url)
    server = EvidenceServer(config)
    try:
        held = purgeable(server, run, utc_now())  # refused, audited, before the passphrase
        signer = open_personal_signer(key_file, lambda: read_passphrase(passphrase_fd,
                                                                        "Key passphrase: "))
        envelope = purge_document(signer, load_trust(config.state_dir), held, reason)
        out = purge(server, held.run_id, envelope, utc_now())
    finally:
        server.close()
    click.echo(f"purged run {out['run_id']} (seal {out['seal'][:16]}) by {out['purged_by']}; "
               f"tombstone kept; log entry {out['log_index']}")
