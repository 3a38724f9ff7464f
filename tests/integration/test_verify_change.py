"""``vqual verify`` of real runs (issue 13, items 2 and 3): three ``vqual qualify`` runs of one
change on the embedded default (inventories/local: this machine and libvirt's test driver)
verify as a change, the latest reported as not anchored; a failed result turned into a pass
and re-signed with the executor's own key, a run deleted, or a sealed run cut are refused,
naming the test or the run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from qualification.signing.keys import Ed25519Signer
from tests.conftest import run_vqual
from tests.integration.reviewflow import FAILING, LOCAL_INV, PASSING, executor, small_spec
from tests.integration.test_exports import OQ_DEFINE
from tests.unit.evidence.tamper_testlib import cut_run_end, flip, rewrite

CHANGE = "CHG0013002"


@pytest.fixture(scope="module")
def change(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("verify-change")
    state = tmp / "state"
    executor(state)
    spec = small_spec(tmp, [PASSING, FAILING, OQ_DEFINE], name="chain")
    runs = []
    for _ in range(3):
        done = run_vqual("qualify", "--evidence-dir", str(tmp / "evidence"), "-i",
                         str(LOCAL_INV), "-s", str(spec), "-c", CHANGE, "--check", "--json",
                         state_dir=state)
        assert done.stdout.strip().startswith("{"), done.stderr
        runs.append(Path(json.loads(done.stdout)["bundle"]))
    return {"tmp": tmp, "state": state, "runs": runs, "change": tmp / "evidence" / CHANGE}


def _copy(change: dict[str, Any], name: str) -> tuple[Path, list[Path]]:
    """A copy of the change to tamper with, and its runs in order."""
    target = change["tmp"] / name / CHANGE
    shutil.copytree(change["change"], target)
    return target, [target / r.name for r in change["runs"]]


def _verify(path: Path, state: Path) -> tuple[int, str]:
    done = run_vqual("verify", str(path), state_dir=state)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout


def test_three_real_runs_verify_as_a_change(change: dict[str, Any]) -> None:
    code, out = _verify(change["change"], change["state"])
    assert code == 0, out
    assert out.splitlines()[0].endswith("VALID (change of 3 runs)")
    assert f"warning: latest run not anchored: {change['runs'][2].name}" in out
    done = run_vqual("verify", str(change["change"]), "--json", state_dir=change["state"])
    payload = json.loads(done.stdout)
    assert [r["run"] for r in payload["runs"]] == [r.name for r in change["runs"]]
    assert payload["runs"][1]["prev_run_seal"] == payload["runs"][0]["seal"]


def test_a_fail_turned_into_a_pass_and_resigned_is_refused(change: dict[str, Any]) -> None:
    path, runs = _copy(change, "flipped")
    key = Ed25519Signer.from_file(change["state"] / "keys" / "executor.pem", None)
    rewrite(runs[0], key, flip(FAILING["id"], "localhost"))
    code, out = _verify(runs[0], change["state"])
    assert code == 1, out
    assert "run.end: counts fail is 1, the records have 0 fail results" in out
    assert f"junit.xml: test {FAILING['id']} on localhost.IQ: says fail" in out
    assert f"report.html: test {FAILING['id']} on localhost: says fail" in out
    code, out = _verify(path, change["state"])
    assert code == 1
    assert f"run {runs[0].name}: invalid: run.end: counts fail is 1" in out


def test_deleting_the_middle_run_is_refused(change: dict[str, Any]) -> None:
    path, runs = _copy(change, "deleted")
    shutil.rmtree(runs[1])
    code, out = _verify(path, change["state"])
    assert code == 1, out
    assert f"run {runs[2].name}: cites prev_run_seal" in out


def test_a_sealed_run_cut_before_its_run_end_is_refused(change: dict[str, Any]) -> None:
    path, runs = _copy(change, "cut")
    cut_run_end(runs[0])
    code, out = _verify(runs[0], change["state"])
    assert code == 3, out  # alone, it looks like a crash at the seal: said as a warning
    assert "warning: manifest.json is present" in out
    code, out = _verify(path, change["state"])
    assert code == 1, out
    assert f"run {runs[0].name} has no run.end: a sealed run cut before its run.end" in out
