"""``vqual-lab``: bring the test lab up and down (test infrastructure, not part of vqual).

Exit codes as vqual's: 0 done, 2 bad input (an unknown component or variation), 3 a component
did not come up (its log tail is printed), 4 a platform error.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import click

from qualification.errors import EXIT_INCOMPLETE, VqualError
from vqual_lab import manager
from vqual_lab.component import ComponentStatus


def _print(statuses: Iterable[ComponentStatus]) -> None:
    for status in statuses:
        click.echo(f"{status.name:10} {status.state:8} {status.detail}")
        for line in status.log_tail or ():
            click.echo(f"    | {line}")


@click.group()
def main() -> None:
    """Bring the test lab (KVM hosts, guests, vCenter/ESXi simulator, WinRM stand-in, a
    time-stamp authority) up and down. Everything runs on 127.0.0.0/8; every process is
    started and stopped by PID."""


@main.command("up")
@click.option("--component", "components", multiple=True,
              help="Only this component (repeatable); default all.")
@click.option("--vary", "variations", multiple=True, metavar="HOST:KIND",
              help="Switch on a per-host variation, e.g. kvm2:loose-mode or kvm2:pkg-version "
              "(repeatable), so tests can provoke findings.")
def up(components: tuple[str, ...], variations: tuple[str, ...]) -> None:
    """Start the lab (idempotent) and write inventories/lab/."""
    try:
        statuses = manager.up(list(components) or None, vary=list(variations))
    except VqualError as exc:
        click.echo(f"vqual-lab: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    _print(statuses)
    if any(s.state != "running" for s in statuses):
        sys.exit(EXIT_INCOMPLETE)


@main.command("down")
def down() -> None:
    """Destroy guests, stop every lab process by PID, unmount, restore."""
    try:
        _print(manager.down())
    except VqualError as exc:
        click.echo(f"vqual-lab: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)


@main.command("status")
def status() -> None:
    """Say what runs."""
    try:
        _print(manager.status())
    except VqualError as exc:
        click.echo(f"vqual-lab: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
