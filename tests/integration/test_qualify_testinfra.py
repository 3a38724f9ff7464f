"""`vqual qualify` with `check: testinfra` on the embedded default's localhost: real
ansible-runner, real pytest with testinfra's local backend, real evidence."""

from __future__ import annotations

import base64
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from qualification.execution.recorder import records_as_dicts
from qualification.reports.matrix import traceability
from tests.conftest import REPO, run_vqual

LOCAL_INV = REPO / "inventories" / "local"
EXAMPLE = REPO / "tests" / "fixtures" / "testinfra"
SPEC_TEST = "IQ-TI-001"


def _results(bundle: Path) -> dict[str, dict]:
    out = {}
    for line in (bundle / "records.jsonl").read_text().splitlines():
        record = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if record["kind"] == "check.result":
            out[record["data"]["test_id"]] = record["data"]
    return out


def _qualify(state: Path, tmp_path: Path, spec: Path, *args: str):
    return run_vqual("qualify", "-i", str(LOCAL_INV), "-s", str(spec), "-c", "CHG0000101",
                     "--limit", "localhost", "--evidence-dir", str(tmp_path / "evidence"),
                     "--json", *args, state_dir=state)


def _spec(tmp_path: Path, module: str, suite: bytes | None = None) -> Path:
    """The example spec in ``tmp_path``, naming ``module``; ``suite`` written as it."""
    spec = yaml.safe_load((EXAMPLE / "testinfra-example.yaml").read_text())
    spec["tests"][0]["params"]["module"] = module
    if suite is not None:
        (tmp_path / "suite").mkdir(exist_ok=True)
        (tmp_path / "suite" / "test_site.py").write_bytes(suite)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_the_example_suite_runs_as_spec_tests_and_traces_to_its_urs_ids(
    executor_state: Path, tmp_path: Path
) -> None:
    done = _qualify(executor_state, tmp_path, EXAMPLE / "testinfra-example.yaml")
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid", done.stderr
    bundle = Path(summary["bundle"])
    results = _results(bundle)
    name = f"{SPEC_TEST}::test_passwd_is_owned_by_root_and_not_writable_by_others"
    assert set(results) == {
        name,
        f"{SPEC_TEST}::test_shadow_is_not_readable_by_others",
        f"{SPEC_TEST}::test_coreutils_is_installed",
        f"{SPEC_TEST}::test_the_kernel_is_linux",
        f"{SPEC_TEST}::TestServices::test_cron_or_systemd_timers_run_scheduled_jobs",
    }
    passwd = results[name]
    assert passwd["verdict"] == "pass" and passwd["check"] == "testinfra"
    assert passwd["requirements"] == ["URS-HV-02", "URS-SEC-01"]
    assert passwd["method"] == (
        "test_linux_host.py::test_passwd_is_owned_by_root_and_not_writable_by_others[local]"
    )
    assert passwd["observation_ms"] > 0
    # This controller runs no systemd: the suite's own skip, recorded as not-executed.
    services = results[f"{SPEC_TEST}::TestServices::test_cron_or_systemd_timers_run_scheduled_jobs"]
    if services["verdict"] == "not-executed":
        assert services["reason"].startswith("skipped: no systemd")
    assert services["requirements"] == ["URS-HV-02", "URS-SEC-03"]
    assert summary["counts"]["fail"] == summary["counts"]["error"] == 0
    # The matrix traces each marker's URS id to the tests carrying it.
    rows = {row.requirement: row for row in traceability(records_as_dicts(bundle),
                                                         ["URS-HV-02", "URS-SEC-01", "URS-SEC-03"])}
    assert {t.test_id for t in rows["URS-SEC-01"].tests} == {
        name, f"{SPEC_TEST}::test_shadow_is_not_readable_by_others"}
    assert rows["URS-SEC-01"].status == "covered" and rows["URS-SEC-01"].verdict == "pass"
    assert len(rows["URS-HV-02"].tests) == 5
    report = (bundle / "report.html").read_text()
    assert "URS-SEC-03" in report and name in report
    junit = ET.parse(bundle / "junit.xml").getroot()
    assert sum(1 for tc in junit.iter("testcase") if tc.get("name", "").startswith(SPEC_TEST)) == 5
    # The module that ran is sealed into the bundle with the digest run.start cites.
    for name in ("test_linux_host.py", "conftest.py"):
        sealed = bundle / "data" / "testinfra" / name
        assert sealed.read_bytes() == (EXAMPLE / "suite" / name).read_bytes()
    verify = run_vqual("verify", str(bundle), state_dir=executor_state)
    assert verify.returncode == 0, verify.stdout


def test_failures_and_errors_fail_with_their_message(executor_state: Path, tmp_path: Path) -> None:
    suite = (
        b"def test_ok(host):\n    assert host.file('/').is_directory\n\n\n"
        b"def test_mode(host):\n    assert host.file('/').mode == 0o777, 'root is not 777'\n\n\n"
        b"def test_broken(host):\n    raise ConnectionError('service vqual-x unreachable')\n"
    )
    done = _qualify(executor_state, tmp_path, _spec(tmp_path, "suite/test_site.py", suite))
    assert done.returncode == 1, done.stdout + done.stderr
    bundle = Path(json.loads(done.stdout)["bundle"])
    results = _results(bundle)
    assert results[f"{SPEC_TEST}::test_ok"]["verdict"] == "pass"
    mode = results[f"{SPEC_TEST}::test_mode"]
    assert mode["verdict"] == "fail" and "root is not 777" in mode["reason"]
    # The assertion message is the raw output, kept in the bundle.
    raw = (bundle / mode["raw"]["file"]).read_text() if isinstance(mode["raw"], dict) else mode["raw"]
    assert raw.startswith("AssertionError: root is not 777")
    broken = results[f"{SPEC_TEST}::test_broken"]
    assert broken["verdict"] == "fail"
    assert broken["reason"].startswith("ConnectionError: service vqual-x unreachable")


@pytest.mark.parametrize(
    ("module", "selected", "ran"),
    [
        ("suite/test_site.py", SPEC_TEST, {"test_a", "test_b"}),
        ("suite/test_site.py", f"{SPEC_TEST}::test_b", {"test_b"}),
        ("suite/test_site.py::test_a", SPEC_TEST, {"test_a"}),
    ],
)
def test_a_spec_test_id_selects_its_functions(
    executor_state: Path, tmp_path: Path, module: str, selected: str, ran: set[str]
) -> None:
    suite = b"def test_a(host):\n    pass\n\n\ndef test_b(host):\n    pass\n"
    done = _qualify(executor_state, tmp_path, _spec(tmp_path, module, suite), "--test", selected)
    assert done.returncode == 0, done.stdout + done.stderr
    results = set(_results(Path(json.loads(done.stdout)["bundle"])))
    assert results == {f"{SPEC_TEST}::{name}" for name in ran}


@pytest.mark.parametrize(
    ("module", "suite", "message"),
    [
        ("suite/test_missing.py", None, "testinfra module not found"),
        ("suite/test_site.py", b"def test_x(host:\n    pass\n", "is not valid Python (line 1)"),
        ("suite/test_site.py", b"def helper():\n    pass\n", "has no tests"),
        ("suite/test_site.py::test_nope", b"def test_x(host):\n    pass\n", "no test 'test_nope'"),
    ],
)
def test_a_module_that_cannot_run_is_exit_2_naming_the_test_and_no_bundle(
    executor_state: Path, tmp_path: Path, module: str, suite: bytes | None, message: str
) -> None:
    done = _qualify(executor_state, tmp_path, _spec(tmp_path, module, suite))
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert f"test {SPEC_TEST}: " in lines[0] and message in lines[0]
    assert "spec.yaml" in lines[0]
    assert not (tmp_path / "evidence").exists() or not any((tmp_path / "evidence").rglob("*.jsonl"))


def test_the_suite_runs_unchanged_under_plain_pytest(tmp_path: Path) -> None:
    """The example is a site's suite as written: plain pytest with testinfra runs it too."""
    import subprocess
    import sys

    shutil.copytree(EXAMPLE / "suite", tmp_path / "suite")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", "/dev/null", "-p", "no:cacheprovider", "-q",
         "--strict-markers", "--hosts=local://", str(tmp_path / "suite")],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout
