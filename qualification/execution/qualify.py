"""``vqual qualify``: validate every input, run the playbook, report what the bundle says."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.errors import (
    EXIT_INCOMPLETE,
    BadInputError,
    KeyFileError,
    PlatformError,
    TrustError,
    exit_code_for_verdict,
)
from qualification.evidence.trusted_time import NO_TRUSTED_TIME
from qualification.evidence.trusted_time import summary as trusted_time_summary
from qualification.evidence.verify import verify_bundle
from qualification.execution.context import RunContext, load_run_context
from qualification.execution.inventory import VaultOptions
from qualification.execution.recorder import open_signer_with
from qualification.execution.runner import PlaybookRun, ProgressEvent, run_playbook
from qualification.review.pinned import LEGACY_TEXT, TrustChoice, choose_trust
from qualification.signing import TrustStore
from qualification.state import trust_path
from qualification.timeutil import utc_now
from qualification.verdict import VERDICTS

SCHEMA = "vqual.qualify/v1"


@dataclass
class QualifyRequest:
    inventory: Path
    spec: Path
    change_id: str | None
    key_file: Path
    passphrase_reader: Callable[[], bytes]
    evidence_dir: Path
    state_dir: Path
    initiator: str
    run_id: str | None = None
    limit: str | None = None
    tests: list[str] | None = None
    check_mode: bool = False
    progress: Callable[[ProgressEvent], None] | None = None
    playbook: str = "qualify.yml"
    extravars: dict[str, Any] = field(default_factory=dict)
    vault: VaultOptions = field(default_factory=VaultOptions)
    #: the pin file (``--trust-root``; else $VQUAL_TRUST_ROOT, /etc/vqual/trust-root.yaml)
    trust_root: Path | None = None
    #: judge with an unpinned store (``--legacy-trust``; also $VQUAL_LEGACY_TRUST=1)
    legacy_trust: bool = False
    #: Ansible's forks (``--forks``; None: $ANSIBLE_FORKS, else chosen from the machine)
    forks: int | None = None


@dataclass
class QualifySummary:
    change_id: str
    run_id: str
    bundle: Path
    verdict: str
    counts: dict[str, int]
    planned: int
    executed: int
    seal: str | None
    verification: str
    verification_problems: list[str]
    unreachable: list[str]
    exit_code: int
    trust_root: str = "legacy: no trust root"
    #: what the seal's RFC 3161 token proves, or "no trusted time (why)"
    trusted_time: str = NO_TRUSTED_TIME

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "change_id": self.change_id,
            "run_id": self.run_id,
            "bundle": str(self.bundle),
            "report": str(self.bundle / "report.html"),
            "junit": str(self.bundle / "junit.xml"),
            "verdict": self.verdict,
            "counts": dict(self.counts),
            "planned": self.planned,
            "executed": self.executed,
            "seal": self.seal,
            "verification": self.verification,
            "verification_problems": list(self.verification_problems),
            "unreachable": list(self.unreachable),
            "exit_code": self.exit_code,
            "trust_root": self.trust_root,
            "trusted_time": self.trusted_time,
        }

    def to_text(self) -> str:
        counts = ", ".join(f"{k} {self.counts.get(k, 0)}" for k in VERDICTS)
        lines = [
            (f"vqual: {self.change_id} run {self.run_id}: {self.verdict.upper()} "
             f"({counts}; {self.executed} of {self.planned} planned)"),
            f"  evidence: {self.bundle}",
            f"  report:   {self.bundle / 'report.html'}",
            f"  junit:    {self.bundle / 'junit.xml'}",
            f"  seal:     {self.seal or '-'}",
            f"  time:     {self.trusted_time}",
            f"  verified: {self.verification}",
            f"  {self.trust_root}",
        ]
        lines += [f"    {p}" for p in self.verification_problems[:10]]
        if self.unreachable:
            lines.append(f"  unreachable: {', '.join(self.unreachable)}")
        return "\n".join(lines)


def _check_executor_trusted(state_dir: Path, keyid: str) -> str:
    """:func:`_check_executor_key` with the trust store the pinned root vouches for (or
    legacy trust asked for through $VQUAL_LEGACY_TRUST; ``vqual patch``); returns the line
    naming the root used."""
    path = trust_path(state_dir)
    if not path.exists():
        raise TrustError(
            f"no trust store at {path}: create a key with `vqual keys create --role executor`"
        )
    choice = choose_trust(state_dir)
    _check_executor_key(choice.store, keyid)  # checked against its signed history
    return choice.describe()


def _check_executor_key(trust: TrustStore, keyid: str) -> None:
    ok, reason = trust.key_status_at(keyid, utc_now())
    if ok and not trust.has_role(keyid, "executor"):
        ok, reason = False, "it does not hold the executor role in the trust store"
    if not ok:
        raise TrustError(f"the key {keyid[:16]} cannot sign runs: {reason}")


@dataclass(frozen=True)
class Preflight:
    """What holds before anything executes: the run's context and the executor's passphrase."""

    context: RunContext
    passphrase: bytes | None = field(default=None, repr=False)
    #: the line naming the trust root the run is judged with (or legacy)
    trust_text: str = LEGACY_TEXT


def preflight(request: QualifyRequest) -> Preflight:
    """Everything that must hold before anything executes; raises BadInputError otherwise.

    Loads the site configuration, the spec, the trust store and the review state once
    (:func:`~qualification.execution.context.load_run_context`); the run uses that context
    from here on.
    """
    context = load_run_context(
        request.state_dir,
        request.spec,
        change_id=request.change_id,
        run_id=request.run_id,
        site_pattern=True,
        trust_required=True,
        trust_choice=(choice := _choose(request)),
    )
    signer, passphrase = open_signer_with(request.key_file, request.passphrase_reader)
    assert context.trust is not None  # trust_required
    _check_executor_key(context.trust, signer.keyid)
    bundle = request.evidence_dir / context.change_id / context.run_id
    if bundle.exists():
        raise BadInputError(f"run id {context.run_id} already exists: {bundle}")
    return Preflight(context, passphrase, choice.describe())


def _choose(request: QualifyRequest) -> TrustChoice:
    path = trust_path(request.state_dir)
    if not path.exists():
        raise TrustError(
            f"no trust store at {path}: create a key with `vqual keys create --role executor`"
        )
    return choose_trust(
        request.state_dir, trust_root=request.trust_root, legacy=request.legacy_trust
    )


def run_qualify(request: QualifyRequest) -> QualifySummary:
    """Run a qualification end to end and summarise the bundle it wrote."""
    checked = preflight(request)
    context = checked.context
    change_id, run_id = context.change_id, context.run_id
    extravars: dict[str, Any] = {
        "vqual_spec": str(request.spec.resolve()),
        "vqual_change_id": change_id,
        "vqual_run_id": run_id,
        **request.extravars,
    }
    if request.tests:
        extravars["vqual_tests"] = list(request.tests)
    outcome = run_playbook(
        PlaybookRun(
            playbook=request.playbook,
            inventory=request.inventory,
            extravars=extravars,
            key_file=request.key_file.resolve(),
            passphrase=checked.passphrase,
            evidence_dir=request.evidence_dir.resolve(),
            state_dir=request.state_dir.resolve(),
            initiator=request.initiator,
            limit=request.limit,
            check_mode=request.check_mode,
            progress=request.progress,
            vault=request.vault,
            context=context,
            forks=request.forks,
        )
    )
    if outcome.plan_error is not None:
        error = BadInputError(outcome.plan_error)
        if outcome.plan_exit_code is not None:
            error.exit_code = outcome.plan_exit_code
        raise error
    bundle = request.evidence_dir / change_id / run_id
    if not bundle.exists():
        raise PlatformError(
            f"the playbook ended ({outcome.status}, rc {outcome.rc}) without writing evidence; "
            f"failed: {outcome.failed or 'none'}"
        )
    assert context.trust is not None  # preflight requires one
    result = verify_bundle(bundle, context.trust)
    counts = dict(result.counts)
    verdict = str(result.verdict) if result.verdict else "incomplete"
    if result.status == "valid":
        exit_code = exit_code_for_verdict(verdict)
    elif result.status == "incomplete":
        exit_code = EXIT_INCOMPLETE
    else:
        exit_code = 1
    return QualifySummary(
        change_id=change_id,
        run_id=run_id,
        bundle=bundle,
        verdict=verdict,
        counts=counts,
        planned=int(result.planned or 0),
        executed=int(sum(counts.values())),
        seal=result.seal_digest,
        verification=result.status,
        verification_problems=list(result.problems),
        unreachable=list(outcome.unreachable),
        exit_code=exit_code,
        trust_root=checked.trust_text,
        trusted_time=trusted_time_summary(result),
    )


__all__ = ["KeyFileError", "Preflight", "QualifyRequest", "QualifySummary", "preflight", "run_qualify"]
