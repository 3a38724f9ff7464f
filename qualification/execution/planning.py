"""From a spec and the inventory's variables to the plan a run executes and records."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from qualification.errors import BadInputError
from qualification.state import trust_path
from qualification.spec.change import validate_change_id, validate_run_id, new_run_id
from qualification.spec.inventory import InventoryModel
from qualification.spec.loader import load_spec
from qualification.spec.plan import build_plan
from qualification.timeutil import utc_now


def make_plan(
    spec_path: Path,
    hostvars: Mapping[str, Mapping[str, Any]],
    groups: Mapping[str, Sequence[str]],
    *,
    change_id: str | None,
    run_id: str | None = None,
    hosts: Sequence[str] | None = None,
    test_ids: Sequence[str] | None = None,
    change_pattern: str | None = None,
    trust_digest: str | None = None,
    mode: str = "qualify",
    allow_empty: bool = False,
    state_dir: Path | None = None,
    master_bundle: Path | None = None,
    master_subject: str | None = None,
) -> dict[str, Any]:
    """Validate everything a run needs and return its plan as plain JSON data.

    ``master_bundle`` (else the spec's ``clone.master.bundle``) is the master clones are
    compared with; it is checked (verifies, passed, approved where the spec requires it,
    has a fingerprint) before the plan is made, and the plan's ``clone`` block cites it.

    Raises:
        BadInputError: (or a subclass) for anything wrong; nothing has run yet.
    """
    change = (
        validate_change_id(change_id, change_pattern)
        if change_pattern
        else validate_change_id(change_id)
    )
    run = validate_run_id(run_id) if run_id else new_run_id(utc_now())
    spec = load_spec(spec_path)
    if state_dir is not None and trust_path(state_dir).exists():
        # The same gate `vqual qualify` applies before Ansible starts, so a plain
        # ansible-playbook run is refused too: a malformed deviations file, or an
        # unapproved protocol where the site requires approval.
        from qualification.config import load_config
        from qualification.review.gate import preflight_review

        preflight_review(
            state_dir, spec_path, change,
            approval_required=load_config(state_dir).require_protocol_approval,
        )
    inventory = InventoryModel.from_hostvars(hostvars, groups)
    master = None
    source = spec.clone_section.master
    bundle = Path(master_bundle) if master_bundle else source.bundle
    selected = sorted(inventory.hosts if hosts is None else set(hosts))
    if bundle is not None and any(
        "clone" in inventory.host(name).kinds for name in selected if name in inventory.hosts
    ):
        from qualification.baseline.clones import load_master
        from qualification.state import resolve_state_dir

        master = load_master(
            bundle,
            state_dir=resolve_state_dir(state_dir),
            require_approval=source.require_approval,
            subject=master_subject or source.subject,
        )
    if mode == "clone":
        # A clone run qualifies clones by difference: a host that is not a clone would run
        # the full set instead, and without a master there is nothing to differ from.
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
    plan = build_plan(spec, inventory, hosts=hosts, test_ids=test_ids, master=master)
    if not plan.planned() and not allow_empty:
        raise BadInputError(
            f"no test of {spec_path} applies to the selected targets "
            "(check vqual_target_kinds and the applications' risk in the inventory)"
        )
    targets = []
    for target in plan.targets:
        targets.append(
            {
                "name": target.name,
                "kinds": list(target.kinds),
                "risk": target.risk,
                "risk_reason": target.risk_reason,
                "tests": [
                    {
                        "test_id": t.test_id,
                        "title": t.title,
                        "protocol": t.protocol,
                        "requirements": list(t.requirements),
                        "target": t.target,
                        "check": t.check,
                        "params": dict(t.params),
                        "expect": dict(t.expect),
                        "acceptance": t.acceptance,
                    }
                    for t in target.tests
                ],
            }
        )
    return {
        "mode": mode,
        "change_id": change,
        "run_id": run,
        "spec": {
            "path": str(Path(spec.path).resolve()),
            "name": spec.name,
            "version": spec.version,
            "digest": spec.digest,
        },
        "data_files": [
            {"name": d.name, "path": str(Path(d.path).resolve()), "digest": d.digest}
            for d in spec.data_files
        ],
        "requirements": list(spec.requirements),
        "inventory_snapshot": inventory.snapshot(),
        "inventory_digest": inventory.digest,
        "trust_digest": trust_digest,
        "targets": targets,
        "planned": plan.planned(),
        **({"clone": plan.clone} if plan.clone is not None else {}),
    }
