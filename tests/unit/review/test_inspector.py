"""The inspector's folder (issue 13, item 6): a verified change, its trust and its keys in
securesystemslib's format, checkable without vqual by the script docs/inspector.md shows."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from qualification.cli import main
from qualification.evidence.bundle import latest_seal
from qualification.evidence.change import verify_change
from qualification.signing.keys import Ed25519Signer
from tests.unit.evidence.evidence_testlib import CHANGE, Keys, make_keys
from tests.unit.evidence.tamper_testlib import cut_run_end, rewrite
from tests.unit.evidence.test_verify_agreement import real_run

ROOT = Path(__file__).resolve().parents[3]
RUNS = ("20260301T100000Z-aaaaaa", "20260302T100000Z-bbbbbb")
STDLIB = {"hashlib", "json", "sys", "pathlib"}


def _documented_script() -> str:
    text = (ROOT / "docs" / "inspector.md").read_text(encoding="utf-8")
    found = re.search(r'```python title="check_with_securesystemslib.py"\n(.*?)```', text, re.DOTALL)
    assert found, "docs/inspector.md lost its checker script"
    return found.group(1)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path / "state", pinned=True)


@pytest.fixture
def change(tmp_path: Path, keys: Keys) -> Path:
    evidence = tmp_path / "evidence"
    for run_id in RUNS:
        real_run(evidence, keys, run_id, prev=latest_seal(evidence, CHANGE))
    return evidence / CHANGE


def _export(change: Path, out: Path, state: Path) -> Result:
    return CliRunner().invoke(
        main, ["export", "--inspector", str(change), "-o", str(out), "--state-dir", str(state)]
    )


def _check(folder: Path, script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), str(folder)],
        check=False, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "check_with_securesystemslib.py"
    path.write_text(_documented_script(), encoding="utf-8")
    return path


def test_the_documented_checker_imports_only_securesystemslib_and_the_stdlib() -> None:
    tree = ast.parse(_documented_script())
    modules = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert modules == STDLIB | {"securesystemslib"}


def test_a_verified_change_exports_and_checks_with_securesystemslib_alone(
    tmp_path: Path, keys: Keys, change: Path, script: Path
) -> None:
    out = tmp_path / "for-inspector"
    res = _export(change, out, tmp_path / "state")
    assert res.exit_code == 0, res.output
    index = json.loads((out / "INDEX.json").read_bytes())["files"]
    assert f"evidence/{CHANGE}/{RUNS[0]}/records.jsonl" in index
    assert {"trust/trust.yaml", "trust/keys.securesystemslib.json", "verification.json"} <= set(
        index
    )
    assert "trust-root.yaml" in index  # the pin it was judged with, outside trust/
    assert "trust root: " in res.output
    assert json.loads((out / "verification.json").read_bytes())["status"] == "valid"
    # the folder's trust/ is a state directory vqual verifies the evidence with
    again = CliRunner().invoke(main, ["verify", str(out / "evidence" / CHANGE), "--state-dir",
                                      str(out / "trust"), "--trust-root",
                                      str(out / "trust-root.yaml")])
    assert again.exit_code == 0, again.output
    exported = json.loads((out / "trust" / "keys.securesystemslib.json").read_bytes())["keys"]
    assert {k["keyid"] for k in exported} == set(keys.trust.keys)
    assert all(k["key"]["keytype"] == "ed25519" and k["sslib_default_keyid"] for k in exported)

    checked = _check(out, script)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    seals = [r.seal_digest for r in verify_change(change, keys.trust, workers=1).runs]
    for run_id, seal in zip(RUNS, seals, strict=True):
        assert f"{run_id}: " in checked.stdout and f"seal {seal}" in checked.stdout


def test_the_checker_refuses_a_record_re_signed_by_a_key_not_exported(
    tmp_path: Path, change: Path, script: Path
) -> None:
    out = tmp_path / "for-inspector"
    assert _export(change, out, tmp_path / "state").exit_code == 0
    run = out / "evidence" / CHANGE / RUNS[0]
    rewrite(run, Ed25519Signer.generate(), lambda rec: rec)
    # the attacker also fixes the index, so only the signatures can tell
    index_path = out / "INDEX.json"
    index = json.loads(index_path.read_bytes())
    for name in index["files"]:
        index["files"][name] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    index_path.write_text(json.dumps(index))
    checked = _check(out, script)
    assert checked.returncode == 1
    assert checked.stdout.startswith(f"NOT VALID: {RUNS[0]} records.jsonl line 1: signature")


def test_the_checker_refuses_an_edited_file_the_index_still_lists(
    tmp_path: Path, change: Path, script: Path
) -> None:
    out = tmp_path / "for-inspector"
    assert _export(change, out, tmp_path / "state").exit_code == 0
    junit = out / "evidence" / CHANGE / RUNS[1] / "junit.xml"
    junit.write_bytes(junit.read_bytes().replace(b"<failure", b"<skipped", 1))
    checked = _check(out, script)
    assert checked.returncode == 1
    assert checked.stdout.strip() == (
        f"NOT VALID: evidence/{CHANGE}/{RUNS[1]}/junit.xml: differs from INDEX.json"
    )


def test_a_change_that_does_not_verify_is_not_exported(
    tmp_path: Path, keys: Keys, change: Path
) -> None:
    rewrite(change / RUNS[0], Ed25519Signer.generate(), lambda rec: rec)
    out = tmp_path / "for-inspector"
    res = _export(change, out, tmp_path / "state")
    assert res.exit_code == 1
    assert "does not verify, not exported" in res.output and RUNS[0] in res.output
    assert not out.exists() and not list(tmp_path.glob(".for-inspector.*"))


def test_an_unfinished_run_is_not_exported(tmp_path: Path, change: Path) -> None:
    cut_run_end(change / RUNS[1])
    res = _export(change, tmp_path / "out", tmp_path / "state")
    assert res.exit_code == 3 and "did not finish" in res.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "sarif"], "drop --format"),
        ([], "needs --output"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    tmp_path: Path, change: Path, args: list[str], message: str
) -> None:
    out = ["-o", str(tmp_path / "out")] if args else []
    res = CliRunner().invoke(
        main,
        ["export", "--inspector", str(change), *args, *out, "--state-dir", str(tmp_path / "state")],
    )
    assert res.exit_code == 2 and message in res.output
    assert "Traceback" not in res.output


def test_an_existing_destination_or_a_single_run_is_refused(tmp_path: Path, change: Path) -> None:
    (tmp_path / "taken").mkdir()
    res = _export(change, tmp_path / "taken", tmp_path / "state")
    assert res.exit_code == 2 and "exists" in res.output
    res = _export(change / RUNS[0], tmp_path / "out", tmp_path / "state")
    assert res.exit_code == 2 and "not a change directory" in res.output
