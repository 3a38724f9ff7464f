"""``vqual-lab``: bring the test lab up and down (test infrastructure, not part of vqual).

Exit codes as vqual's: 0 done, 2 bad input (an unknown component or variation), 3 a component
did not come up (its log tail is printed), 4 a platform error.
"""

from __future__ import annotations

import json
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


def _kvm_op(op: str, host: str) -> None:
    try:
        ctx = manager.context()
        kvm = manager.component("kvm")
        seconds = getattr(kvm, op)(ctx, host)
    except VqualError as exc:
        click.echo(f"vqual-lab: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    click.echo(f"{host} {op.replace('_', '-')} in {seconds:.2f} s")


@main.command("fail")
@click.argument("host")
def fail(host: str) -> None:
    """Fail one KVM host as a power loss does (SIGKILL to its namespace: every process in it,
    guests included, ends at once)."""
    _kvm_op("fail", host)


@main.command("power-on")
@click.argument("host")
def power_on(host: str) -> None:
    """Start a KVM host that `fail` stopped, over the same root filesystem."""
    _kvm_op("power_on", host)


@main.group("ha")
def ha_group() -> None:
    """The pacemaker/corosync HA stack on the KVM hosts, for the failover OQ (docs/ha.md)."""


@ha_group.command("up")
def ha_up() -> None:
    """Install and start the stack on both hosts and put its guest under it."""
    from vqual_lab import ha

    try:
        info = ha.HaStack(manager.context()).up()
    except VqualError as exc:
        click.echo(f"vqual-lab: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    click.echo(json.dumps(info, sort_keys=True))


@ha_group.command("down")
def ha_down() -> None:
    """Stop the stack and its guest, purge its packages, put the hosts' files back."""
    from vqual_lab import ha

    problems = ha.HaStack(manager.context()).down()
    for line in problems:
        click.echo(f"vqual-lab: {line}", err=True)
    sys.exit(EXIT_INCOMPLETE if problems else 0)


@ha_group.command("versions")
@click.argument("host")
def ha_versions(host: str) -> None:
    """The stack's package versions in HOST, one "name version" line each."""
    from vqual_lab import ha

    try:
        found = ha.HaStack(manager.context()).versions(host)
    except VqualError as exc:
        click.echo(f"vqual-lab: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    for name, version in sorted(found.items()):
        click.echo(f"{name} {version}")


if __name__ == "__main__":  # pragma: no cover
    main()
