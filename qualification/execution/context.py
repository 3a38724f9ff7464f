"""One run's inputs, loaded and validated once: site settings, spec, trust store and review.

A qualification run needs the site configuration (``config.yaml``), the spec with its data
files, the trust store (checked against its signed history), the protocol approval and the
change's deviations. :func:`load_run_context` loads each of them once and returns a
:class:`RunContext`; everything after it (planning, the recorder, the final verification)
takes what it needs from that object and reads none of them again.

Across the process boundary: ``vqual qualify`` loads the context before Ansible starts and
hands it to the ``ansible-playbook`` process as a JSON file in ansible-runner's private data
directory (:func:`write_handoff`); :data:`RUN_CONTEXT_ENV` names the file and
:data:`RUN_CONTEXT_DIGEST_ENV` its SHA-256, which the plan action checks before it uses the
file (:func:`handed_over`). A playbook run directly with ``ansible-playbook`` has no such
file, and its plan action loads the context itself, once. The file holds no secret: settings,
public keys, signed approvals and waivers, the spec and its data files.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.config import SiteConfig, load_config_cited
from qualification.errors import BadInputError, TrustError
from qualification.execution.gc_pause import gc_paused
from qualification.review.approval import ProtocolApproval
from qualification.review.deviations import DeviationState
from qualification.review.gate import review_state
from qualification.review.pinned import TrustChoice
from qualification.review.trust_history import trusted_store
from qualification.signing import TrustStore
from qualification.spec.change import validate_change_id, validate_run_id
from qualification.spec.codec import spec_from_json, spec_to_json
from qualification.spec.loader import load_spec
from qualification.spec.model import Spec
from qualification.state import trust_path
from qualification.timeutil import new_run_id, utc_now

#: Environment variables through which ``vqual`` hands a loaded context to its playbook.
RUN_CONTEXT_ENV = "VQUAL_RUN_CONTEXT"
RUN_CONTEXT_DIGEST_ENV = "VQUAL_RUN_CONTEXT_SHA256"
#: The file's name in the private data directory.
HANDOFF_FILE = "vqual-run-context.json"
HANDOFF_VERSION = 1


@dataclass(frozen=True)
class RunContext:
    """Everything a run reads from the state directory and the spec, loaded and judged once.

    Attributes:
        state_dir: the state directory the context was loaded from.
        config: the site settings in force.
        config_citation: what ``run.start`` records as ``config`` (file digest and settings).
        spec: the validated spec with its data files.
        change_id: the validated change id.
        run_id: the validated (or new) run id.
        trust: the trust store, checked against its signed history; None when the state
            directory has none (allowed for a plain ``ansible-playbook`` run only).
        trust_version: the signed version of the trust store, or None (not signed).
        approval: the latest valid protocol approval of this spec and its data files.
        deviations: the change's deviations with their valid waivers (None without a trust
            store: nothing can be judged, so nothing is waived).
    """

    state_dir: Path
    config: SiteConfig
    config_citation: dict[str, Any] = field(hash=False)
    spec: Spec = field(hash=False)
    change_id: str
    run_id: str
    trust: TrustStore | None = field(default=None, hash=False)
    trust_version: int | None = None
    #: {keyid, version} of the pinned trust root the run was judged with (None: legacy)
    trust_root: dict[str, Any] | None = field(default=None, hash=False)
    approval: ProtocolApproval | None = None
    deviations: DeviationState | None = field(default=None, hash=False)

    @property
    def trust_digest(self) -> str | None:
        """SHA-256 of the trust store's bytes as loaded, or None without a trust store."""
        return self.trust.digest if self.trust is not None else None

    def to_json(self) -> dict[str, Any]:
        """The context as JSON data; paths are made absolute, so another working directory
        finds the same files."""
        trust = self.trust
        return {
            "v": HANDOFF_VERSION,
            "state_dir": str(self.state_dir.absolute()),
            "change_id": self.change_id,
            "run_id": self.run_id,
            "config": {
                "settings": dataclasses.asdict(self.config),
                "citation": self.config_citation,
            },
            "spec": spec_to_json(_absolute(self.spec)),
            "trust": (
                {
                    "path": str(trust.path.absolute()),
                    "raw": base64.b64encode(trust.raw or b"").decode("ascii"),
                    "digest": trust.digest,
                    "version": self.trust_version,
                }
                if trust is not None
                else None
            ),
            "approval": self.approval.citation() if self.approval is not None else None,
            "deviations": self.deviations.to_json() if self.deviations is not None else None,
            "trust_root": self.trust_root,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunContext:
        """Read :meth:`to_json` back without loading or judging anything again.

        Raises:
            BadInputError: not this version, a field missing or mistyped, or bytes (spec,
                data files, trust store) that do not have the digest recorded beside them.
        """
        try:
            if data["v"] != HANDOFF_VERSION:
                raise BadInputError(f"run context version {data['v']!r} is not {HANDOFF_VERSION}")
            settings = data["config"]["settings"]
            trust_data = data["trust"]
            trust: TrustStore | None = None
            version: int | None = None
            if trust_data is not None:
                raw = base64.b64decode(trust_data["raw"], validate=True)
                if hashlib.sha256(raw).hexdigest() != trust_data["digest"]:
                    raise BadInputError(
                        "run context: the trust store handed over does not have its digest"
                    )
                trust = TrustStore.parse(raw, trust_data["path"])
                version = trust_data["version"]
                if version is not None and not isinstance(version, int):
                    raise TypeError(f"trust version {version!r} is not an integer")
            approval = data["approval"]
            deviations = data["deviations"]
            return cls(
                state_dir=Path(_text(data["state_dir"])),
                config=SiteConfig(**settings),
                config_citation=dict(data["config"]["citation"]),
                spec=spec_from_json(data["spec"]),
                change_id=_text(data["change_id"]),
                run_id=_text(data["run_id"]),
                trust=trust,
                trust_version=version,
                trust_root=dict(data["trust_root"]) if data.get("trust_root") else None,
                approval=ProtocolApproval(**approval) if approval is not None else None,
                deviations=DeviationState.from_json(deviations) if deviations is not None else None,
            )
        except (KeyError, TypeError, binascii.Error) as exc:
            raise BadInputError(f"malformed run context: missing or mistyped field {exc}") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return str(value)


def _absolute(spec: Spec) -> Spec:
    clone = spec.clone
    if clone is not None and clone.master.bundle is not None:
        clone = dataclasses.replace(
            clone, master=dataclasses.replace(clone.master, bundle=clone.master.bundle.absolute())
        )
    return dataclasses.replace(
        spec,
        path=spec.path.absolute(),
        data_files=tuple(dataclasses.replace(d, path=d.path.absolute()) for d in spec.data_files),
        clone=clone,
    )


def load_run_context(
    state_dir: Path,
    spec_path: Path,
    *,
    change_id: str | None,
    run_id: str | None = None,
    change_pattern: str | None = None,
    site_pattern: bool = False,
    trust_required: bool = False,
    trust_choice: TrustChoice | None = None,
) -> RunContext:
    """Load and validate a run's inputs, each once; nothing executes.

    Args:
        state_dir: the state directory (``config.yaml``, trust store, approvals, deviations).
        spec_path: the spec file.
        change_id: the change the run belongs to.
        run_id: the run id; a new one from the UTC time when None.
        change_pattern: the pattern the change id must match; when None, the site's
            ``change_id_pattern`` if ``site_pattern``, else the default pattern.
        site_pattern: apply ``config.yaml``'s ``change_id_pattern`` (``vqual`` commands do).
        trust_required: refuse a state directory without a trust store (``vqual`` commands
            do; a plain ``ansible-playbook`` run records without judging approvals and waivers).
        trust_choice: the trust store chosen through the pinned root (or legacy trust asked
            for; :func:`qualification.review.pinned.choose_trust`); None: the state
            directory's store checked against its history (a plain ``ansible-playbook`` run).

    Raises:
        BadInputError: a bad change or run id, spec, ``config.yaml`` or ``deviations.yaml``, or
            a protocol without approval where the site requires one.
        SpecError: the spec does not validate.
        TrustError: the trust store is missing (``trust_required``), malformed, or does not
            match its signed history.
    """
    config, citation = load_config_cited(state_dir)
    pattern = change_pattern or (config.change_id_pattern if site_pattern else None)
    change = validate_change_id(change_id, pattern) if pattern else validate_change_id(change_id)
    run = validate_run_id(run_id) if run_id else new_run_id(utc_now())
    with gc_paused():  # a 1,000-test spec: a quarter of its CPU went to collections
        spec = load_spec(spec_path)
    context = RunContext(
        state_dir=state_dir,
        config=config,
        config_citation=citation,
        spec=spec,
        change_id=change,
        run_id=run,
    )
    path = trust_path(state_dir)
    if not path.exists():
        if trust_required:
            raise TrustError(
                f"no trust store at {path}: create a key with `vqual keys create --role executor`"
            )
        return context
    if trust_choice is not None:
        trust, version = trust_choice.store, trust_choice.version
        context = dataclasses.replace(context, trust_root=trust_choice.citation())
    else:
        trust, version = trusted_store(state_dir, require_signed=config.require_signed_trust)
    approval, deviations = review_state(
        state_dir, spec, change, trust, approval_required=config.require_protocol_approval
    )
    return dataclasses.replace(
        context, trust=trust, trust_version=version, approval=approval, deviations=deviations
    )


def write_handoff(context: RunContext, directory: Path) -> tuple[Path, str]:
    """Write ``context`` to :data:`HANDOFF_FILE` in ``directory`` (mode 0600, a new file).

    Returns:
        (the file, the SHA-256 of its bytes), for :data:`RUN_CONTEXT_ENV` and
        :data:`RUN_CONTEXT_DIGEST_ENV`.
    """
    data = json.dumps(context.to_json(), sort_keys=True, separators=(",", ":")).encode("utf-8")
    path = directory / HANDOFF_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path, hashlib.sha256(data).hexdigest()


def handoff_environment(path: Path, digest: str) -> dict[str, str]:
    """The environment variables that hand the file at ``path`` to the playbook process."""
    return {RUN_CONTEXT_ENV: str(path), RUN_CONTEXT_DIGEST_ENV: digest}


def read_handoff(path: Path, digest: str) -> RunContext:
    """The context in the file ``vqual`` wrote, after checking its digest.

    Raises:
        BadInputError: the file cannot be read, its SHA-256 is not ``digest`` (it changed
            after ``vqual`` wrote it), or it is not a run context.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInputError(
            f"the run context vqual handed over cannot be read: {exc.strerror}", where=str(path)
        ) from None
    found = hashlib.sha256(data).hexdigest()
    if found != digest:
        raise BadInputError(
            f"the run context vqual handed over has changed (sha256 {found[:16]}, "
            f"expected {digest[:16]})",
            where=str(path),
        )
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise BadInputError(f"the run context is not JSON: {exc}", where=str(path)) from None
    if not isinstance(doc, dict):
        raise BadInputError("the run context is not a JSON object", where=str(path))
    return RunContext.from_json(doc)


def handed_over(environ: Mapping[str, str]) -> RunContext | None:
    """The context ``vqual`` handed to this playbook process, or None (a plain
    ``ansible-playbook`` run).

    Raises:
        BadInputError: as :func:`read_handoff`, or the digest variable is missing.
    """
    where = environ.get(RUN_CONTEXT_ENV)
    if not where:
        return None
    digest = environ.get(RUN_CONTEXT_DIGEST_ENV)
    if not digest:
        raise BadInputError(f"{RUN_CONTEXT_ENV} is set but {RUN_CONTEXT_DIGEST_ENV} is not")
    return read_handoff(Path(where), digest)
