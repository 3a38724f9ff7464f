"""``deviation.waiver``: an approver's signed waiver, copied into the run before the first
result it waives. Its envelope is judged with the waived results at the end of verification
(``qualification.evidence.verify.judge_waivers``)."""

# No postponed annotations here: TypedDict reads NotRequired[...] from evaluated ones.
from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

from qualification.evidence.kinds.base import AuditLine, ChainView, RecordKind, deviation_row


class DeviationWaiverData(TypedDict):
    """docs/formats.md, ``deviation.waiver``: the deviation's fields (``raised_by`` only when
    the deviation names who raised it), its digest, the approval and the signed envelope."""

    id: str
    test_id: str
    target: str
    justification: str
    expiry: str
    owner: str
    raised_by: NotRequired[str]
    digest: str
    approved_by: dict[str, Any]
    comment: str | None
    file: str
    envelope: str


class DeviationWaiver(RecordKind):
    name = "deviation.waiver"
    payload = DeviationWaiverData
    verify_fields = None

    def verify(
        self,
        chain: ChainView,
        where: str,
        record: Mapping[str, Any],
        digest: str,
        keyid: str | None,
    ) -> None:
        chain.waiver_entries.append(
            (where, self.name, record["time"], record["change_id"], record["data"])
        )

    def report_rows(self, record: Mapping[str, Any]) -> Sequence[object]:
        return (deviation_row(record, "waiver"),)

    def audit_line(self, record: Mapping[str, Any], signer: str) -> AuditLine:
        data = record["data"]
        approved = data.get("approved_by") or {}
        return AuditLine(
            self.name,
            f"{data.get('id')} waives {data.get('test_id')}: approved by "
            f"{approved.get('name')} at {approved.get('time')}",
        )


KIND = DeviationWaiver()
