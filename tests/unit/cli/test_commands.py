"""Every CLI command has help and is documented in docs/cli.md."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from qualification.cli import main

DOCS = (Path(__file__).resolve().parents[3] / "docs" / "cli.md").read_text()


def _commands(group: click.Group, prefix: str = "vqual") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found += _commands(command, path)
        else:
            found.append((path, command))
    return found


COMMANDS = _commands(main)


def test_there_are_commands() -> None:
    assert {"vqual qualify", "vqual verify", "vqual keys create", "vqual patch"} <= {
        name for name, _ in COMMANDS
    }


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_command_has_help_and_is_documented(name: str) -> None:
    args = name.split()[1:] + ["--help"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command = dict(COMMANDS)[name]
    assert (command.help or "").strip(), f"{name} has no help text"
    assert f"`{name}" in DOCS, f"{name} is missing from docs/cli.md"


def test_an_unexpected_error_is_one_line_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from qualification.execution import verifying

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(verifying, "verify_command", broken)
    monkeypatch.delenv("VQUAL_DEBUG", raising=False)
    result = CliRunner().invoke(main, ["verify", "."])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "vqual: internal error: ZeroDivisionError: a bug (VQUAL_DEBUG=1 shows the traceback)"
    )
    assert "Traceback" not in result.output


def test_the_lab_is_not_a_vqual_command() -> None:
    # The lab is test infrastructure (lab/, command vqual-lab): the product has no `lab`.
    assert not any(name.startswith("vqual lab") for name, _ in COMMANDS)
    assert CliRunner().invoke(main, ["lab", "--help"]).exit_code == 2
