"""`vqual ... | head`: a reader that leaves early ends vqual quietly (exit 141, no traceback)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from qualification.cli.shared import EXIT_PIPE_CLOSED
from tests.conftest import VENV_BIN, vqual_env


def _with_closed_stdout(args: list[str], state: Path) -> subprocess.CompletedProcess[bytes]:
    """Run vqual with stdout a pipe whose reader has already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [str(VENV_BIN / "vqual"), *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=vqual_env(state),
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],  # written while click parses the arguments
        ["verify", "--help"],  # a subcommand's help
        ["keys", "list"],  # a command's own output, inside the domain_errors wrapper
    ],
)
def test_a_closed_stdout_ends_quietly(tmp_path: Path, args: list[str]) -> None:
    done = _with_closed_stdout(args, tmp_path)
    assert done.stderr.decode() == ""
    assert done.returncode == EXIT_PIPE_CLOSED == 141


def test_an_open_stdout_still_gets_everything_and_exit_0(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "vqual"), "--help"],
        capture_output=True,
        env=vqual_env(tmp_path),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and b"Commands:" in done.stdout and done.stderr == b""
