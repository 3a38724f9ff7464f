"""The client's token comes from the environment or a 0600 file, never the command line; a
bad URL or an unreachable server is one line with its exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.errors import BadInputError, PlatformError
from qualification.server.client import Client, read_token
from qualification.server.files import valid_name


def test_the_token_comes_from_the_environment_or_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VQUAL_SERVER_TOKEN_FILE", raising=False)
    monkeypatch.setenv("VQUAL_SERVER_TOKEN", "vq_from-env\n")
    assert read_token() == "vq_from-env"
    secret = tmp_path / "ci.token"
    secret.write_text("vq_from-file\n")
    secret.chmod(0o600)
    assert read_token(secret) == "vq_from-file"
    monkeypatch.setenv("VQUAL_SERVER_TOKEN_FILE", str(secret))
    assert read_token() == "vq_from-file"
    secret.chmod(0o644)
    with pytest.raises(BadInputError, match="readable by group or others"):
        read_token(secret)
    monkeypatch.delenv("VQUAL_SERVER_TOKEN_FILE")
    monkeypatch.delenv("VQUAL_SERVER_TOKEN")
    with pytest.raises(BadInputError, match="no server token"):
        read_token()


def test_bad_urls_and_unreachable_servers_are_one_line() -> None:
    with pytest.raises(BadInputError, match="is not an http"):
        Client("file:///etc/passwd", "vq_x")
    port_without_server = Client("http://127.0.0.1:9", "vq_x", timeout=5)
    with pytest.raises(PlatformError, match="cannot reach the server at http://127.0.0.1:9"):
        port_without_server.json("GET", "/health")


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../etc", "", "x" * 65, "-a", "a\\b"])
def test_names_from_urls_are_refused_unless_they_are_record_names(name: str) -> None:
    with pytest.raises(BadInputError, match="is not a valid name"):
        valid_name(name, "run id")
