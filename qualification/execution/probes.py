"""Controller-side probes: platform observations made in-process on the controller.

Target-side probes (``host``) run as modules on the target. Platform probes (libvirt,
vSphere, Hyper-V, any registered plug-in) talk to an API from the controller; the collection's
action plugin calls them here, in-process, exactly as their modules do when delegated to
localhost. Which plug-in answers is the registry's business (``platforms.registry``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qualification.platforms import registry
from qualification.platforms.base import observations_failed


def run_controller_probe(
    probe: str,
    requests: Sequence[Mapping[str, Any]],
    *,
    host_vars: Mapping[str, Any],
    run_id: str,
    check_mode: bool,
    data_files: Sequence[Mapping[str, Any]] = (),
) -> dict[str, dict[str, Any]]:
    """Answer ``requests`` of one controller-side probe; unknown probes answer ``error``.

    ``data_files`` are the plan's ``[{name, path, digest}]``: a request naming one (the
    vSphere or Hyper-V HCL) gets its content, read again and checked against the approved digest.
    """
    try:
        plugin = registry.for_probe(probe)
    except registry.UnknownPlatform as exc:
        return observations_failed(requests, exc.one_line())
    return plugin.answer(
        requests, host_vars=host_vars, run_id=run_id, check_mode=check_mode, data_files=data_files
    )
