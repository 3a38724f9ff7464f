"""A ``check.result`` for a test its ``run.start`` did not plan is refused (VQ-93): by the
verifier, ``vqual verify`` and (same code) the evidence server's push. The bundle is written
as an honest executor would write it, counts and renderings included, so the plan is the
only thing that tells."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from qualification.cli import main
from qualification.evidence.verify import verify_bundle
from tests.unit.evidence.evidence_testlib import CHANGE, build_bundle, make_keys

RUN = "20260301T100000Z-a1b2c3"


def test_a_result_for_a_test_the_run_did_not_plan_is_refused_naming_it(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "state")
    build_bundle(tmp_path / "ev", keys, RUN, unplanned=(("EXTRA-01", "kvm01.lab"),))
    result = verify_bundle(tmp_path / "ev" / CHANGE / RUN, keys.trust, workers=1)
    assert result.status == "invalid"
    assert len(result.problems) == 1, result.problems
    assert result.problems[0].endswith(
        "check.result for test 'EXTRA-01', which run.start did not plan")


def test_the_same_bundle_without_the_extra_result_verifies(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "state")
    build_bundle(tmp_path / "ev", keys, RUN)
    result = verify_bundle(tmp_path / "ev" / CHANGE / RUN, keys.trust, workers=1)
    assert result.status == "valid", result.problems


def test_a_planned_test_id_needs_no_more_than_its_id(tmp_path: Path) -> None:
    # The plan names tests by id: a planned test on another host is not what this refuses.
    keys = make_keys(tmp_path / "state")
    build_bundle(tmp_path / "ev", keys, RUN, unplanned=(("KVM-01", "kvm09.lab"),))
    result = verify_bundle(tmp_path / "ev" / CHANGE / RUN, keys.trust, workers=1)
    assert not any("did not plan" in p for p in result.problems), result.problems


def test_vqual_verify_refuses_it_in_one_line_with_exit_1(tmp_path: Path) -> None:
    state = tmp_path / "state"
    keys = make_keys(state, pinned=True)
    build_bundle(tmp_path / "ev", keys, RUN, unplanned=(("EXTRA-01", "kvm01.lab"),))
    done = CliRunner().invoke(main, ["verify", str(tmp_path / "ev" / CHANGE / RUN),
                                     "--state-dir", str(state)])
    assert done.exit_code == 1, done.output
    assert "Traceback" not in done.output
    lines = done.stdout.splitlines()
    assert lines[0].endswith(": INVALID")
    named = [line for line in lines if "EXTRA-01" in line]
    assert len(named) == 1 and "which run.start did not plan" in named[0]
    assert lines[1] == named[0]  # the one problem, right under the status


def test_a_difference_result_of_a_planned_test_belongs_to_it(tmp_path: Path) -> None:
    # drift, clone and conversion runs record one result per difference under the test
    keys = make_keys(tmp_path / "state")
    build_bundle(tmp_path / "ev", keys, RUN, unplanned=(
        ("KVM-01:file:/etc/motd", "kvm01.lab"), ("EXTRA-01:file:/etc/motd", "kvm01.lab")))
    result = verify_bundle(tmp_path / "ev" / CHANGE / RUN, keys.trust, workers=1)
    assert [p.split(": ", 1)[1] for p in result.problems] == [
        "check.result for test 'EXTRA-01:file:/etc/motd', which run.start did not plan"]
