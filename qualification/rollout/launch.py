"""Launch a rolling patch from an inventory and a change file: the one entry of ``vqual patch``
and of the collection's ``vqual.qualification.rolling_patch`` action (docs/rolling-patch.md,
docs/aap.md), so the command and the playbook run the same orchestrator the same way.

Both pass ``progress``: the command prints each line on stderr, the action plugin shows it in
the job output as it happens (one line per host and step of
:data:`~qualification.rollout.steps.STEP_TABLE`).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qualification.errors import BadInputError
from qualification.execution.inventory import VaultOptions
from qualification.platforms import registry
from qualification.platforms.base import HypervisorPlatform

if TYPE_CHECKING:
    from qualification.rollout.change import RolloutChange
    from qualification.rollout.inventory import SitePlacement
    from qualification.rollout.orchestrator import PatchOutcome
    from qualification.rollout.planner import RolloutPlan
    from qualification.rollout.requalify import Requalifier


def _no_passphrase() -> bytes:
    raise BadInputError("the executor key is passphrase-protected and no passphrase was given")


@dataclass
class PatchRequest:
    """What ``vqual patch`` (or the rolling_patch action) was asked to do."""

    inventory: Path
    change_file: Path
    state_dir: Path
    evidence_dir: Path = Path("evidence")
    bind: str | None = None
    resume_run: str | None = None
    platform_host: str | None = None
    requalify_mode: str | None = None
    key_file: Path | None = None  # None: <state dir>/keys/executor.pem
    passphrase_reader: Callable[[], bytes] = _no_passphrase
    run_id: str | None = None
    initiator: str | None = None  # None: $VQUAL_INITIATOR or the login user
    vault: VaultOptions = field(default_factory=VaultOptions)


def platform_and_executor(
    hostvars: Mapping[str, Mapping[str, Any]], cluster: str, platform_host: str | None,
    state_dir: Path | None = None,
) -> tuple[Callable[[], HypervisorPlatform], Any, str | None]:
    """The platform factory, the executor and the ``--limit`` for requalification (None: each
    host's own name) of the change's cluster, from the one platform plug-in that manages it
    (``patch_setup`` of each registered plug-in; docs/rolling-patch.md)."""
    found = [
        (plugin.name, setup) for plugin in registry.plugins()
        if (setup := plugin.patch_setup(hostvars, cluster, platform_host, state_dir)) is not None
    ]
    if len(found) > 1:
        raise BadInputError(f"several platforms manage cluster {cluster} "
                            f"({', '.join(name for name, _ in found)}): name one with --platform-host")
    if not found:
        if platform_host is not None:
            raise BadInputError(
                f"inventory host {platform_host} is no platform endpoint of cluster {cluster}"
            )
        raise BadInputError(f"inventory: no platform endpoint manages cluster {cluster!r} "
                            f"(platforms: {', '.join(registry.names())})")
    setup = found[0][1]
    return setup.factory, setup.executor, setup.qualify_limit


@dataclass
class _Setup:
    change: RolloutChange
    factory: Callable[[], HypervisorPlatform]
    executor: Any
    qualify_limit: str | None
    placement: SitePlacement


def _setup(request: PatchRequest, *, planning: bool) -> _Setup:
    from qualification.config import load_config
    from qualification.execution.inventory import read_hostvars
    from qualification.rollout.change import load_change
    from qualification.rollout.inventory import site_placement
    from qualification.rollout.orchestrator import resumable

    if request.bind is not None and request.resume_run is not None:
        raise BadInputError("--bind and --resume exclude each other (a resumed run keeps its plan)")
    config = load_config(request.state_dir)
    change = load_change(request.change_file,
                         change_id_pattern=config.change_id_pattern or None)
    if request.resume_run is not None and not planning:
        # refused before the inventory and the key are read
        resumable(request.state_dir, request.resume_run, change)
    ssh_vars = tuple(dict.fromkeys(v for p in registry.plugins() for v in p.patch_vars))
    hostvars = read_hostvars(request.inventory, names=ssh_vars, patterns=("vqual_.*",),
                             vault=request.vault)
    if not hostvars:
        raise BadInputError("no hosts in the inventory", where=str(request.inventory))
    factory, executor, limit = platform_and_executor(hostvars, change.cluster,
                                                     request.platform_host, request.state_dir)
    return _Setup(change, factory, executor, limit, site_placement(hostvars, change.cluster))


def plan_patch(request: PatchRequest, progress: Callable[[str], None]) -> RolloutPlan:
    """The live plan (``--plan``); changes nothing."""
    from qualification.rollout.orchestrator import Orchestrator
    from qualification.rollout.requalify import PlatformRequalifier

    setup = _setup(request, planning=True)
    orch = Orchestrator(setup.factory, setup.executor, PlatformRequalifier(), setup.change,
                        request.state_dir, None, progress=progress, placement=setup.placement)
    try:
        plan: RolloutPlan = orch.plan()
    finally:
        orch.close()
    return plan


def run_patch(request: PatchRequest, progress: Callable[[str], None]) -> PatchOutcome:
    """Run (or resume) the rolling patch with the executor's key; ``progress`` gets one line
    per gate, host and step as it happens."""
    from qualification.execution.qualify import _check_executor_trusted
    from qualification.execution.recorder import open_signer_with
    from qualification.rollout.evidence import PatchEvidence
    from qualification.rollout.orchestrator import Orchestrator
    from qualification.rollout.requalify import QualifyRequalifier

    setup = _setup(request, planning=False)
    state = request.state_dir
    who = request.initiator or os.environ.get("VQUAL_INITIATOR") or getpass.getuser()
    key = request.key_file or state / "keys" / "executor.pem"
    signer, passphrase = open_signer_with(key, request.passphrase_reader)
    progress(_check_executor_trusted(state, signer.keyid))
    limit = setup.qualify_limit
    requalifier = requalifier_for(request.requalify_mode, setup.change, lambda: QualifyRequalifier(
        inventory=request.inventory, key_file=key,
        passphrase_reader=lambda: passphrase or b"", evidence_dir=request.evidence_dir,
        state_dir=state, initiator=who,
        limit_for=(lambda _host: limit) if limit else None, vault=request.vault,
    ))
    evidence = PatchEvidence(request.evidence_dir, signer, who, state_dir=state)
    orch = Orchestrator(setup.factory, setup.executor, requalifier, setup.change, state,
                        evidence, progress=progress, placement=setup.placement)
    try:
        if request.resume_run is not None:
            return orch.resume(request.resume_run, new_run=request.run_id)
        return orch.run(bind=request.bind, run_id=request.run_id)
    finally:
        close = getattr(setup.executor, "close", None)
        if callable(close):
            close()


def requalifier_for(mode: str | None, change: RolloutChange,
                    qualify: Callable[[], Requalifier]) -> Requalifier:
    """``--requalify``: ``platform`` the built-in tests, ``qualify`` (made by ``qualify``) also
    `vqual qualify` per host; the default is ``qualify`` when the change names a spec."""
    from qualification.rollout.requalify import PlatformRequalifier

    mode = mode or ("qualify" if change.requalify is not None else "platform")
    if mode != "qualify":
        return PlatformRequalifier()
    if change.requalify is None:
        raise BadInputError("--requalify qualify needs requalify.spec in the change file")
    return qualify()
