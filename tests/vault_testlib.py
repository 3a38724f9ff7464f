"""Vault material for tests: a password file and values encrypted by ``ansible-vault`` itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import VENV_BIN, vqual_env


def password_file(directory: Path, password: str = "vault-pw-for-tests",
                  name: str = "vault-pass") -> Path:
    """A vault password file, mode 0600, as ``--vault-password-file`` expects it."""
    path = directory / name
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


def encrypt_string(name: str, secret: str, password: Path, indent: int = 0) -> str:
    """``NAME: !vault |`` and its ciphertext, from ``ansible-vault encrypt_string``, as YAML
    lines indented by ``indent`` spaces (to sit under a host of an inventory)."""
    done = subprocess.run(
        [str(VENV_BIN / "ansible-vault"), "encrypt_string", "--vault-password-file",
         str(password), "--name", name, secret],
        capture_output=True, text=True, timeout=120, check=False, env=vqual_env(password.parent),
    )
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout
    return "".join(" " * indent + line + "\n" for line in done.stdout.splitlines())
