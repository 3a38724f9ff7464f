"""``run.start``: the run's first record, what it planned and the inputs it was judged with."""

# No postponed annotations here: TypedDict reads NotRequired[...] from evaluated ones.
import re
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from qualification.evidence.kinds.base import AuditLine, ChainView, RecordKind


class RunStartData(TypedDict):
    """docs/formats.md, ``run.start``. ``requirements``, ``traceability`` (a spec with a
    requirements file), ``clone`` (clone runs), ``conversion`` (conversion runs), ``decommission`` (decommissioning runs), ``patch`` (rolling patch runs), ``golden``
    (selftest runs), ``trust_root`` (runs judged through a pinned trust root), ``slice`` (a
    slice of a sliced job) and ``joins`` (a join run) appear only in the runs that have them;
    ``config`` is absent in runs written before it existed. Built by
    ``qualification.execution.run_start.run_start_data`` for every kind of run."""

    mode: str
    tool: dict[str, str]
    versions: dict[str, Any]
    controller: dict[str, Any]
    clock: dict[str, Any]
    spec: dict[str, Any] | None
    requirements: NotRequired[list[str]]
    traceability: NotRequired[dict[str, Any]]
    data_files: list[dict[str, Any]]
    inventory: dict[str, Any]
    trust: dict[str, Any]
    targets: list[dict[str, Any]]
    planned: list[dict[str, Any]]
    prev_run_seal: str | None
    approval: dict[str, Any] | None
    config: NotRequired[dict[str, Any]]
    #: {keyid, version}: the pinned trust root and the trust store version the run was
    #: judged with; absent under legacy trust and in runs written before it existed.
    trust_root: NotRequired[dict[str, Any]]
    clone: NotRequired[dict[str, Any]]
    #: a conversion run's source baseline: {baseline_bundle, baseline_seal,
    #: baseline_change_id, baseline_run_id, source: {subject, digest}, rules}
    conversion: NotRequired[dict[str, Any]]
    #: a decommissioning run's checks: {evidence_dir, targets: {name: {bundles: [{bundle,
    #: seal}], backups: [{file, sha256}]}}}
    decommission: NotRequired[dict[str, Any]]
    #: a migration summary's VMs: {vms: [{source, target, baseline: {run, seal}, conversion:
    #: {run, seal, verdict}, decommission: {run, seal, verdict} or null}]}
    migration: NotRequired[dict[str, Any]]
    patch: NotRequired[dict[str, Any]]
    golden: NotRequired[str | None]
    slice: NotRequired[dict[str, Any]]
    joins: NotRequired[list[dict[str, Any]]]


#: A slice parent or job id: what AWX's job ids, GitLab's pipeline ids and change tickets are.
PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def slice_problem(value: Any) -> str | None:
    """Why ``value`` is not a ``slice`` block {index, count, job, parent}, or None.

    ``index`` and ``count`` are both integers (1 <= index <= count) or both null (AWX and
    AAP give a slice job neither, docs/aap.md); ``job`` is a plain id or null; ``parent`` a
    plain id."""
    if not isinstance(value, Mapping) or set(value) != {"index", "count", "job", "parent"}:
        return "slice must be {index, count, job, parent}"
    index, count, job, parent = (value[k] for k in ("index", "count", "job", "parent"))
    if not isinstance(parent, str) or not PLAIN_ID.fullmatch(parent):
        return f"slice parent {parent!r} is not a plain id (letters, digits, . _ : -)"
    if job is not None and (not isinstance(job, str) or not PLAIN_ID.fullmatch(job)):
        return f"slice job {job!r} is not a plain id (letters, digits, . _ : -)"
    if index is None and count is None:
        return None
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (index, count)):
        return f"slice index {index!r} and count {count!r} must both be integers, or both null"
    if not 1 <= index <= count:
        return f"slice index {index} is not in 1..{count} (count {count})"
    return None


def slice_problems(data: Mapping[str, Any]) -> list[str]:
    """What is wrong with the ``slice`` and ``joins`` blocks of a ``run.start`` payload."""
    problems = []
    if "slice" in data and (why := slice_problem(data["slice"])):
        problems.append(f"run.start {why}")
    joins = data.get("joins")
    if "joins" in data and not (
        isinstance(joins, list)
        and all(
            isinstance(j, Mapping) and isinstance(j.get("run"), str)
            and isinstance(j.get("seal"), str) and slice_problem(j.get("slice")) is None
            for j in joins
        )
    ):
        problems.append("run.start joins must be a list of {run, seal, slice, verdict}")
    return problems


def _cited_problem(value: Any, verdict: bool) -> bool:
    keys = {"run", "seal", "verdict"} if verdict else {"run", "seal"}
    return not (isinstance(value, Mapping) and set(value) == keys
                and all(isinstance(value[k], str) for k in keys)
                and re.fullmatch(r"[0-9a-f]{64}", value["seal"]) is not None)


def migration_problems(data: Mapping[str, Any]) -> list[str]:
    """What is wrong with the ``migration`` block of a ``run.start`` payload (its shape; the
    change's verification checks that the cited runs are there)."""
    if "migration" not in data:
        return []
    block = data["migration"]
    vms = block.get("vms") if isinstance(block, Mapping) else None
    if not isinstance(vms, list) or not vms:
        return ["run.start migration must be {vms: [...]} with at least one VM"]
    problems = []
    for i, vm in enumerate(vms):
        if not (isinstance(vm, Mapping) and isinstance(vm.get("source"), str)
                and isinstance(vm.get("target"), str)
                and not _cited_problem(vm.get("baseline"), False)
                and not _cited_problem(vm.get("conversion"), True)
                and (vm.get("decommission") is None
                     or not _cited_problem(vm.get("decommission"), True))):
            problems.append(f"run.start migration vm {i + 1} must be {{source, target, baseline: "
                            "{run, seal}, conversion and decommission: {run, seal, verdict}}")
    return problems


class RunStart(RecordKind):
    name = "run.start"
    payload = RunStartData
    first = True
    verify_fields = None

    def verify(
        self,
        chain: ChainView,
        where: str,
        record: Mapping[str, Any],
        digest: str,
        keyid: str | None,
    ) -> None:
        planned = record["data"].get("planned", [])
        if not isinstance(planned, list) or not all(isinstance(t, dict) for t in planned):
            chain.problem(where, "run.start planned must be a list of {test_id, target, protocol}")
            return
        chain.planned = [
            {"test_id": t.get("test_id"), "target": t.get("target"), "protocol": t.get("protocol")}
            for t in planned
        ]
        chain.planned_ids = {t["test_id"] for t in chain.planned if isinstance(t["test_id"], str)}
        for problem in slice_problems(record["data"]) + migration_problems(record["data"]):
            chain.problem(where, problem)

    def audit_line(self, record: Mapping[str, Any], signer: str) -> AuditLine:
        data = record["data"]
        spec = data.get("spec") or {}
        approval = data.get("approval")
        detail = (
            f"{data.get('mode', 'qualify')} of {spec.get('name')} {spec.get('version')} "
            f"(sha256 {str(spec.get('digest'))[:16]}), executed by {signer}"
        )
        joins = data.get("joins")
        if isinstance(joins, list) and joins:
            verdicts = ", ".join(f"{j.get('run')} {j.get('verdict')}" for j in joins
                                 if isinstance(j, dict))
            detail = f"join of {len(joins)} slices ({verdicts}), executed by {signer}"
        if isinstance(approval, dict):
            detail += f"; protocol approved by {approval.get('name')} at {approval.get('time')}"
        migration = data.get("migration")
        if isinstance(migration, dict) and isinstance(migration.get("vms"), list):
            moved = ", ".join(f"{v.get('source')} -> {v.get('target')}"
                              for v in migration["vms"] if isinstance(v, dict))
            detail = f"migration summary of {moved}, executed by {signer}"
        block = data.get("slice")
        if isinstance(block, dict):
            which = (f"slice {block.get('index')} of {block.get('count')}"
                     if block.get("index") is not None else f"slice job {block.get('job')}")
            detail += f"; {which} of parent {block.get('parent')}"
        return AuditLine(self.name, detail, who=str(record["initiator"]))


KIND = RunStart()
