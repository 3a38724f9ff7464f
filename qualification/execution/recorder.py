"""The evidence side of a run: what the ``vqual.qualification.evidence`` callback calls.

The callback hands every result to a :class:`RunRecorder` at once; the recorder turns them
into records of the bundle (docs/formats.md) and, at the end, writes JUnit, the report, the
manifest and ``run.end``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, KeyFileError
from qualification.evidence.bundle import BundleWriter, latest_seal
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.kinds import ACTION, CHECK_RESULT, FINGERPRINT, RUN_START, WAIVER
from qualification.evidence.records import utc_now as record_time
from qualification.execution.evaluation import error_results
from qualification.execution.planning import RunPlan
from qualification.execution.rendering import add_renderings, records_as_dicts
from qualification.execution.run_start import run_start_data
from qualification.review.deviations import DeviationState
from qualification.signing import Ed25519Signer, Signer
from qualification.signing.trusted_tsa import parse_tsa
from qualification.verdict import Verdict, overall, zero_counts

# Where callers have always found them (the rendering moved to execution/rendering.py).
__all__ = ["RunRecorder", "add_renderings", "open_signer", "open_signer_with",
           "overall_verdict", "read_passphrase_file", "records_as_dicts"]


def read_passphrase_file(passphrase_file: str | Path) -> bytes | None:
    """A key's passphrase from a 0600 file; an empty file means none (an AAP credential
    without passphrase injects one, docs/aap.md)."""
    pfile = Path(passphrase_file)
    try:
        if pfile.stat().st_mode & 0o077:
            raise KeyFileError(
                f"passphrase file {pfile} is readable by group or others; chmod 600 it"
            )
        return pfile.read_bytes().rstrip(b"\r\n") or None
    except OSError as exc:
        raise KeyFileError(f"cannot read passphrase file {pfile}: {exc.strerror}") from exc


def open_signer(key_file: Path, passphrase_file: str | Path | None = None) -> Signer:
    """The executor's signer from its key file; the passphrase, if any, from a 0600 file."""
    passphrase = read_passphrase_file(passphrase_file) if passphrase_file else None
    return Ed25519Signer.from_file(key_file, passphrase)


def open_signer_with(
    key_file: Path, passphrase_reader: Callable[[], bytes]
) -> tuple[Signer, bytes | None]:
    """Open a key, asking for its passphrase only when the key is encrypted."""
    try:
        head = key_file.read_bytes()[:64]
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file {key_file} does not exist") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {key_file}: {exc.strerror}") from exc
    passphrase = passphrase_reader() if b"ENCRYPTED" in head else None
    return Ed25519Signer.from_file(key_file, passphrase), passphrase


def overall_verdict(counts: Mapping[str, int]) -> str:
    """The worst verdict present: fail > error > not-executed > pass (waived counts as pass)."""
    return overall(counts).value


def _read_cited(path: Path, digest: str, what: str) -> bytes:
    """The bytes of a file the plan cites, refused if they no longer have its digest."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{what} cannot be read: {exc.strerror}", where=str(path)) from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise BadInputError(f"{what} changed after the run was planned", where=str(path))
    return data


class RunRecorder:
    """Writes one run's bundle from the plan and the results handed to it."""

    def __init__(
        self,
        evidence_root: Path,
        signer: Signer,
        initiator: str,
    ) -> None:
        self.evidence_root = evidence_root
        self.signer = signer
        self.initiator = initiator
        self.writer: BundleWriter | None = None
        self.plan: RunPlan | None = None
        self._pending: dict[str, dict[str, Mapping[str, Any]]] = {}
        self._counts: dict[str, int] = zero_counts()
        self._executed = 0
        self._deviations: DeviationState | None = None
        self._waivers_recorded: set[str] = set()
        #: the seal digest once :meth:`finish` sealed the run; nothing is recorded after it
        self.seal: str | None = None

    @property
    def path(self) -> Path | None:
        return self.writer.path if self.writer else None

    @property
    def verdict(self) -> str:
        """The run's overall verdict from what was recorded so far (``run.end`` carries it)."""
        return overall_verdict(self._counts)

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def start(self, plan: RunPlan) -> Path:
        """Open the bundle and write ``run.start`` with the spec, data and inventory.

        What ``run.start`` says about the run's inputs (trust store, approval, configuration)
        and the deviations that may waive a failure come from the plan, which took them from
        the run context; nothing is loaded again here. The spec and data files are read to be
        stored, and must still have the digests the plan cites.

        Raises:
            BadInputError: the run has already started, or the spec or a data file changed
                since the run was planned.
        """
        if self.writer is not None:
            raise BadInputError("this run has already started")
        self.plan = plan
        prev = latest_seal(self.evidence_root, plan.change_id)
        spec_bytes = _read_cited(Path(plan.spec_path), plan.spec_digest, "the spec")
        data_files = [
            (d.name, _read_cited(Path(d.path), d.digest, f"data file {d.name}"))
            for d in plan.data_files
        ]
        self._deviations = plan.deviations
        writer = BundleWriter.create(
            self.evidence_root, plan.change_id, plan.run_id, self.signer, self.initiator
        )
        self.writer = writer
        # The seal's token comes from the TSA the run's trust store names.
        writer.tsa = parse_tsa(plan.tsa, "run plan") if plan.tsa is not None else None
        for target in plan.targets:
            self._pending[target.name] = {t.test_id: t.to_json() for t in target.tests}
        start = run_start_data(
            mode=plan.mode,
            spec=plan.spec_record(),
            requirements=plan.requirements,
            traceability=plan.traceability,
            data_files=[
                {"name": d.name, "path": f"data/{d.name}", "digest": d.digest}
                for d in plan.data_files
            ],
            inventory_digest=plan.plan.inventory_digest,
            trust={"digest": plan.trust_digest, "version": plan.trust_version,
                   # the TSA that will stamp the seal, so the sealed report can name it
                   **({"tsa": plan.tsa["name"]} if plan.tsa is not None else {})},
            targets=[target.record() for target in plan.targets],
            planned=plan.planned(),
            prev_run_seal=prev,
            approval=plan.approval,
            config=plan.config,
        )
        if plan.trust_root:
            start["trust_root"] = dict(plan.trust_root)
        if plan.plan.clone:
            # a clone run cites its master: bundle, seal and fingerprint digest
            start["clone"] = dict(plan.plan.clone)
        if plan.conversion is not None:
            # a conversion run cites its source baseline: bundle, seal, source fingerprint
            start["conversion"] = dict(plan.conversion)
        if plan.decommission is not None:
            # a decommissioning run cites the verified bundles and observed backups
            start["decommission"] = dict(plan.decommission)
        if plan.slice is not None:
            start["slice"] = dict(plan.slice)  # one slice of a sliced job (docs/aap.md)
        writer.append(RUN_START, start)
        writer.add_file("spec.yaml", spec_bytes)
        for name, content in data_files:
            writer.add_file(f"data/{name}", content)
        writer.add_file("inventory.json", canonical_bytes(plan.inventory_snapshot))
        writer.sync()
        return writer.path

    def _append_result(self, result: Mapping[str, Any]) -> None:
        assert self.writer is not None
        data = dict(result)
        if data.get("verdict") == Verdict.FAIL and self._deviations is not None:
            self._waive(data)
        if data.get("raw") is not None and isinstance(data["raw"], str):
            data["raw"] = self.writer.store_raw(data["raw"])
        self.writer.append(CHECK_RESULT, data)
        self._counts[str(data["verdict"])] = self._counts.get(str(data["verdict"]), 0) + 1
        self._executed += 1
        self._pending.get(str(data["target"]), {}).pop(str(data["test_id"]), None)

    def _waive(self, data: dict[str, Any]) -> None:
        # A fail covered by a signed, unexpired deviation is waived; the waiver goes into the
        # bundle once, before the first result it covers, so the bundle alone shows why.
        assert self.writer is not None and self._deviations is not None
        waiver = self._deviations.covering(
            str(data["test_id"]), str(data["target"]), record_time(),
            not_by=(self.initiator, self.signer.keyid),  # the verifier refuses those
        )
        if waiver is None:
            return
        if waiver.deviation.id not in self._waivers_recorded:
            self.writer.append(WAIVER, waiver.record())
            self._waivers_recorded.add(waiver.deviation.id)
        data["verdict"] = Verdict.WAIVED.value
        data["deviation"] = waiver.deviation.id

    def record(
        self,
        results: Sequence[Mapping[str, Any]],
        actions: Sequence[Mapping[str, Any]] = (),
        *,
        fingerprints: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Append the action records, then the check results of one task, then the
        ``fingerprint`` records (data: the fingerprint JSON plus its ``digest``)."""
        if self.writer is None or self.seal is not None:
            return
        for action in actions:
            self.writer.append(ACTION, dict(action))
        for result in results:
            self._append_result(result)
        for fingerprint in fingerprints:
            self.writer.append(FINGERPRINT, dict(fingerprint))

    def target_failed(self, target: str, reason: str) -> None:
        """Record ``error`` for every planned test of a target that has no result yet."""
        if self.writer is None or self.seal is not None:
            return
        pending = list(self._pending.get(target, {}).values())
        for result in error_results(pending, reason):
            self._append_result(result)

    def task_boundary(self) -> None:
        """Group commit: make everything written so far durable."""
        if self.writer is not None:
            self.writer.sync()

    def finish(self) -> str | None:
        """Record what never ran, write JUnit, report and manifest, and seal the run.

        Sealing twice returns the first seal: the playbook may seal before it ends (the
        ``vqual.qualification.seal`` task, so the job can publish the seal), and the end of
        the play then finds the run sealed."""
        writer = self.writer
        if writer is None or self.seal is not None:
            return self.seal
        for target, pending in list(self._pending.items()):
            if pending:
                self.target_failed(target, "no result: the host left the play before its tests ran")
        add_renderings(writer)
        planned = len(self.plan.planned()) if self.plan is not None else 0
        seal = writer.seal(
            counts=dict(self._counts),
            planned=planned,
            executed=self._executed,
            verdict=overall_verdict(self._counts),
        )
        self.seal = seal
        return seal
