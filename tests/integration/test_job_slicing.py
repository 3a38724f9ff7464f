"""A qualify job sliced two ways (issue 14, item 3; docs/aap.md "Job slicing"): two real
``vqual qualify --slice i/2 --slice-parent P`` runs of the embedded default (one host each,
by ``--limit``), ``vqual join``, then ``vqual verify`` of the change: valid, the slices
anchored by the join; a slice deleted after the join, or the join's cited seal edited, is
invalid naming the run. Bad slice options are one line, exit 2, nothing written."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_vqual
from tests.integration.reviewflow import LOCAL_INV, PASSING, executor, small_spec
from tests.integration.test_exports import OQ_DEFINE

CHANGE = "CHG0014003"
PARENT = "pipeline-81"


def _records(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(base64.b64decode(json.loads(line)["payload"]))
            for line in (bundle / "records.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def sliced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("slicing")
    state = tmp / "state"
    executor(state)
    spec = small_spec(tmp, [PASSING, OQ_DEFINE], name="sliced")
    runs = []
    for index, host in ((1, "localhost"), (2, "libvirt-test")):
        done = run_vqual("qualify", "--evidence-dir", str(tmp / "evidence"), "-i",
                         str(LOCAL_INV), "-s", str(spec), "-c", CHANGE, "--check", "--json",
                         "--limit", host, "--slice", f"{index}/2", "--slice-parent", PARENT,
                         "--slice-job", f"job-{index}", state_dir=state)
        assert done.stdout.strip().startswith("{"), done.stderr
        runs.append(Path(json.loads(done.stdout)["bundle"]))
    joined = run_vqual("join", str(tmp / "evidence" / CHANGE), "--parent", PARENT,
                       "--expect", "2", "--json", state_dir=state)
    assert joined.stdout.strip().startswith("{"), joined.stderr
    return {"tmp": tmp, "state": state, "spec": spec, "runs": runs,
            "join": json.loads(joined.stdout), "join_rc": joined.returncode,
            "change": tmp / "evidence" / CHANGE}


def _copy(sliced: dict[str, Any], name: str) -> Path:
    target = sliced["tmp"] / name / CHANGE
    shutil.copytree(sliced["change"], target)
    return target


def test_each_slice_records_its_slice_and_the_join_cites_both(sliced: dict[str, Any]) -> None:
    for index, bundle in enumerate(sliced["runs"], start=1):
        start = _records(bundle)[0]["data"]
        assert start["slice"] == {"index": index, "count": 2, "job": f"job-{index}",
                                  "parent": PARENT}
        assert len({t["target"] for t in start["planned"]}) == 1
    join = sliced["join"]
    assert [j["run"] for j in join["joins"]] == [r.name for r in sliced["runs"]]
    # --check: the OQ slice is not executed, the IQ slice passes; the job's is the worse.
    assert [j["verdict"] for j in join["joins"]] == ["pass", "not-executed"]
    assert join["verdict"] == "not-executed"
    start = _records(Path(join["bundle"]))[0]["data"]
    assert start["mode"] == "join" and start["planned"] == []
    assert start["joins"] == join["joins"]
    assert sliced["join_rc"] == {"pass": 0, "fail": 1, "not-executed": 3}[join["verdict"]]


def test_the_change_verifies_with_the_slices_anchored_by_the_join(sliced: dict[str, Any]) -> None:
    done = run_vqual("verify", str(sliced["change"]), state_dir=sliced["state"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID (change of 3 runs)" in done.stdout.splitlines()[0]
    anchored = [line for line in done.stdout.splitlines() if "not anchored" in line]
    assert len(anchored) == 1 and Path(sliced["join"]["bundle"]).name in anchored[0], anchored


def test_a_slice_deleted_after_the_join_is_invalid_naming_the_join(
    sliced: dict[str, Any],
) -> None:
    change = _copy(sliced, "deleted")
    shutil.rmtree(change / sliced["runs"][0].name)
    done = run_vqual("verify", str(change), state_dir=sliced["state"])
    join = Path(sliced["join"]["bundle"]).name
    assert done.returncode == 1, done.stdout
    assert f"run {join}: the join cites seal" in done.stdout, done.stdout


def test_an_edited_cited_seal_is_invalid_naming_the_join(sliced: dict[str, Any]) -> None:
    change = _copy(sliced, "edited")
    join = change / Path(sliced["join"]["bundle"]).name
    seal = sliced["join"]["joins"][1]["seal"]
    lines = (join / "records.jsonl").read_bytes().split(b"\n")
    envelope = json.loads(lines[0])
    payload = base64.b64decode(envelope["payload"]).replace(seal.encode(), b"0" * 64)
    envelope["payload"] = base64.b64encode(payload).decode()
    lines[0] = json.dumps(envelope, separators=(",", ":")).encode()
    (join / "records.jsonl").write_bytes(b"\n".join(lines))
    done = run_vqual("verify", str(change), state_dir=sliced["state"])
    assert done.returncode == 1, done.stdout
    assert f"run {join.name}: invalid" in done.stdout, done.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--slice", "3/2", "--slice-parent", PARENT], "index 3 is not in 1..2"),
    (["--slice", "two", "--slice-parent", PARENT], "give INDEX/COUNT"),
    (["--slice", "1/2"], "need --slice-parent"),
    (["--slice", "1/2", "--slice-parent", "a b"], "is not a plain id"),
])
def test_bad_slice_options_are_one_line_exit_2_nothing_written(
    sliced: dict[str, Any], tmp_path: Path, args: list[str], message: str
) -> None:
    done = run_vqual("qualify", "--evidence-dir", str(tmp_path / "evidence"), "-i",
                     str(LOCAL_INV), "-s", str(sliced["spec"]), "-c", CHANGE, *args,
                     state_dir=sliced["state"])
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "evidence").exists()


def test_the_join_refuses_a_missing_slice_naming_it(sliced: dict[str, Any]) -> None:
    change = _copy(sliced, "missing")
    shutil.rmtree(change / Path(sliced["join"]["bundle"]).name)
    shutil.rmtree(change / sliced["runs"][1].name)
    done = run_vqual("join", str(change), "--parent", PARENT, state_dir=sliced["state"])
    assert done.returncode == 3, done.stdout + done.stderr
    assert "slice 2 of 2 has no sealed run" in done.stderr and "Traceback" not in done.stderr
    assert len(list(change.iterdir())) == 1


def test_a_rolling_patch_takes_no_slice_option(sliced: dict[str, Any]) -> None:
    done = run_vqual("patch", "--slice", "1/2", state_dir=sliced["state"])
    # A patch plans and holds the whole cluster: it has no slice option to take.
    assert done.returncode == 2 and "No such option '--slice'" in done.stderr, done.stderr


def test_awx_slice_jobs_record_their_workflow_job_and_join(tmp_path: Path) -> None:
    # Two slice jobs as AWX runs them (each on its own execution node: its own evidence
    # directory), told only their job id and their workflow job's id (awx_meta_vars).
    import ansible_runner

    from qualification.execution.keys import create_trusted_key
    from tests.conftest import VENV_BIN
    from tests.integration.test_aap import PASSPHRASE, PLAYBOOK, _job
    from tests.trustroot_testlib import pin_state

    state = tmp_path / "state"
    create_trusted_key(state / "executor.pem", state, name="AAP executor",
                       identity="aap@example.org", roles=["executor"],
                       passphrase=PASSPHRASE.encode(), throwaway=True, valid_days=1)
    pin_state(state)  # the jobs judge trust through the pinned root
    change = tmp_path / "evidence" / "CHG0000042"
    change.mkdir(parents=True)
    for job in (12, 13):
        pdd = _job(tmp_path / f"node{job}", state, extravars={
            "awx_job_id": job, "awx_workflow_job_id": 11, "awx_job_template_name": "Qualify",
            "awx_workflow_job_name": "Qualify"})
        result = ansible_runner.run(
            private_data_dir=str(pdd), playbook=PLAYBOOK, quiet=True,
            envvars={"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"})
        assert (result.status, result.rc) == ("successful", 0), result.stdout.read()
        (bundle,) = (pdd / "project" / "evidence" / "CHG0000042").iterdir()
        assert _records(bundle)[0]["data"]["slice"] == {
            "index": None, "count": None, "job": str(job), "parent": "11"}
        shutil.copytree(bundle, change / bundle.name)
    # The join runs elsewhere (a later workflow node, a pipeline) with its own executor key.
    create_trusted_key(state / "keys" / "executor.pem", state, name="Join executor",
                       identity="join@example.org", roles=["executor"], passphrase=None,
                       throwaway=True, valid_days=1)
    refused = run_vqual("join", str(change), "--parent", "11", "--expect", "3", state_dir=state)
    assert refused.returncode == 3 and "2 of 3 slices have a sealed run" in refused.stderr, \
        refused.stderr
    joined = run_vqual("join", str(change), "--parent", "11", "--expect", "2", state_dir=state)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    done = run_vqual("verify", str(change), state_dir=state)
    assert done.returncode == 0, done.stdout
    assert len([line for line in done.stdout.splitlines() if "not anchored" in line]) == 1


def test_the_joins_report_names_each_slice_with_its_verdict(sliced: dict[str, Any]) -> None:
    done = run_vqual("report", sliced["join"]["bundle"], state_dir=sliced["state"])
    assert done.returncode == 0, done.stderr
    page = Path(done.stdout.strip().splitlines()[-1]).read_text()
    for index, (run, verdict) in enumerate(
            zip(sliced["runs"], ("pass", "not-executed"), strict=True), start=1):
        assert f"joined slice {index}: run {run.name}, verdict {verdict} (seal)" in page
