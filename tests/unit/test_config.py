"""config.yaml: a malformed file is refused naming file:line; runs record which one was in force."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from qualification.config import SiteConfig, config_citation, load_config
from qualification.errors import BadInputError
from tests.conftest import run_vqual


def _config(state: Path, text: str) -> Path:
    state.mkdir(parents=True, exist_ok=True)
    path = state / "config.yaml"
    path.write_text(text)
    return path


def test_no_file_and_an_empty_file_mean_the_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path) == SiteConfig()
    assert config_citation(tmp_path)["digest"] is None
    _config(tmp_path, "# nothing set yet\n")
    assert load_config(tmp_path) == SiteConfig()
    assert config_citation(tmp_path)["digest"] == hashlib.sha256(b"# nothing set yet\n").hexdigest()


def test_settings_are_read(tmp_path: Path) -> None:
    _config(
        tmp_path,
        "change_id_pattern: '^RFC-[0-9]{4}$'\nrequire_protocol_approval: true\n"
        "require_signed_trust: no\n",
    )
    assert load_config(tmp_path) == SiteConfig("^RFC-[0-9]{4}$", True, False)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("require_signed_trust: true\nrequire_protocl_approval: true\n", 2, "unknown setting"),
        ("require_protocol_approval: 'false'\n", 1, "must be true or false"),
        ("# site\n\nrequire_signed_trust: 1\n", 3, "must be true or false"),
        ("require_signed_trust:\n", 1, "must be true or false"),
        ("require_signed_trust: true\nrequire_signed_trust: false\n", 2, "given twice"),
        ("change_id_pattern: '[CHG'\n", 1, "not a regular expression"),
        ("change_id_pattern: [CHG]\n", 1, "must be a regular expression"),
        ("- require_signed_trust\n", 1, "must be a mapping"),
        ("require_signed_trust: true\n  oops: indented\n", 2, "not valid YAML"),
    ],
)
def test_a_malformed_file_is_refused_naming_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(BadInputError, match=message) as info:
        load_config(tmp_path)
    assert info.value.exit_code == 2
    assert info.value.where == f"{path}:{line}"
    with pytest.raises(BadInputError):
        config_citation(tmp_path)


def test_the_citation_has_the_files_digest_and_every_setting(tmp_path: Path) -> None:
    text = "require_protocol_approval: true\n"
    _config(tmp_path, text)
    assert config_citation(tmp_path) == {
        "file": "config.yaml",
        "digest": hashlib.sha256(text.encode()).hexdigest(),
        "settings": {
            "change_id_pattern": None,
            "require_protocol_approval": True,
            "require_signed_trust": False,
        },
    }


def _run_start(bundle: Path) -> dict[str, Any]:
    first = (bundle / "records.jsonl").read_text().splitlines()[0]
    payload: dict[str, Any] = json.loads(base64.b64decode(json.loads(first)["payload"]))
    return payload


def test_a_selftest_run_records_the_config_in_force(executor_state: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    for name in ("trust.yaml", "keys"):
        source = executor_state / name
        target = state / name
        if source.is_dir():
            target.mkdir()
            for f in source.iterdir():
                (target / f.name).write_bytes(f.read_bytes())
                (target / f.name).chmod(f.stat().st_mode)
        else:
            target.write_bytes(source.read_bytes())
    text = "change_id_pattern: '^CHG[0-9]{7}$'\n"
    _config(state, text)
    done = run_vqual(
        "selftest",
        "-c",
        "CHG0007101",
        "--evidence-dir",
        str(tmp_path / "ev"),
        "--json",
        state_dir=state,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    start = _run_start(Path(json.loads(done.stdout)["bundle"]))
    assert start["data"]["config"]["digest"] == hashlib.sha256(text.encode()).hexdigest()
    assert start["data"]["config"]["settings"]["change_id_pattern"] == "^CHG[0-9]{7}$"

    # A malformed config stops the command before anything runs, naming file:line.
    _config(state, "change_id_pattern: '^CHG[0-9]{7}$'\nrequire_signed_trust: maybe\n")
    refused = run_vqual(
        "selftest", "-c", "CHG0007102", "--evidence-dir", str(tmp_path / "ev"), state_dir=state
    )
    assert refused.returncode == 2
    assert f"{state / 'config.yaml'}:2: require_signed_trust must be true or false" in (
        refused.stderr
    )
    assert not (tmp_path / "ev" / "CHG0007102").exists()
