"""The run context: config, spec, trust store and review state loaded once per run and
handed across the process boundary intact."""

from __future__ import annotations

import hashlib
import json
import stat
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

import qualification.config
import qualification.review.approval
import qualification.review.deviations
import qualification.review.trust_history
import qualification.spec.loader
from qualification.errors import BadInputError, TrustError
from qualification.evidence.records import format_time
from qualification.evidence.verify import verify_bundle
from qualification.execution.context import (
    HANDOFF_FILE,
    RUN_CONTEXT_DIGEST_ENV,
    RUN_CONTEXT_ENV,
    RunContext,
    handed_over,
    handoff_environment,
    load_run_context,
    read_handoff,
    write_handoff,
)
from qualification.execution.planning import RunPlan, plan_in_playbook
from qualification.execution.qualify import QualifyRequest, preflight
from qualification.execution.recorder import RunRecorder, open_signer
from qualification.review.approval import approve_protocol
from qualification.review.deviations import approve_deviation
from qualification.signing import TrustStore
from tests.trustroot_testlib import pin_state
from tests.unit.execution.runlib import (
    CHANGE,
    FAILING,
    PASSING,
    RUN,
    executor_state,
    local_host,
    write_spec,
)
from tests.unit.review.reviewlib import add_person

HOSTVARS = {"localhost": local_host()}
GROUPS = {"all": ["localhost"], "ungrouped": ["localhost"]}


def _count_loads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count every load of a run input where it happens, whoever asks for it (the real
    functions still run): config file, spec read and validation, trust store read and its
    history check, deviations file, approvals."""
    counts: Counter[str] = Counter()

    def spy(owner: Any, name: str, label: str) -> None:
        real: Callable[..., Any] = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[label] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)

    spy(qualification.config, "_load", "config")
    spy(qualification.spec.loader, "read_located", "spec read")
    spy(qualification.spec.loader, "_check_schema", "spec validated")
    # The history walk, whether through the pinned root or the store's own check.
    spy(qualification.review.trust_history, "_walk", "trust history")
    spy(qualification.review.deviations, "load_deviations", "deviations")
    spy(qualification.review.approval, "find_approvals", "approvals")
    real_load = TrustStore.load.__func__  # type: ignore[attr-defined]

    def counted_load(cls: type[TrustStore], path: Any) -> TrustStore:
        if Path(path).name == "trust.yaml":  # not the signed versions in trust-history/
            counts["trust read"] += 1
        store: TrustStore = real_load(cls, path)
        return store

    monkeypatch.setattr(TrustStore, "load", classmethod(counted_load))
    return counts


def _request(state: Path, key: Path, spec: Path, tmp_path: Path) -> QualifyRequest:
    def no_passphrase() -> bytes:
        raise AssertionError("a service key has no passphrase")

    return QualifyRequest(
        inventory=tmp_path / "inventory.yml", spec=spec, change_id=CHANGE, key_file=key,
        passphrase_reader=no_passphrase, evidence_dir=tmp_path / "evidence",
        state_dir=state, initiator="tester", run_id=RUN,
    )


def _review_inputs(state: Path, spec: Path) -> None:
    """A site that requires approval, an approved protocol and an approved deviation."""
    (state / "config.yaml").write_text("require_protocol_approval: true\n")
    approver = add_person(state, "Ada Approver", "ada@example.com", ["approver"])
    pin_state(state)  # the approver enters the store before it approves
    trust = TrustStore.load(state / "trust.yaml")
    approve_protocol(spec, approver.signer(), trust, state, "fit for the run")
    folder = state / "deviations" / CHANGE
    folder.mkdir(parents=True)
    (folder / "deviations.yaml").write_text(yaml.safe_dump({
        "version": 1, "change_id": CHANGE, "deviations": [{
            "id": "DEV-001", "test_id": "IQ-T-002", "target": "localhost",
            "justification": "accepted until the rebuild",
            "expiry": format_time(datetime.now(UTC) + timedelta(days=30)),
            "owner": "ops@example.com",
        }],
    }))
    approve_deviation(state, CHANGE, "DEV-001", approver.signer(), trust, "ok")


def test_a_vqual_run_loads_each_input_once_from_preflight_to_run_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, key = executor_state(tmp_path)
    spec = write_spec(tmp_path / "specs", [PASSING, FAILING])
    _review_inputs(state, spec)
    counts = _count_loads(monkeypatch)

    # vqual's side: everything is loaded and judged before Ansible starts...
    checked = preflight(_request(state, key, spec, tmp_path))
    path, digest = write_handoff(checked.context, tmp_path)
    # ...and the playbook side plans from what was handed over...
    plan = plan_in_playbook(
        spec.resolve(), HOSTVARS, GROUPS, environ=handoff_environment(path, digest),
        state_dir=state, change_id=CHANGE, run_id=RUN,
    )
    # ...and the evidence callback opens the bundle from the plan task's result.
    recorder = RunRecorder(tmp_path / "evidence", open_signer(key), "tester")
    recorder.start(RunPlan.from_dict(json.loads(json.dumps(plan.to_dict()))))
    recorder.finish()

    assert dict(counts) == {
        "config": 1, "spec read": 1, "spec validated": 1, "trust read": 1,
        "trust history": 1, "deviations": 1, "approvals": 1,
    }
    # What was loaded once is what the run used: the approval, the waiver, the trust store.
    assert plan.approval is not None and plan.approval["name"] == "Ada Approver"
    assert plan.deviations is not None and set(plan.deviations.waivers) == {"DEV-001"}
    assert plan.trust_digest == checked.context.trust_digest
    assert recorder.path is not None
    assert checked.context.trust is not None
    assert verify_bundle(recorder.path, checked.context.trust).status == "valid"


def test_a_plain_playbook_run_loads_each_input_once_in_its_plan_action(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = executor_state(tmp_path)
    spec = write_spec(tmp_path / "specs", [PASSING])
    _review_inputs(state, spec)
    counts = _count_loads(monkeypatch)
    plan = plan_in_playbook(
        spec.resolve(), HOSTVARS, GROUPS, environ={}, state_dir=state, change_id=CHANGE,
    )
    assert dict(counts) == {
        "config": 1, "spec read": 1, "spec validated": 1, "trust read": 1,
        "trust history": 1, "deviations": 1, "approvals": 1,
    }
    assert plan.approval is not None and plan.config["settings"]["require_protocol_approval"]


def test_inputs_changed_after_loading_change_nothing_in_the_run(tmp_path: Path) -> None:
    state, key = executor_state(tmp_path)
    spec = write_spec(tmp_path / "specs", [PASSING])
    (state / "config.yaml").write_text("change_id_pattern: '^CHG[0-9]{7}$'\n")
    checked = preflight(_request(state, key, spec, tmp_path))
    trust_before = hashlib.sha256((state / "trust.yaml").read_bytes()).hexdigest()
    config_before = hashlib.sha256((state / "config.yaml").read_bytes()).hexdigest()
    path, digest = write_handoff(checked.context, tmp_path)

    # Each of these would stop a run that loaded its inputs again.
    (state / "config.yaml").write_text("no_such_setting: [\n")
    (state / "trust.yaml").write_text("version: 99\n")
    (state / "deviations" / CHANGE).mkdir(parents=True)
    (state / "deviations" / CHANGE / "deviations.yaml").write_text("not: [a, deviations, file\n")

    plan = plan_in_playbook(
        spec.resolve(), HOSTVARS, GROUPS, environ=handoff_environment(path, digest),
        state_dir=state, change_id=CHANGE, run_id=RUN,
    )
    assert plan.trust_digest == trust_before
    assert plan.config["digest"] == config_before
    assert plan.config["settings"]["change_id_pattern"] == "^CHG[0-9]{7}$"
    assert plan.change_id == CHANGE and plan.run_id == RUN


def test_the_handoff_round_trips_and_holds_no_secret(tmp_path: Path) -> None:
    state = tmp_path / "state"
    person = add_person(state, "Eve Executor", "eve@example.com", ["executor", "approver"])
    spec = write_spec(tmp_path / "specs", [PASSING])
    approve_protocol(spec, person.signer(), TrustStore.load(state / "trust.yaml"), state)
    context = load_run_context(state, spec, change_id=CHANGE, run_id=RUN, trust_required=True)
    path, digest = write_handoff(context, tmp_path)

    assert path.name == HANDOFF_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "PRIVATE KEY" not in text and "correct horse" not in text
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest

    again = read_handoff(path, digest)
    assert again.spec == context.spec  # absolute paths already: tmp_path is absolute
    assert (again.change_id, again.run_id) == (CHANGE, RUN)
    assert again.config == context.config and again.config_citation == context.config_citation
    assert again.trust is not None and context.trust is not None
    assert again.trust_digest == context.trust_digest
    assert again.trust.keys == context.trust.keys
    assert again.trust_version == context.trust_version
    assert again.approval == context.approval and again.approval is not None
    assert again.deviations == context.deviations


def test_a_relative_spec_path_is_handed_over_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(tmp_path / "specs", [PASSING])
    monkeypatch.chdir(tmp_path)
    context = load_run_context(tmp_path / "state", Path("specs/spec.yaml"), change_id=CHANGE)
    assert context.spec.path == Path("specs/spec.yaml")  # messages name it as given
    again = RunContext.from_json(json.loads(json.dumps(context.to_json())))
    assert again.spec.path == spec
    assert again.spec.data_files[0].path == spec.parent / "data" / "expected.yaml"


def test_a_changed_handoff_is_refused(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "specs", [PASSING])
    context = load_run_context(tmp_path / "state", spec, change_id=CHANGE)
    path, digest = write_handoff(context, tmp_path)
    path.write_bytes(path.read_bytes().replace(b"run-service", b"run-servicX"))
    with pytest.raises(BadInputError, match="has changed"):
        handed_over(handoff_environment(path, digest))
    with pytest.raises(BadInputError, match=RUN_CONTEXT_DIGEST_ENV):
        handed_over({RUN_CONTEXT_ENV: str(path)})
    assert handed_over({}) is None


def test_handed_over_bytes_must_have_their_digests(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "specs", [PASSING])
    state, _ = executor_state(tmp_path)
    data = load_run_context(state, spec, change_id=CHANGE).to_json()
    spec_raw = json.loads(json.dumps(data))
    spec_raw["spec"]["raw"] = "AAAA"
    with pytest.raises(BadInputError, match="do not have their recorded digest"):
        RunContext.from_json(spec_raw)
    file_raw = json.loads(json.dumps(data))
    file_raw["spec"]["data_files"][0]["raw"] = "AAAA"
    with pytest.raises(BadInputError, match="data file expected"):
        RunContext.from_json(file_raw)
    trust_raw = json.loads(json.dumps(data))
    trust_raw["trust"]["raw"] = "AAAA"
    with pytest.raises(BadInputError, match="trust store handed over"):
        RunContext.from_json(trust_raw)
    missing = json.loads(json.dumps(data))
    del missing["config"]
    with pytest.raises(BadInputError, match="malformed run context"):
        RunContext.from_json(missing)


def test_a_vqual_run_needs_a_trust_store_a_plain_playbook_run_does_not(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "specs", [PASSING])
    with pytest.raises(TrustError, match="no trust store"):
        load_run_context(tmp_path / "state", spec, change_id=CHANGE, trust_required=True)
    context = load_run_context(tmp_path / "state", spec, change_id=CHANGE)
    assert context.trust is None and context.trust_digest is None
    assert context.approval is None and context.deviations is None


def test_the_site_pattern_applies_to_vqual_runs(tmp_path: Path) -> None:
    state, _ = executor_state(tmp_path)
    (state / "config.yaml").write_text("change_id_pattern: '^CR-[0-9]{4}$'\n")
    spec = write_spec(tmp_path / "specs", [PASSING])
    with pytest.raises(BadInputError, match="CR-"):
        load_run_context(state, spec, change_id=CHANGE, site_pattern=True)
    assert load_run_context(state, spec, change_id="CR-0001", site_pattern=True).change_id == "CR-0001"
    # A plain playbook's plan task applies the pattern it is given (the default otherwise).
    assert load_run_context(state, spec, change_id=CHANGE).change_id == CHANGE


def test_the_plan_task_must_name_what_vqual_validated(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "specs", [PASSING])
    other = write_spec(tmp_path / "other", [PASSING])
    context = load_run_context(tmp_path / "state", spec, change_id=CHANGE, run_id=RUN)
    env = handoff_environment(*write_handoff(context, tmp_path))
    for kwargs, fragment in (
        ({"change_id": "CHG0000002"}, "change id CHG0000002"),
        ({"change_id": CHANGE, "run_id": "20260101T000000Z-ffffff"}, "run id"),
    ):
        with pytest.raises(BadInputError, match=fragment):
            plan_in_playbook(spec, HOSTVARS, GROUPS, environ=env, state_dir=tmp_path, **kwargs)
    with pytest.raises(BadInputError, match="names spec"):
        plan_in_playbook(other, HOSTVARS, GROUPS, environ=env, state_dir=tmp_path, change_id=CHANGE)
    # Omitted arguments take the handed-over values.
    plan = plan_in_playbook(spec, HOSTVARS, GROUPS, environ=env, state_dir=tmp_path, change_id=None)
    assert (plan.change_id, plan.run_id) == (CHANGE, RUN)
