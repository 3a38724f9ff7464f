"""The self checks of the features `vqual selftest` qualifies at the site: each passes on the
real thing here and fails (or is not executed, with its reason) when fed a broken input.

ST-IQ-05 (VQ-28, optional extras), ST-OQ-10/11 (VQ-25, record kinds), ST-OQ-12 (VQ-26,
rolling-patch steps version), ST-OQ-13 (VQ-29, trusted time).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from qualification.evidence.kinds import REGISTRY
from qualification.selftest import (
    Scratch,
    SelfCheck,
    install,
    kinds,
    platforms,
    repo_golden_dir,
    resume,
    timestamp,
)
from qualification.selftest.run import _run_check


@pytest.fixture
def scratch(tmp_path: Path) -> Callable[[], Scratch]:
    made = Scratch(tmp_path / "scratch")
    return lambda: made


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    """A copy of the source tree's golden directory, to break."""
    source = repo_golden_dir()
    assert source is not None
    shutil.copytree(source, tmp_path / "golden")
    return tmp_path / "golden"


def _recorded(check: SelfCheck) -> dict[str, Any]:
    return _run_check(check, "vqual@test")


def _by_id(checks: list[SelfCheck]) -> dict[str, dict[str, Any]]:
    return {c.test_id: _recorded(c) for c in checks}


# ---------------------------------------------------------------- VQ-25: record kinds


def test_every_registered_kind_keeps_its_golden_records_and_they_verify_in_a_bundle(
    golden: Path, scratch: Callable[[], Scratch]
) -> None:
    results = _by_id(kinds.kind_checks(golden, scratch))
    assert set(results) == {f"ST-OQ-10-{name}" for name in REGISTRY} | {"ST-OQ-11"}
    for test_id, data in results.items():
        assert data["verdict"] == "pass", (test_id, data["reason"])
        assert data["requirements"] == ["VQ-25"] and data["reason"] is None
    assert results["ST-OQ-10-check.result"]["observed"] == {"records": 3, "as_stored": 3}
    trip = results["ST-OQ-11"]["observed"]
    assert trip["status"] == "valid" and trip["records"]["check.result"] == 3


def _edit_fixture(golden: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    path = golden / "kinds" / f"{name}.json"
    fixture = json.loads(path.read_text())
    edit(fixture)
    path.write_text(json.dumps(fixture))


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda ex: ex.update(canonical_sha256="0" * 64), "record 1: canonical digest"),
        (lambda ex: ex["report_rows"][0]["fields"].update(verdict="pass"),
         "record 1: report rows differ from the stored ones"),
        (lambda ex: ex["audit_line"].__setitem__("what", "check.result") if ex["audit_line"]
         else ex.update(audit_line={"what": "x", "detail": "y", "who": None}),
         "record 1: audit line differs from the stored one"),
    ],
    ids=["digest", "report-rows", "audit-line"],
)
def test_a_kind_whose_golden_record_differs_fails_naming_the_record_and_what(
    golden: Path, scratch: Callable[[], Scratch], edit: Callable[[dict[str, Any]], None],
    said: str
) -> None:
    _edit_fixture(golden, "check.result", lambda f: edit(f["examples"][1]))
    results = _by_id(kinds.kind_checks(golden, scratch))
    broken = results["ST-OQ-10-check.result"]
    assert broken["verdict"] == "fail"
    assert broken["reason"].startswith(said)
    assert broken["observed"] == {"records": 3, "as_stored": 2}
    assert results["ST-OQ-10-run.start"]["verdict"] == "pass"


def test_a_registered_kind_without_a_fixture_and_a_fixture_without_a_kind_fail(
    golden: Path, scratch: Callable[[], Scratch]
) -> None:
    (golden / "kinds" / "action.json").rename(golden / "kinds" / "action.retired.json")
    results = _by_id(kinds.kind_checks(golden, scratch))
    assert results["ST-OQ-10-action"]["verdict"] == "fail"
    assert "no golden fixture" in results["ST-OQ-10-action"]["reason"]
    assert results["ST-OQ-10-action.retired"]["verdict"] == "fail"
    assert "not a registered kind" in results["ST-OQ-10-action.retired"]["reason"]


def test_a_golden_record_that_does_not_verify_in_a_bundle_fails_the_round_trip(
    golden: Path, scratch: Callable[[], Scratch]
) -> None:
    _edit_fixture(golden, "run.start",
                  lambda f: f["examples"][0]["record"]["data"].update(planned="all"))
    trip = _recorded(kinds.kind_checks(golden, scratch)[-1])
    assert trip["test_id"] == "ST-OQ-11" and trip["verdict"] == "fail"
    assert trip["observed"]["status"] == "invalid"
    assert "planned must be a list" in trip["reason"]


def test_without_record_kind_fixtures_those_checks_are_not_executed_saying_why(
    tmp_path: Path, scratch: Callable[[], Scratch]
) -> None:
    for golden in (None, tmp_path):  # none given; a golden directory without kinds/
        results = _by_id(kinds.kind_checks(golden, scratch))
        assert set(results) == {"ST-OQ-10", "ST-OQ-11"}
        assert {d["verdict"] for d in results.values()} == {"not-executed"}
        assert "--golden DIR" in results["ST-OQ-10"]["reason"]


# ---------------------------------------------------------------- VQ-26: steps version


def test_the_steps_version_rule_holds_here(tmp_path: Path) -> None:
    (check,) = resume.resume_checks(lambda: tmp_path)
    data = _recorded(check)
    assert data["test_id"] == "ST-OQ-12" and data["requirements"] == ["VQ-26"]
    assert data["verdict"] == "pass", data["reason"]
    assert data["observed"] == {"no steps version": "refused", "next steps version": "refused",
                                "same steps version": "accepted"}


def test_a_resume_that_ignores_the_steps_version_fails_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qualification.rollout import orchestrator

    # A vqual that lost the rule: resumable() goes on with any journal.
    monkeypatch.setattr(orchestrator, "check_steps_version", lambda chain, run_id: None)
    data = _recorded(resume.resume_checks(lambda: tmp_path)[0])
    assert data["verdict"] == "fail"
    assert data["observed"]["no steps version"] == "accepted"
    assert data["reason"] == "no steps version: accepted; next steps version: accepted"


def test_a_same_version_journal_of_another_change_is_refused_and_fails_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Broken input: the journals name another change, so even the same version is refused,
    # for another reason than the steps version.
    real = resume._halted_journal
    monkeypatch.setattr(resume, "_halted_journal",
                        lambda state, run_id, change_id, digest, version:
                        real(state, run_id, "CHG0000099", digest, version))
    data = _recorded(resume.resume_checks(lambda: tmp_path)[0])
    assert data["verdict"] == "fail"
    assert data["observed"]["same steps version"] == "refused otherwise"
    # The steps version is judged first: the other two are still refused for it.
    assert data["observed"]["no steps version"] == "refused"
    assert data["reason"] == ("same steps version: refused otherwise (run "
                              "20000101T000003Z-5e1f7e is change CHG0000099, not CHG0000043)")


# ---------------------------------------------------------------- VQ-28: extras


def test_every_installed_extra_is_in_its_declared_version_here() -> None:
    results = _by_id(install.extras_checks(install._declared()))
    assert set(results) == {"ST-IQ-05-libvirt", "ST-IQ-05-vsphere", "ST-IQ-05-hyperv",
                            "ST-IQ-05-pdf", "ST-IQ-05-server"}
    for data in results.values():
        assert data["verdict"] == "pass", data["reason"]
        assert data["requirements"] == ["VQ-28"]
    assert set(results["ST-IQ-05-vsphere"]["observed"]) == {"pyvmomi"}
    assert results["ST-IQ-05-vsphere"]["expected"]["value"] == {"pyvmomi": ">=8.0"}


def _declared_with(line: str) -> list[Requirement]:
    extra = Requirement(line).marker
    assert extra is not None
    return [r for r in install._declared() if str(r.marker) != str(extra)] + [Requirement(line)]


def test_an_installed_extra_below_its_declared_version_fails_with_both_versions() -> None:
    declared = _declared_with('pyvmomi>=99; extra == "vsphere"')
    data = _by_id(install.extras_checks(declared))["ST-IQ-05-vsphere"]
    assert data["verdict"] == "fail"
    installed = data["observed"]["pyvmomi"]
    assert data["reason"] == f"pyvmomi {installed} is not >=99"


def test_an_absent_extra_is_a_sites_choice_and_not_planned() -> None:
    declared = _declared_with('vqual-absent-renderer>=1; extra == "pdf"')
    assert install.extra_absent("pdf", install.extra_requirements("pdf", declared)) == (
        "PDF output needs weasyprint, which is not installed: pip install 'vqual[pdf]'"
    )
    results = _by_id(install.extras_checks(declared))
    assert "ST-IQ-05-pdf" not in results
    assert {"ST-IQ-05-libvirt", "ST-IQ-05-vsphere", "ST-IQ-05-hyperv"} <= set(results)


def test_an_extra_missing_from_the_installed_metadata_fails() -> None:
    declared = [r for r in install._declared() if "hyperv" not in str(r.marker)]
    data = _by_id(install.extras_checks(declared))["ST-IQ-05-hyperv"]
    assert data["verdict"] == "fail"
    assert "declares no requirement for extra 'hyperv'" in data["reason"]


# ---------------------------------------------------------------- VQ-29: trusted time


def test_the_stored_token_is_package_data_and_verifies_only_as_it_should() -> None:
    (check,) = timestamp.timestamp_checks()
    data = _recorded(check)
    assert data["test_id"] == "ST-OQ-13" and data["requirements"] == ["VQ-29"]
    assert data["verdict"] == "pass", data["reason"]
    assert data["observed"] == timestamp.WANT
    token, root = timestamp.stored_token()
    assert token[:1] == b"\x30" and root.startswith(b"-----BEGIN CERTIFICATE-----")


def test_a_token_checked_with_another_root_fails_the_check() -> None:
    token, _ = timestamp.stored_token()
    outcome = timestamp.trusted_time(token, timestamp._other_root())
    assert not outcome.ok
    assert outcome.observed["its digest, root and time"] == "refused"
    assert outcome.reason is not None
    assert outcome.reason.startswith("its digest, root and time: refused (")
    assert "does not chain" in outcome.reason


def test_a_damaged_token_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    token, root = timestamp.stored_token()
    outcome = timestamp.trusted_time(token[:-40], root)
    assert not outcome.ok
    assert outcome.observed == {"its digest, root and time": "refused",
                                **{case: "refused otherwise" for case in list(timestamp.WANT)[1:]}}
    assert "not an RFC 3161 time-stamp token" in (outcome.reason or "")


def test_a_token_of_another_time_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    monkeypatch.setattr(timestamp, "TOKEN_TIME", timestamp.TOKEN_TIME + timedelta(hours=1))
    outcome = timestamp.trusted_time(*timestamp.stored_token())
    assert not outcome.ok
    assert outcome.observed["its digest, root and time"] == "refused"
    assert "outside" in (outcome.reason or "")


# ---------------------------------------------------------------- VQ-24: platform registry


def test_the_shipped_platforms_are_registered_by_this_vqual() -> None:
    results = _by_id(platforms.platform_checks())
    data = results["ST-IQ-06"]
    assert data["verdict"] == "pass", data["reason"]
    assert data["requirements"] == ["VQ-24"]
    for name in ("libvirt", "vsphere", "hyperv"):
        assert data["observed"][name]["distribution"] == "vqual"
        assert data["observed"][name]["entry_point"].startswith("qualification.platforms.")


def test_a_shipped_platform_that_is_not_registered_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(platforms, "SHIPPED", ("libvirt", "xen"))
    data = _by_id(platforms.platform_checks())["ST-IQ-06"]
    assert data["verdict"] == "fail"
    assert data["reason"] == "xen: not registered"


def test_an_unknown_platform_is_refused_in_one_line_naming_the_registered() -> None:
    data = _by_id(platforms.platform_checks())["ST-OQ-14"]
    assert data["verdict"] == "pass", data["reason"]
    assert platforms.NO_SUCH in data["observed"]
    assert all(name in data["observed"] for name in ("libvirt", "vsphere", "hyperv"))


def test_a_registry_that_answers_for_an_unknown_name_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(platforms, "NO_SUCH", "libvirt")  # a name the registry does know
    data = _by_id(platforms.platform_checks())["ST-OQ-14"]
    assert data["verdict"] == "fail"
    assert data["reason"] == "registry.get('libvirt') returned a plug-in"
