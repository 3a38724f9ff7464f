"""``vqual export``: bad input is one line and exit 2 with nothing written; an invalid bundle
is one line and exit 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from qualification.cli import main
from qualification.execution.keys import create_trusted_key
from tests.unit.reports.exports_testlib import sarif_counts, verify_with_securesystemslib

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden" / "v1"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())
BUNDLE = GOLDEN / EXPECTED["bundle"]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory whose trust store is the golden one."""
    folder = tmp_path / "state"
    folder.mkdir()
    shutil.copy(GOLDEN / "trust.yaml", folder / "trust.yaml")
    return folder


def _export(state: Path, *args: str) -> Result:
    # The golden v1 bundle and its store predate signed trust stores: legacy by nature.
    return CliRunner().invoke(main, ["export", *args, "--legacy-trust", "--state-dir",
                                     str(state)])


def _one_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_sarif_to_stdout_has_the_bundles_counts(state: Path) -> None:
    result = _export(state, str(BUNDLE), "--format", "sarif")
    assert result.exit_code == 0, result.stderr
    assert sarif_counts(json.loads(result.stdout)) == EXPECTED["counts"]


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "xml"], "vqual: --format: unknown export format 'xml'; one of sarif, ohdf, in-toto"),
    (["--format", "sarif", "--output", "{tmp}/missing/out.sarif"], "is not a directory"),
    (["--format", "sarif", "--output", "{tmp}"], "is a directory"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    state: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    before = sorted(tmp_path.rglob("*"))
    args = [a.replace("{tmp}", str(out)) for a in args]
    result = _export(state, str(BUNDLE), *args)
    assert result.exit_code == 2, result.output
    assert message in _one_line(result)
    assert sorted(tmp_path.rglob("*")) == before


def test_a_missing_bundle_is_one_line_exit_2(state: Path, tmp_path: Path) -> None:
    result = _export(state, str(tmp_path / "nope"), "--format", "ohdf")
    assert result.exit_code == 2
    assert _one_line(result) == f"vqual: {tmp_path / 'nope'} is not an evidence bundle directory"


def test_an_unwritable_output_directory_is_one_line_exit_2(state: Path) -> None:
    # /proc takes no new files, not even from root (a chmod would not stop root).
    result = _export(state, str(BUNDLE), "--format", "sarif", "-o", "/proc/vqual-export.sarif")
    assert result.exit_code == 2
    assert _one_line(result).startswith("vqual: --output: cannot write in /proc: ")
    assert not Path("/proc/vqual-export.sarif").exists()


def test_an_invalid_bundle_is_one_line_exit_1_and_no_output_file(
    state: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(BUNDLE, copy)
    (copy / "spec.yaml").write_text("apiVersion: vqual/v1\n")
    out = tmp_path / "out.json"
    result = _export(state, str(copy), "--format", "ohdf", "-o", str(out))
    assert result.exit_code == 1
    assert "spec.yaml" in _one_line(result)
    assert not out.exists()


def test_in_toto_is_signed_by_a_trusted_executor_key_only(state: Path, tmp_path: Path) -> None:
    key = state / "keys" / "executor.pem"
    keyid = create_trusted_key(key, state, name="Export executor", identity="ci@example.com",
                               roles=["executor"], passphrase=None, throwaway=True, valid_days=1)
    out = tmp_path / "statement.intoto.json"
    result = _export(state, str(BUNDLE), "--format", "in-toto", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    from qualification.signing import Ed25519Signer

    public = Ed25519Signer.from_file(key, None).public_key
    statement = verify_with_securesystemslib(json.loads(out.read_text()), public, keyid)
    assert statement["predicate"]["vqual"]["counts"] == EXPECTED["counts"]

    reviewer = state / "keys" / "reviewer.pem"
    create_trusted_key(reviewer, state, name="Rita Reviewer", identity="rita@example.com",
                       roles=["reviewer"], passphrase=None, throwaway=True, valid_days=1)
    out.unlink()
    result = _export(state, str(BUNDLE), "--format", "in-toto", "--key", str(reviewer),
                     "-o", str(out))
    assert result.exit_code == 2
    assert "does not hold the executor role" in _one_line(result)
    assert not out.exists()


def test_the_command_offers_exactly_the_formats_the_core_renders() -> None:
    # The command keeps its own copy so `vqual --help` does not import the core.
    from qualification.cli import export
    from qualification.reports.exports import FORMATS

    assert export.FORMATS == FORMATS


def test_an_output_inside_the_bundle_is_refused_but_views_is_allowed(
    state: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(BUNDLE, copy)
    result = _export(state, str(copy), "--format", "sarif", "-o", str(copy / "run.sarif"))
    assert result.exit_code == 2
    assert "is inside the bundle" in _one_line(result)
    assert not (copy / "run.sarif").exists()
    (copy / "views").mkdir()
    result = _export(state, str(copy), "--format", "sarif", "-o", str(copy / "views" / "run.sarif"))
    assert result.exit_code == 0, result.stderr
    # A stored bundle, written long before any signed trust store: legacy by nature.
    verified = CliRunner().invoke(main, ["verify", str(copy), "--legacy-trust", "--state-dir",
                                         str(state)])
    assert verified.exit_code == 0, verified.output
