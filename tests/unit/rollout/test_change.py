"""change.yaml (vqual.change/v1): what loads, the defaults, and a file:line error for every
malformed field."""

from __future__ import annotations

import hashlib
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qualification.errors import EXIT_BAD_INPUT, BadInputError, SpecError
from qualification.rollout.change import (
    DEFAULT_HEADROOM,
    DEFAULT_MAX_PARALLEL_MIGRATIONS,
    DEFAULT_MIGRATION_TIMEOUT_S,
    DEFAULT_STEP_TIMEOUT_S,
    DEFAULT_VCPU_RATIO,
    load_change,
)

REPO = Path(__file__).resolve().parents[3]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"

# Risk medium: a high-risk change must also name an OQ canary or waive it (tests below).
MINIMAL = """\
apiVersion: vqual.change/v1
change_id: CHG0000042
title: Patch the lab cluster
risk: medium
cluster: lab-kvm
target:
  packages:
    vqual-lab-agent: "1.1"
window:
  start: "2026-11-26T20:00:00Z"
  end: "2026-11-27T02:00:00Z"
"""


def write(tmp_path: Path, text: str, name: str = "change.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_minimal_change_loads_with_documented_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    change = load_change(path)
    assert change.change_id == "CHG0000042"
    assert change.risk == "medium"
    assert change.cluster == "lab-kvm"
    assert dict(change.target.packages) == {"vqual-lab-agent": "1.1"}
    assert change.target.hypervisor_version is None
    assert change.window.start == datetime(2026, 11, 26, 20, tzinfo=UTC)
    assert change.window.end == datetime(2026, 11, 27, 2, tzinfo=UTC)
    assert change.headroom == DEFAULT_HEADROOM == 0.1
    assert change.vcpu_ratio == DEFAULT_VCPU_RATIO == 4.0
    assert change.max_parallel_migrations == DEFAULT_MAX_PARALLEL_MIGRATIONS == 2
    assert change.migration_timeout_s == DEFAULT_MIGRATION_TIMEOUT_S == 600
    assert change.step_timeout_s == DEFAULT_STEP_TIMEOUT_S == 1800
    assert change.stop_approved == () and change.exclude_hosts == ()
    assert change.anti_affinity == () and change.requalify is None
    assert change.canary_vm is None and change.canary_waiver is None
    assert change.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert change.path == path


def test_full_change_loads_every_field(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "req.yaml").write_text("apiVersion: vqual/v1\n")
    path = write(
        tmp_path,
        MINIMAL.replace(
            'target:\n  packages:\n    vqual-lab-agent: "1.1"\n',
            'target:\n  hypervisor_version: "8.0.2"\n  hypervisor_build: "22380479"\n',
        )
        + """\
headroom: 0.25
vcpu_ratio: 2
max_parallel_migrations: 3
migration_timeout_s: 120.5
step_timeout_s: 900
stop_approved:
  - {vm: db1, max_downtime_s: 600}
exclude_hosts:
  - {host: esx4, reason: "  RMA of a  DIMM, ticket 77 "}
anti_affinity:
  - [web1, web2, web3]
requalify:
  spec: specs/req.yaml
  tests: [IQ-1, OQ-2]
  canary_vm: canary
""",
    )
    change = load_change(path)
    assert change.target.hypervisor_version == "8.0.2"
    assert change.target.hypervisor_build == "22380479"
    assert change.headroom == 0.25 and change.vcpu_ratio == 2.0
    assert change.max_parallel_migrations == 3
    assert change.migration_timeout_s == 120.5 and change.step_timeout_s == 900
    approval = change.stop_approval("db1")
    assert approval is not None and approval.max_downtime_s == 600
    assert change.stop_approval("web1") is None
    exclusion = change.exclusion("esx4")
    assert exclusion is not None and exclusion.reason == "RMA of a DIMM, ticket 77"
    assert change.exclusion("esx1") is None
    assert change.anti_affinity == (("web1", "web2", "web3"),)
    assert change.requalify is not None
    assert change.requalify.spec == tmp_path / "specs" / "req.yaml"
    assert change.requalify.tests == ("IQ-1", "OQ-2")
    assert change.requalify.canary_vm == "canary"
    data = change.to_json()
    assert data["window"] == {"start": "2026-11-26T20:00:00Z", "end": "2026-11-27T02:00:00Z"}
    assert data["digest"] == change.digest


def test_window_contains_is_half_open(tmp_path: Path) -> None:
    window = load_change(write(tmp_path, MINIMAL)).window
    assert window.contains(datetime(2026, 11, 26, 20, tzinfo=UTC))
    assert window.contains(datetime(2026, 11, 27, 1, 59, 59, tzinfo=UTC))
    assert not window.contains(datetime(2026, 11, 27, 2, tzinfo=UTC))
    assert not window.contains(datetime(2026, 11, 26, 19, 59, 59, tzinfo=UTC))


def test_the_shipped_example_changes_load() -> None:
    examples = sorted((COLLECTION / "specs" / "changes").glob("*.yaml"))
    assert {p.name for p in examples} >= {"lab-kvm-agent-1.1.yaml", "vcsim-esxi-patch.yaml"}
    for path in examples:
        change = load_change(path, change_id_pattern=r"^CHG[0-9]{7}$")
        assert change.requalify is not None and change.requalify.spec.is_file()
        # Each names its OQ canary, or says why it has none.
        assert change.canary_vm or (change.canary_waiver and change.canary_waiver.reason), path
    # The simulator's cluster VMs are DC0_C0_RP0_VM0..3 (VM3 the lab's template): VM2 is a
    # plain VM of the change's cluster, the one tests/integration/test_rolling_patch_vcsim.py
    # uses as its canary.
    vcsim = load_change(COLLECTION / "specs" / "changes" / "vcsim-esxi-patch.yaml")
    assert (vcsim.risk, vcsim.cluster, vcsim.canary_vm) == ("high", "DC0_C0", "DC0_C0_RP0_VM2")
    # The lab's KVM change names the lab's Master-VM (defined on kvm1, never run), which a
    # host in maintenance takes moved cold; no waiver.
    lab = load_change(COLLECTION / "specs" / "changes" / "lab-kvm-agent-1.1.yaml")
    assert (lab.cluster, lab.canary_vm, lab.canary_waiver) == ("lab-kvm", "master", None)


# Each case: a replacement applied to MINIMAL (or text appended), the line the error must
# name, and a fragment of the message.
BAD = [
    (
        "apiVersion: vqual.change/v1",
        "apiVersion: vqual/v1",
        1,
        "apiVersion: 'vqual/v1' is not supported",
    ),
    ("change_id: CHG0000042", "change_id: ../etc", 2, "not a safe name"),
    ("change_id: CHG0000042", "change_id: 42", 2, "change_id: must be a non-empty string"),
    ("title: Patch the lab cluster", "title: ''", 3, "title: must be a non-empty string"),
    ("risk: medium", "risk: extreme", 4, "risk: 'extreme' is not one of high, medium, low"),
    ("cluster: lab-kvm", "cluster: lab kvm", 5, "must not contain white space"),
    ('    vqual-lab-agent: "1.1"', "    vqual-lab-agent: 1.1", 8, "must be a quoted string"),
    ('  packages:\n    vqual-lab-agent: "1.1"', "  packages: {}", 7, "non-empty mapping"),
    (
        '  packages:\n    vqual-lab-agent: "1.1"',
        '  version: "1"',
        7,
        "target.version: unknown field",
    ),
    ('  start: "2026-11-26T20:00:00Z"', "  start: 2026-11-26T20:00:00Z", 10, "(quote it)"),
    (
        '  start: "2026-11-26T20:00:00Z"',
        '  start: "2026-11-26T20:00:00+01:00"',
        10,
        "not a UTC time",
    ),
    ('  start: "2026-11-26T20:00:00Z"', '  start: "2026-11-26"', 10, "not a UTC time"),
    ('  start: "2026-11-26T20:00:00Z"', '  start: "2026-02-30T20:00:00Z"', 10, "not a valid time"),
    (
        '  end: "2026-11-27T02:00:00Z"',
        '  end: "2026-11-26T20:00:00Z"',
        11,
        "window.end: must be after",
    ),
]
APPENDED = [
    ("headroom: 1.0", 12, "headroom: 1.0 is out of range (must be >= 0 and < 1)"),
    ("headroom: -0.1", 12, "out of range"),
    ("headroom: true", 12, "headroom: must be a number, not a boolean"),
    ("vcpu_ratio: 0", 12, "vcpu_ratio: 0 is out of range"),
    ("max_parallel_migrations: 0", 12, "out of range (1..64)"),
    ("max_parallel_migrations: 1.5", 12, "must be an integer"),
    ("migration_timeout_s: 0", 12, "migration_timeout_s: 0 is out of range"),
    ("step_timeout_s: '60'", 12, "step_timeout_s: must be a number, not a string"),
    (
        "stop_approved:\n  - {vm: a}",
        13,
        "stop_approved[0]: missing required field 'max_downtime_s'",
    ),
    (
        "stop_approved:\n  - {vm: a, max_downtime_s: 5}\n  - {vm: a, max_downtime_s: 9}",
        14,
        "listed twice",
    ),
    (
        "stop_approved:\n  - {vm: a, max_downtime_s: 5, why: x}",
        13,
        "stop_approved[0].why: unknown field",
    ),
    ("stop_approved: {vm: a}", 12, "stop_approved: must be a list, not a mapping"),
    ("exclude_hosts:\n  - {host: esx1}", 13, "missing required field 'reason'"),
    (
        "exclude_hosts:\n  - host: esx1\n    reason: ''",
        14,
        "exclude_hosts[0].reason: must be a non-empty string",
    ),
    ("anti_affinity:\n  - [web1]", 13, "at least two VMs"),
    ("anti_affinity:\n  - [web1, web1]", 13, "lists a VM twice"),
    ("requalify:\n  tests: [a]", 12, "missing required field 'spec'"),
    ("requalify:\n  spec: missing.yaml", 13, "requalify.spec: spec file"),
    ("canary_waiver: {}", 12, "canary_waiver: missing required field 'reason'"),
    ("canary_waiver:\n  reason: ' '", 13, "canary_waiver.reason: must be a non-empty string"),
    ("canary_waiver: {reason: x, by: me}", 12, "canary_waiver.by: unknown field"),
    ("canary_waiver: no canary", 12, "canary_waiver: must be a mapping, not a string"),
    ("colour: blue", 12, "colour: unknown field"),
]


@pytest.mark.parametrize(("old", "new", "line", "fragment"), BAD)
def test_malformed_field_names_file_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, fragment: str
) -> None:
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new))
    with pytest.raises(SpecError) as caught:
        load_change(path)
    assert caught.value.where == f"{path}:{line}"
    assert fragment in caught.value.message
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert "\n" not in caught.value.one_line()


@pytest.mark.parametrize(("extra", "line", "fragment"), APPENDED)
def test_malformed_optional_field_names_its_line(
    tmp_path: Path, extra: str, line: int, fragment: str
) -> None:
    path = write(tmp_path, MINIMAL + extra + "\n")
    with pytest.raises(SpecError) as caught:
        load_change(path)
    assert caught.value.where == f"{path}:{line}"
    assert fragment in caught.value.message


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("risk: medium\n", ""))
    with pytest.raises(SpecError, match="missing required field 'risk'"):
        load_change(path)


def test_target_must_name_something(tmp_path: Path) -> None:
    text = MINIMAL.replace('  packages:\n    vqual-lab-agent: "1.1"\n', "  {}\n").replace(
        "target:\n  {}", "target: {}"
    )
    path = write(tmp_path, text)
    with pytest.raises(SpecError, match="names nothing to patch to") as caught:
        load_change(path)
    assert caught.value.where == f"{path}:6"


def test_site_change_id_pattern_is_applied(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    assert load_change(path, change_id_pattern=r"^CHG[0-9]{7}$").change_id == "CHG0000042"
    with pytest.raises(SpecError, match="does not match the pattern") as caught:
        load_change(path, change_id_pattern=r"^RFC-[0-9]+$")
    assert caught.value.where == f"{path}:2"


def test_unreadable_empty_and_non_utf8_files_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot read change file"):
        load_change(tmp_path / "absent.yaml")
    with pytest.raises(SpecError, match="change file is empty"):
        load_change(write(tmp_path, "# nothing\n"))
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(MINIMAL.encode() + b"title2: caf\xe9\n")
    with pytest.raises(SpecError, match="not UTF-8") as caught:
        load_change(bad)
    assert caught.value.where == f"{bad}:12"


def test_digest_follows_the_bytes(tmp_path: Path) -> None:
    one = load_change(write(tmp_path, MINIMAL, "a.yaml"))
    # same meaning, different bytes (a comment): a different file, so a different digest
    two = load_change(write(tmp_path, "# reviewed\n" + MINIMAL, "b.yaml"))
    assert one.to_json() | {"digest": "", "path": ""} == two.to_json() | {"digest": "", "path": ""}
    assert one.digest != two.digest


# -- the OQ canary of a high-risk change --------------------------------------------------------

HIGH = MINIMAL.replace("risk: medium", "risk: high")


def _spec(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir(exist_ok=True)
    (tmp_path / "specs" / "req.yaml").write_text("apiVersion: vqual/v1\n")


def test_a_high_risk_change_without_a_canary_is_refused_naming_file_and_field(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, HIGH)
    with pytest.raises(SpecError) as caught:
        load_change(path)
    error = caught.value
    assert error.exit_code == EXIT_BAD_INPUT
    assert error.where == f"{path}:4"  # no requalify section: the line of risk
    assert error.message.startswith("requalify.canary_vm: a high-risk change must name an OQ canary")
    assert "canary_waiver: {reason: ...}" in error.message
    assert "\n" not in error.one_line() and error.one_line().startswith(f"{path}:4: ")


def test_the_refusal_points_at_requalify_when_it_names_no_canary(tmp_path: Path) -> None:
    _spec(tmp_path)
    path = write(tmp_path, HIGH + "requalify:\n  spec: specs/req.yaml\n")
    with pytest.raises(SpecError, match="requalify.canary_vm: a high-risk change") as caught:
        load_change(path)
    assert caught.value.where == f"{path}:12"
    null = write(tmp_path, HIGH + "requalify:\n  spec: specs/req.yaml\n  canary_vm: null\n", "n.yaml")
    with pytest.raises(SpecError, match="requalify.canary_vm: a high-risk change") as caught:
        load_change(null)
    assert caught.value.where == f"{null}:14"


def test_a_high_risk_change_with_a_canary_loads(tmp_path: Path) -> None:
    _spec(tmp_path)
    change = load_change(
        write(tmp_path, HIGH + "requalify:\n  spec: specs/req.yaml\n  canary_vm: DC0_C0_RP0_VM2\n")
    )
    assert change.risk == "high" and change.canary_vm == "DC0_C0_RP0_VM2"
    assert change.canary_waiver is None


def test_a_waiver_with_a_reason_lets_a_high_risk_change_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HIGH + "canary_waiver:\n  reason: >-\n    no powered-off VM\n    in this  cluster\n",
    )
    change = load_change(path)
    assert change.canary_vm is None
    assert change.canary_waiver is not None
    assert change.canary_waiver.reason == "no powered-off VM in this cluster"
    assert change.to_json()["canary_waiver"] == {"reason": "no powered-off VM in this cluster"}


def test_a_canary_and_a_waiver_together_are_refused(tmp_path: Path) -> None:
    _spec(tmp_path)
    text = (
        HIGH
        + "requalify:\n  spec: specs/req.yaml\n  canary_vm: c1\n"
        + "canary_waiver: {reason: none}\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(SpecError, match="names 'c1': keep one") as caught:
        load_change(path)
    assert caught.value.where == f"{path}:15"


def test_a_malformed_field_is_named_before_the_missing_canary(tmp_path: Path) -> None:
    path = write(tmp_path, HIGH + "exclude_hosts:\n  - {host: esx1}\n")
    with pytest.raises(SpecError, match="missing required field 'reason'") as caught:
        load_change(path)
    assert caught.value.where == f"{path}:13"
