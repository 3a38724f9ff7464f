"""What the commands share (qualification/cli/shared.py): the run options, declared once and
the same on every command that writes a bundle; the personal key of the e-signing commands;
the passphrase reader; domain errors as one line and an exit code."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from qualification.cli import main
from qualification.cli.shared import domain_errors, read_passphrase
from qualification.errors import EXIT_BAD_INPUT, BadInputError, KeyFileError

#: The commands that write an evidence bundle, and whether they take --run-id.
RUN_COMMANDS = {"qualify": True, "clone": True, "drift": True, "patch": True, "selftest": False}
RUN_OPTIONS = ["--key", "--passphrase-fd", "--evidence-dir", "--run-id", "--initiator"]


def _command(path: str) -> click.Command:
    command: click.Command = main
    for name in path.split():
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def _option(command: click.Command, flag: str) -> click.Option:
    found = [p for p in command.params if isinstance(p, click.Option) and flag in p.opts]
    assert len(found) == 1, f"{command.name} has {len(found)} options {flag}"
    return found[0]


def _declaration(option: click.Option) -> dict[str, object]:
    info = option.to_info_dict()
    return {key: info[key] for key in ("name", "opts", "type", "required", "default", "envvar",
                                       "help", "multiple")}


@pytest.mark.parametrize("name", sorted(RUN_COMMANDS))
def test_a_bundle_writing_command_takes_the_run_options_as_qualify_does(name: str) -> None:
    command, reference = _command(name), _command("qualify")
    flags = [f for f in RUN_OPTIONS if RUN_COMMANDS[name] or f != "--run-id"]
    for flag in flags:
        assert _declaration(_option(command, flag)) == _declaration(_option(reference, flag))
    if not RUN_COMMANDS[name]:
        assert not [p for p in command.params if "--run-id" in getattr(p, "opts", [])]


def test_the_run_options_keep_their_parameter_names_and_defaults() -> None:
    options = {flag: _option(_command("qualify"), flag) for flag in RUN_OPTIONS}
    assert {flag: (o.name, o.default, o.required) for flag, o in options.items()} == {
        "--key": ("key_file", None, False),
        "--passphrase-fd": ("passphrase_fd", None, False),
        "--evidence-dir": ("evidence_dir", Path("evidence"), False),
        "--run-id": ("run_id", None, False),
        "--initiator": ("initiator", None, False),
    }


def test_evidence_dir_comes_from_the_environment_unless_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drift = _command("drift")
    base = ["--baseline", str(tmp_path), "-i", str(tmp_path)]
    monkeypatch.delenv("VQUAL_EVIDENCE_DIR", raising=False)
    assert drift.make_context("drift", list(base)).params["evidence_dir"] == Path("evidence")
    monkeypatch.setenv("VQUAL_EVIDENCE_DIR", str(tmp_path / "env"))
    assert drift.make_context("drift", list(base)).params["evidence_dir"] == tmp_path / "env"
    given = drift.make_context("drift", [*base, "--evidence-dir", str(tmp_path / "arg")])
    assert given.params["evidence_dir"] == tmp_path / "arg"


@pytest.mark.parametrize("name", ["sign", "deviation approve", "trust sign"])
def test_an_e_signing_command_needs_a_personal_key(name: str) -> None:
    key = _option(_command(name), "--key")
    assert key.required and key.name == "key_file"
    assert (key.help or "").startswith("Your passphrase-protected ")
    passphrase = _option(_command(name), "--passphrase-fd")
    assert _declaration(passphrase) == _declaration(_option(_command("qualify"),
                                                            "--passphrase-fd"))


def test_sign_without_a_key_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sign", str(tmp_path), "--meaning", "reviewed",
                                       "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "Missing option '--key'" in result.output


def test_a_passphrase_is_read_from_a_file_descriptor_without_its_newline() -> None:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"correct horse\r\nsecond line\n")
        os.close(write_end)
        assert read_passphrase(read_end, "unused: ") == b"correct horse"
    finally:
        os.close(read_end)


def test_a_closed_passphrase_fd_is_a_key_error() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    with pytest.raises(KeyFileError, match=f"cannot read the passphrase from fd {read_end}"):
        read_passphrase(read_end, "unused: ")


def test_no_fd_and_no_terminal_is_a_key_error_not_a_prompt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # stdin is not a terminal (a pipeline): a prompt would hang it, so refuse.
    def no_prompt(prompt: str = "") -> str:
        raise AssertionError("prompted")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    with open(os.devnull, encoding="utf-8") as not_a_terminal:
        monkeypatch.setattr("sys.stdin", not_a_terminal)
        with pytest.raises(KeyFileError, match="give --passphrase-fd N or run on a terminal"):
            read_passphrase(None, "Key passphrase: ")


def test_a_domain_error_is_one_line_with_its_exit_code() -> None:
    @click.command()
    @domain_errors
    def bad() -> None:
        raise BadInputError("no such spec", where="specs/x.yaml")

    result = CliRunner().invoke(bad, [])
    assert result.exit_code == EXIT_BAD_INPUT == 2
    assert result.output == "vqual: specs/x.yaml: no such spec\n"


def test_a_missing_optional_dependency_is_one_line_naming_its_extra() -> None:
    @click.command()
    @domain_errors
    def needs_winrm() -> None:
        raise ModuleNotFoundError("No module named 'winrm'", name="winrm")

    result = CliRunner().invoke(needs_winrm, [])
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.output == ("vqual: Hyper-V support needs pywinrm, which is not installed: "
                             "pip install 'vqual[hyperv]'\n")

    @click.command()
    @domain_errors
    def needs_other() -> None:  # not an optional dependency: a bug, said as one
        raise ModuleNotFoundError("No module named 'nothere'", name="nothere")

    result = CliRunner().invoke(needs_other, [])
    assert result.exit_code == 1 and result.output.startswith("vqual: internal error:")
