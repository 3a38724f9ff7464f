"""``run.start``: the run's first record, what it planned and the inputs it was judged with."""

# No postponed annotations here: TypedDict reads NotRequired[...] from evaluated ones.
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from qualification.evidence.kinds.base import AuditLine, ChainView, RecordKind


class RunStartData(TypedDict):
    """docs/formats.md, ``run.start``. ``requirements``, ``traceability`` (a spec with a
    requirements file), ``clone`` (clone runs), ``patch`` (rolling patch runs), ``golden``
    (selftest runs) and ``trust_root`` (runs judged through a pinned trust root) appear only in
    the runs that have them; ``config`` is absent in runs written before it existed. Built by
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
    patch: NotRequired[dict[str, Any]]
    golden: NotRequired[str | None]


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

    def audit_line(self, record: Mapping[str, Any], signer: str) -> AuditLine:
        data = record["data"]
        spec = data.get("spec") or {}
        approval = data.get("approval")
        detail = (
            f"{data.get('mode', 'qualify')} of {spec.get('name')} {spec.get('version')} "
            f"(sha256 {str(spec.get('digest'))[:16]}), executed by {signer}"
        )
        if isinstance(approval, dict):
            detail += f"; protocol approved by {approval.get('name')} at {approval.get('time')}"
        return AuditLine(self.name, detail, who=str(record["initiator"]))


KIND = RunStart()
