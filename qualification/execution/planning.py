"""From a run's context and the inventory's variables to the plan it executes and records.

The plan is a :class:`RunPlan`. It is made once, by the ``vqual.qualification.plan`` action
inside the ``ansible-playbook`` process (it needs the inventory as Ansible renders it), and
crosses to the other plugins as the plan task's result: :meth:`RunPlan.to_dict` there,
:meth:`RunPlan.from_dict` in the qualify and compare actions and in the evidence callback.
It carries what ``run.start`` records from the run context (trust store digest and version,
approval, configuration) and the change's judged deviations, so nothing after planning loads
them again.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.baseline.conversion import load_conversion_baseline
from qualification.baseline.decommission import EvidenceServer, decommission_block
from qualification.baseline.master import load_master
from qualification.errors import BadInputError
from qualification.execution.context import RunContext, handed_over, load_run_context
from qualification.execution.slicing import slice_from_vars
from qualification.review.deviations import DeviationState
from qualification.review.pinned import choose_trust
from qualification.review.signed import load_trust
from qualification.spec.inventory import InventoryModel
from qualification.spec.plan import (
    MasterBaseline,
    Plan,
    TargetPlan,
    build_plan,
    plain_mapping,
    plain_text,
)
from qualification.state import trust_path


@dataclass(frozen=True)
class DataFileRef:
    """A data file of the spec as the plan cites it: where it was read and its digest."""

    name: str
    path: str
    digest: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "path": self.path, "digest": self.digest}



#: The parts of a plan :meth:`RunPlan.to_packed` hands over as JSON texts (besides targets).
_PACKED = ("planned", "inventory_snapshot", "traceability")


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _unpacked(data: Mapping[str, Any]) -> dict[str, Any]:
    return {**data, **{key: json.loads(data[key]) for key in _PACKED}}

@dataclass(frozen=True)
class RunPlan:
    """One run's plan: what runs where, and what ``run.start`` records about its inputs.

    Attributes:
        mode: what the run is (``qualify``, ``drift``, ``clone``).
        change_id: the change.
        run_id: the run.
        spec_path: the spec file (absolute).
        data_files: the spec's data files.
        requirements: the spec's requirement ids.
        inventory_snapshot: the inventory as recorded (secrets removed).
        plan: the targets with their tests, the inventory digest and the clone block.
        trust_digest: SHA-256 of the trust store the run was judged with (None: none).
        trust_version: its signed version (None: not signed, or no trust store).
        approval: the protocol approval ``run.start`` cites, or None.
        config: the site settings in force, as ``run.start`` records them.
        deviations: the change's deviations with their valid waivers (None: nothing judged).
        tsa: the trust store's TSA section (None: none; the seal gets no trusted time).
        traceability: the spec's requirements file as ``run.start`` records it, or None.
        slice: the run's ``slice`` block when it qualifies one slice of a sliced job
            (:mod:`qualification.execution.slicing`), else None.
        conversion: a conversion run's ``conversion`` block (the verified source baseline,
            :func:`qualification.baseline.conversion.conversion_block`), else None.
        decommission: a decommissioning run's ``decommission`` block (the targets' verified
            bundles and observed backups), else None.
    """

    mode: str
    change_id: str
    run_id: str
    spec_path: str
    data_files: tuple[DataFileRef, ...]
    requirements: tuple[str, ...]
    inventory_snapshot: dict[str, Any] = field(hash=False)
    plan: Plan = field(hash=False)
    trust_digest: str | None = None
    trust_version: int | None = None
    approval: dict[str, Any] | None = field(default=None, hash=False)
    config: dict[str, Any] = field(default_factory=dict, hash=False)
    deviations: DeviationState | None = field(default=None, hash=False)
    trust_root: dict[str, Any] | None = field(default=None, hash=False)
    tsa: dict[str, Any] | None = field(default=None, hash=False)
    traceability: dict[str, Any] | None = field(default=None, hash=False)
    slice: dict[str, Any] | None = field(default=None, hash=False)
    conversion: dict[str, Any] | None = field(default=None, hash=False)
    decommission: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def spec_digest(self) -> str:
        return self.plan.spec["digest"]

    @property
    def targets(self) -> list[TargetPlan]:
        return self.plan.targets

    def target(self, name: str) -> TargetPlan | None:
        """The plan of target ``name``, or None when it runs nothing."""
        for target in self.plan.targets:
            if target.name == name:
                return target
        return None

    def planned(self) -> list[dict[str, str]]:
        """``run.start`` ``planned``: [{test_id, target, protocol}], plan order."""
        return self.plan.planned()

    def spec_record(self) -> dict[str, str]:
        """``run.start`` ``spec``: {path, name, version, digest}."""
        return {"path": self.spec_path, **self.plan.spec}

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON data: the plan task's ``vqual_plan`` result."""
        return {
            **self.plan.to_json(),
            "mode": self.mode,
            "change_id": self.change_id,
            "run_id": self.run_id,
            "spec": self.spec_record(),
            "data_files": [d.to_dict() for d in self.data_files],
            "requirements": list(self.requirements),
            "inventory_snapshot": self.inventory_snapshot,
            "trust": {"digest": self.trust_digest, "version": self.trust_version,
                      **({"tsa": self.tsa} if self.tsa is not None else {})},
            "approval": self.approval,
            "config": self.config,
            "deviations": self.deviations.to_json() if self.deviations is not None else None,
            "trust_root": self.trust_root,
            "planned": self.planned(),
            "traceability": self.traceability,
            "slice": self.slice,
            "conversion": self.conversion,
            "decommission": self.decommission,
        }

    def to_packed(self) -> dict[str, Any]:
        """:meth:`to_dict` as the plan task returns it: each target's tests, the planned list,
        the inventory snapshot and the traceability as JSON texts. Ansible copies, tags and
        walks every value of a task result, more than once (a 1,000-test plan has some 30,000);
        a text is one value. Each target's own text lets an action read its host's tests alone.
        :meth:`from_dict` reads both forms."""
        data = self.to_dict()
        packed = {key: _text(data[key]) for key in _PACKED}
        targets = [{"name": t["name"], "json": _text(t)} for t in data["targets"]]
        return {**data, **packed, "targets": targets, "packed": True}

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, targets: Collection[str] | None = None
    ) -> RunPlan:
        """Read :meth:`to_dict` back (as Ansible hands it over: plain types are copied).

        Args:
            data: the plan task's ``vqual_plan`` (:meth:`to_packed`) or :meth:`to_dict`.
            targets: read only these targets' tests (an action on one host needs its own
                only; reading every host's tests on every host would cost hosts squared).

        Raises:
            BadInputError: not a plan of this version, or a field is missing or mistyped.
        """
        try:
            planned = data["targets"]
            if targets is not None:
                wanted = set(targets)
                planned = [t for t in planned if t["name"] in wanted]
            if data.get("packed"):
                data = _unpacked(data)
                planned = [json.loads(t["json"]) for t in planned]
            plan = Plan.from_json({**data, "targets": planned})
            trust = data["trust"]
            version = trust["version"]
            if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
                raise TypeError(f"{version!r} is not an integer")
            deviations = data["deviations"]
            approval = data["approval"]
            sliced = data.get("slice")
            conversion = data.get("conversion")
            decommission = data.get("decommission")
            return cls(
                mode=plain_text(data["mode"]),
                change_id=plain_text(data["change_id"]),
                run_id=plain_text(data["run_id"]),
                spec_path=plain_text(data["spec"]["path"]),
                data_files=tuple(
                    DataFileRef(plain_text(d["name"]), plain_text(d["path"]), plain_text(d["digest"]))
                    for d in data["data_files"]
                ),
                requirements=tuple(plain_text(r) for r in data["requirements"]),
                inventory_snapshot=plain_mapping(data["inventory_snapshot"]),
                plan=plan,
                trust_digest=plain_text(trust["digest"]) if trust["digest"] is not None else None,
                trust_version=int(version) if version is not None else None,
                tsa=plain_mapping(trust["tsa"]) if trust.get("tsa") is not None else None,
                approval=plain_mapping(approval) if approval is not None else None,
                config=plain_mapping(data["config"]),
                trust_root=(
                    plain_mapping(data["trust_root"]) if data.get("trust_root") else None
                ),
                deviations=(
                    DeviationState.from_json(plain_mapping(deviations))
                    if deviations is not None
                    else None
                ),
                traceability=(
                    plain_mapping(data["traceability"])
                    if data.get("traceability") is not None
                    else None
                ),
                slice=plain_mapping(sliced) if sliced is not None else None,
                conversion=plain_mapping(conversion) if conversion is not None else None,
                decommission=plain_mapping(decommission) if decommission is not None else None,
            )
        except (KeyError, TypeError) as exc:
            raise BadInputError(f"malformed plan: missing or mistyped field {exc}") from None


def make_plan(
    context: RunContext,
    hostvars: Mapping[str, Mapping[str, Any]],
    groups: Mapping[str, Sequence[str]],
    *,
    hosts: Sequence[str] | None = None,
    test_ids: Sequence[str] | None = None,
    mode: str = "qualify",
    allow_empty: bool = False,
    master_bundle: Path | None = None,
    master_subject: str | None = None,
    slice_block: Mapping[str, Any] | None = None,
    conversion_baseline: Path | None = None,
    decommission_evidence: Path | None = None,
    decommission_server: EvidenceServer | None = None,
) -> RunPlan:
    """The plan of a run whose inputs ``context`` holds, for the inventory's targets.

    ``master_bundle`` (else the spec's ``clone.master.bundle``) is the master clones are
    compared with; it is checked (verifies with the context's trust store, passed, approved
    where the spec requires it, has a fingerprint) before the plan is made, and the plan's
    ``clone`` block cites it. A conversion run (mode ``conversion``) verifies its source
    baseline ``conversion_baseline`` here, and its ``conversion`` block cites it. A
    decommissioning run is refused here, before any change (:func:`_decommission_checks`);
    its ``decommission`` block cites what was found.

    Raises:
        BadInputError: (or a subclass) for anything wrong; nothing has run yet.
    """
    spec = context.spec
    conversion = _conversion_check(context, conversion_baseline) if mode == "conversion" else None
    inventory = InventoryModel.from_hostvars(hostvars, groups)
    selected = sorted(inventory.hosts if hosts is None else set(hosts))
    master = _master_of(context, inventory, selected, master_bundle, master_subject)
    if mode == "clone":
        _check_clone_run(inventory, selected, master)
    plan = build_plan(spec, inventory, hosts=hosts, test_ids=test_ids, master=master,
                      capture=mode == "capture")
    decommission = None
    if mode == "decommission":
        decommission = _decommission_checks(context, hostvars, plan, decommission_evidence,
                                            decommission_server)
    if not plan.planned() and not allow_empty:
        raise BadInputError(
            f"no test of {spec.path} applies to the selected targets "
            "(check vqual_target_kinds and the applications' risk in the inventory)"
        )
    return RunPlan(
        mode=mode,
        change_id=context.change_id,
        run_id=context.run_id,
        spec_path=str(Path(spec.path).resolve()),
        data_files=tuple(
            DataFileRef(d.name, str(Path(d.path).resolve()), d.digest) for d in spec.data_files
        ),
        requirements=tuple(spec.requirements),
        inventory_snapshot=inventory.snapshot(),
        plan=plan,
        trust_digest=context.trust_digest,
        trust_version=context.trust_version,
        tsa=context.trust.tsa.to_json() if context.trust and context.trust.tsa else None,
        approval=context.approval.citation() if context.approval is not None else None,
        config=dict(context.config_citation),
        deviations=context.deviations,
        trust_root=context.trust_root,
        traceability=spec.traceability_record(),
        slice=dict(slice_block) if slice_block is not None else None,
        conversion=conversion,
        decommission=decommission,
    )


def _master_of(context: RunContext, inventory: InventoryModel, selected: Sequence[str],
               master_bundle: Path | None,
               master_subject: str | None) -> MasterBaseline | None:
    """The master the selected clones are compared with (None: no clone selected, or no
    master bundle given nor in the spec), checked."""
    source = context.spec.clone_section.master
    bundle = Path(master_bundle) if master_bundle else source.bundle
    if bundle is None or not any(
        "clone" in inventory.host(name).kinds for name in selected if name in inventory.hosts
    ):
        return None
    return load_master(
        bundle,
        state_dir=context.state_dir,
        trust=context.trust,
        require_approval=source.require_approval,
        subject=master_subject or source.subject,
    )


def _conversion_check(context: RunContext, baseline: Path | None) -> dict[str, Any]:
    """A conversion run's source baseline, verified; its ``conversion`` block."""
    if baseline is None:
        raise BadInputError("a conversion run needs its source baseline (vqual convert "
                            "qualify --baseline)")
    return load_conversion_baseline(baseline, context.state_dir)


def _decommission_checks(
    context: RunContext, hostvars: Mapping[str, Mapping[str, Any]], plan: Any,
    evidence_dir: Path | None, server: EvidenceServer | None = None,
) -> dict[str, Any]:
    """The refusals of a decommissioning run, for each target it removes (see
    :mod:`qualification.baseline.decommission`); with ``server``, the evidence server that
    must hold their bundles."""
    if evidence_dir is None:
        raise BadInputError("a decommissioning run needs the evidence directory to check "
                            "(vqual decommission --evidence-dir)")
    targets = [t.name for t in plan.targets if t.tests]
    trust = context.trust if context.trust is not None else load_trust(context.state_dir)
    return decommission_block(targets, hostvars, evidence_dir, trust, server)


def _check_clone_run(inventory: InventoryModel, selected: Sequence[str], master: Any) -> None:
    """A clone run qualifies clones by difference: a host that is not a clone would run the
    full set instead, and without a master there is nothing to differ from."""
    others = [n for n in selected if "clone" not in inventory.host(n).kinds]
    if others:
        raise BadInputError(
            f"a clone run qualifies clones only: {', '.join(others)} "
            "has no kind clone in vqual_target_kinds"
        )
    if master is None:
        raise BadInputError(
            "a clone run needs the master bundle (vqual clone --master-bundle, or "
            "clone.master.bundle in the spec)"
        )


def plan_in_playbook(
    spec_path: Path,
    hostvars: Mapping[str, Mapping[str, Any]],
    groups: Mapping[str, Sequence[str]],
    *,
    environ: Mapping[str, str],
    state_dir: Path,
    change_id: str | None,
    run_id: str | None = None,
    hosts: Sequence[str] | None = None,
    test_ids: Sequence[str] | None = None,
    change_pattern: str | None = None,
    mode: str = "qualify",
    allow_empty: bool = False,
    master_bundle: Path | None = None,
    master_subject: str | None = None,
    play_vars: Mapping[str, Any] | None = None,
    conversion_baseline: Path | None = None,
    decommission_evidence: Path | None = None,
    decommission_server: EvidenceServer | None = None,
) -> RunPlan:
    """What the plan action does: take the run context ``vqual`` handed over (``environ``),
    else load it here once (a plain ``ansible-playbook`` run), and make the plan.

    With a handed-over context the task's spec, change id and run id must be the ones
    ``vqual`` validated; they are not loaded or validated again. ``play_vars`` (the play's
    ``vqual_slice``, ``awx_job_id``, ``awx_workflow_job_id``) give the run's ``slice``
    (:func:`~qualification.execution.slicing.slice_from_vars`).

    Raises:
        BadInputError: (or a subclass) for anything wrong; nothing has run yet.
    """
    slice_block = slice_from_vars(play_vars or {})
    context = handed_over(environ)
    if context is None:
        # A playbook run (ansible-playbook, AAP) judges trust as `vqual qualify` does: through
        # the pinned root ($VQUAL_TRUST_ROOT, /etc/vqual/trust-root.yaml), or legacy trust
        # asked for ($VQUAL_LEGACY_TRUST=1); an unpinned store is refused before anything runs.
        choice = choose_trust(state_dir) if trust_path(state_dir).exists() else None
        context = load_run_context(
            state_dir, spec_path, change_id=change_id, run_id=run_id,
            change_pattern=change_pattern, trust_choice=choice,
        )
    else:
        _check_agrees(context, spec_path, change_id, run_id)
    return make_plan(
        context,
        hostvars,
        groups,
        hosts=hosts,
        test_ids=test_ids,
        mode=mode,
        allow_empty=allow_empty,
        master_bundle=master_bundle,
        master_subject=master_subject,
        slice_block=slice_block,
        conversion_baseline=conversion_baseline,
        decommission_evidence=decommission_evidence,
        decommission_server=decommission_server,
    )


def _check_agrees(
    context: RunContext, spec_path: Path, change_id: str | None, run_id: str | None
) -> None:
    if spec_path.resolve() != context.spec.path.resolve():
        raise BadInputError(
            f"the plan task names spec {spec_path}, but vqual validated {context.spec.path} "
            "for this run"
        )
    for name, given, validated in (
        ("change id", change_id, context.change_id),
        ("run id", run_id, context.run_id),
    ):
        if given and given != validated:
            raise BadInputError(
                f"the plan task names {name} {given}, but vqual validated {validated} "
                "for this run"
            )
