"""The one builder of ``run.start`` for every kind of run: qualify, clone, drift, patch and
selftest (docs/formats.md, ``run.start``).

What every run records about the tool and the controller (versions, host, clock) is filled in
here; the caller gives what its run planned and the inputs it was judged with. What only one
kind of run has (``clone``, ``patch``, ``golden``) the caller sets on the returned payload,
typed by :class:`~qualification.evidence.kinds.run_start.RunStartData`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qualification import __version__
from qualification.evidence.kinds.run_start import RunStartData
from qualification.execution import controller


def run_start_data(
    *,
    mode: str,
    spec: Mapping[str, Any] | None,
    data_files: Sequence[Mapping[str, Any]],
    inventory_digest: str | None,
    trust: Mapping[str, Any],
    targets: Sequence[Mapping[str, Any]],
    planned: Sequence[Mapping[str, Any]],
    prev_run_seal: str | None,
    approval: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    requirements: Sequence[str] | None = None,
    traceability: Mapping[str, Any] | None = None,
) -> RunStartData:
    """The ``run.start`` payload of a run.

    Args:
        mode: ``qualify``, ``clone``, ``drift``, ``patch`` or ``selftest``.
        spec: {path, name, version, digest} of the protocol that ran (None: none, a patch
            without requalification).
        data_files: [{name, path, digest}] sealed under ``data/``.
        inventory_digest: SHA-256 of the sealed inventory snapshot (None: none).
        trust: {digest, version} of the trust store the run was judged with.
        targets: [{name, kinds, risk, risk_reason}].
        planned: [{test_id, target, protocol}] in plan order.
        prev_run_seal: the seal digest of the latest sealed run of the same change.
        approval: the protocol approval cited, or None.
        config: the site settings in force (``qualification.config.config_citation``).
        requirements: the spec's requirement ids (omitted when None).
        traceability: the spec's requirements file as {file, requirements} (omitted when
            None: the spec names none).
    """
    data: RunStartData = {
        "mode": mode,
        "tool": {"name": "vqual", "version": __version__},
        "versions": controller.versions(),
        "controller": controller.controller_info(),
        "clock": controller.clock_status(),
        "spec": dict(spec) if spec is not None else None,
        "data_files": [dict(d) for d in data_files],
        "inventory": {"digest": inventory_digest},
        "trust": dict(trust),
        "targets": [dict(t) for t in targets],
        "planned": [dict(p) for p in planned],
        "prev_run_seal": prev_run_seal,
        "approval": dict(approval) if approval is not None else None,
        "config": dict(config),
    }
    if requirements is not None:
        data["requirements"] = list(requirements)
    if traceability is not None:
        data["traceability"] = dict(traceability)
    return data
