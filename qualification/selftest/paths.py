"""OQ self check of the redundant-path checks (VQ-76, URS-CL-03): a bond whose member lost
its link fails the ``bond`` check, naming the member, with each member's link state measured.

The input is real kernel output, committed as ``data/bond0-degraded.txt``: the
``/proc/net/bonding/bond0`` of the lab's paths guest (Debian 6.1 kernel, active-backup over
two virtio NICs) after one member's link was set down through libvirt. It is parsed by the
collection's own target-side code (``plugins/module_utils/host_paths.py``, loaded from the
collection this vqual runs) and decided by the check library as a run decides it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from qualification.checks import Observation, evaluate, get_check
from qualification.errors import BadInputError
from qualification.execution.collection import find_collection_root
from qualification.selftest.base import Outcome, SelfCheck, never_run
from qualification.verdict import Verdict

FIXTURE = Path(__file__).parent / "data" / "bond0-degraded.txt"
_MODULE = "ansible_collections.vqual.qualification.plugins.module_utils.host_paths"
_PARAMS = {"field": "members_down"}
_EXPECT = {"op": "equals", "value": []}
#: ST-OQ-35: the verdict, the observed value and the measured links.
_WANT = {
    "verdict": "fail",
    "observed": ["bond0/eth2"],
    "members": {"eth1": "up", "eth2": "down"},
    "names the member": True,
}


def _parse(root: Path) -> dict[str, Any]:
    """The fixture parsed by the collection's parser, run as ``python -m`` from ``root``'s
    collections path (the target-side code imports only the standard library and itself)."""
    collections_dir = str(root.parents[2])  # <dir>/ansible_collections/vqual/qualification
    path = os.pathsep.join(p for p in (collections_dir, os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-m", _MODULE, str(FIXTURE)], env={**os.environ, "PYTHONPATH": path},
        capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{_MODULE} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def degraded_bond(root: Path) -> Outcome:
    """The captured degraded bond through the probe's parser and the ``bond`` check."""
    bond = _parse(root)
    outcome = evaluate(get_check("bond"), Observation(value={"bonds": {"bond0": bond}}),
                       _PARAMS, _EXPECT)
    measured = dict(outcome.measured).get("bond0") or {}
    got = {
        "verdict": outcome.verdict.value,
        "observed": outcome.observed,
        "members": measured.get("members"),
        "names the member": "bond0/eth2" in (outcome.reason or ""),
    }
    ok = got == _WANT and outcome.verdict is Verdict.FAIL
    return Outcome(ok, got, None if ok else f"got {got} (reason {outcome.reason!r})")


def path_checks() -> list[SelfCheck]:
    """OQ: ST-OQ-35 (VQ-76)."""
    try:
        root: Path | None = find_collection_root()
        missing = None
    except BadInputError as exc:
        root, missing = None, f"{exc.one_line()} (the probe's parser is in the collection)"
    return [
        SelfCheck(
            "ST-OQ-35",
            "a bond with a member's link down fails the bond check naming the member, with "
            "each member's link state measured (real /proc/net/bonding text)",
            "OQ",
            "VQ-76",
            "host_paths.parse_proc_bonding on the committed bond0-degraded.txt, then the "
            "bond check (members_down equals []) through checks.evaluate",
            {"op": "equals", "value": _WANT},
            (lambda: degraded_bond(root)) if root is not None else never_run,
            not_executed=missing,
        )
    ]
