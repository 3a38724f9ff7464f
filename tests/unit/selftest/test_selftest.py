"""`vqual selftest`: vqual qualifies itself into a bundle that verifies."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from qualification import __version__
from qualification.cli import main
from qualification.evidence.verify import verify_bundle
from qualification.selftest import Scratch, SelftestSummary, repo_golden_dir, self_checks
from qualification.signing import TrustStore
from tests.conftest import run_vqual


def _records(bundle: Path) -> list[dict[str, Any]]:
    return [
        json.loads(base64.b64decode(json.loads(line)["payload"]))
        for line in (bundle / "records.jsonl").read_text().splitlines()
    ]


def test_selftest_passes_here_and_writes_a_bundle_that_verifies(
    executor_state: Path, tmp_path: Path
) -> None:
    done = run_vqual(
        "selftest",
        "-c",
        "CHG0007001",
        "--evidence-dir",
        str(tmp_path / "ev"),
        "--json",
        state_dir=executor_state,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["verdict"] == "pass" and summary["verification"] == "valid"
    bundle = Path(summary["bundle"])
    verify = run_vqual("verify", str(bundle), state_dir=executor_state)
    assert verify.returncode == 0, verify.stdout
    records = _records(bundle)
    assert records[0]["data"]["mode"] == "selftest"
    ids = {r["data"]["test_id"] for r in records if r["kind"] == "check.result"}
    assert {"ST-IQ-01", "ST-OQ-01-v1", "ST-OQ-03", "ST-OQ-05", "ST-OQ-06"} <= ids
    assert "ST-IQ-03-cryptography" in ids
    server = [r["data"] for r in records if r["kind"] == "check.result"
              and r["data"]["test_id"] == "ST-OQ-26"]  # the server's, handed in by the command
    assert [(d["verdict"], d["requirements"]) for d in server] == [("pass", ["VQ-63"])]
    assert {"ST-IQ-05-libvirt", "ST-OQ-10-check.result", "ST-OQ-11", "ST-OQ-12",
            "ST-OQ-13"} <= ids
    # run.start comes from the one builder of every run's, with the selftest's golden.
    start = records[0]["data"]
    assert start["tool"] == {"name": "vqual", "version": __version__}
    assert start["golden"] == str(repo_golden_dir())
    assert start["planned"][0] == {"test_id": "ST-IQ-01", "target": start["targets"][0]["name"],
                                   "protocol": "IQ"}
    assert {"VQ-25", "VQ-26", "VQ-28", "VQ-29"} <= set(start["requirements"])


def test_a_broken_golden_bundle_fails_the_selftest(executor_state: Path, tmp_path: Path) -> None:
    golden = repo_golden_dir()
    assert golden is not None
    copy = tmp_path / "golden"
    shutil.copytree(golden, copy)
    spec = next(copy.glob("v1/evidence/*/*/spec.yaml"))
    spec.write_bytes(spec.read_bytes() + b"#")
    done = CliRunner().invoke(
        main,
        [
            "selftest",
            "-c",
            "CHG0007002",
            "--evidence-dir",
            str(tmp_path / "ev"),
            "--golden",
            str(copy),
            "--json",
            "--state-dir",
            str(executor_state),
        ],
    )
    assert done.exit_code == 1, done.output
    summary = json.loads(done.output)
    assert summary["verdict"] == "fail" and summary["verification"] == "valid"
    assert any(f.startswith("ST-OQ-01-v1") for f in summary["failed"])


def test_without_golden_bundles_that_check_is_not_executed(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path)
    checks = self_checks(None, lambda: scratch)
    golden = [c for c in checks if c.test_id.startswith("ST-OQ-01")]
    assert len(golden) == 1 and golden[0].not_executed


def test_known_bad_cases_are_told_apart_from_good_ones(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path)
    good = scratch.bundle()
    assert verify_bundle(good, scratch.trust).status == "valid"
    # The scratch trust store is a real one, on disk, marked throwaway.
    assert all(k.throwaway for k in TrustStore.load(tmp_path / "trust.yaml").keys.values())
    for check in self_checks(None, lambda: scratch):
        if check.test_id in ("ST-OQ-03", "ST-OQ-04", "ST-OQ-05", "ST-OQ-06"):
            outcome = check.run()
            assert outcome.ok, (check.test_id, outcome)


def test_the_collection_version_is_checked_against_the_package(tmp_path: Path) -> None:
    from qualification.selftest.install import collection_check

    source = Path(__file__).resolve().parents[3] / "ansible_collections" / "vqual" / "qualification"
    assert collection_check(source)().ok
    # An installed collection of another version (MANIFEST.json, as ansible-galaxy writes it).
    other = tmp_path / "installed"
    (other / "plugins").mkdir(parents=True)
    (other / "playbooks").mkdir()
    (other / "MANIFEST.json").write_text(
        '{"collection_info": {"namespace": "vqual", "name": "qualification", "version": "0.0.9"}}')
    outcome = collection_check(other)()
    assert not outcome.ok and outcome.observed == "0.0.9" and __version__ != "0.0.9"
    assert "0.0.9" in (outcome.reason or "")


def test_the_selftest_exit_code_follows_its_verdict_as_every_run(tmp_path: Path) -> None:
    def code(verdict: str, verification: str = "valid") -> int:
        return SelftestSummary(tmp_path, verdict, {}, "s" * 64, verification, []).exit_code

    assert (code("pass"), code("fail"), code("error"), code("not-executed")) == (0, 1, 4, 3)
    assert code("pass", "invalid") == 1


def test_the_verdict_exits_and_the_canary_rule_are_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qualification.selftest import library

    assert library.verdict_exits().ok
    outcome = library.canary_rule(tmp_path)
    assert outcome.ok and outcome.observed == ["refused", "loaded", "loaded with reason"]
    # A loader that lets a high-risk change through without a canary fails the check.
    monkeypatch.setattr(library, "load_change", lambda path: type(
        "C", (), {"canary_waiver": None})())
    assert not library.canary_rule(tmp_path).ok
    monkeypatch.setattr(library, "exit_code_for_verdict", lambda verdict: 0)
    assert not library.verdict_exits().ok
