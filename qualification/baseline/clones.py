"""Making clones of a Master-VM, for clone qualification by difference.

The clone run itself (``vqual clone``: the master checked, the clones made and qualified) is
the run service's, :mod:`qualification.execution.clone`.

Clones can be made from the master first: on libvirt a qcow2 overlay of each master disk
under a new name, UUID and MAC (the libvirt plug-in's ``create_clone``,
:mod:`qualification.platforms.libvirt.clones`); on vSphere a clone of the
template (``CloneVM_Task``, through the ``vm_clone`` module in ``playbooks/clone_qualify.yml``).

Docs: docs/clones.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from qualification.errors import BadInputError, VqualError
from qualification.platforms import registry
from qualification.platforms.base import SAFE_VM_NAME

#: Safe VM names for created clones (also a libvirt domain and file name).
CLONE_NAME = SAFE_VM_NAME


def clone_names(count: int, prefix: str) -> list[str]:
    """``count`` clone names ``<prefix>-1`` .. ``<prefix>-<count>``.

    Raises:
        BadInputError: a count below 1 or a name that is not a safe VM name.
    """
    if count < 1:
        raise BadInputError(f"--create needs a count of at least 1, not {count}")
    names = [f"{prefix}-{i}" for i in range(1, count + 1)]
    for name in names:
        if not CLONE_NAME.match(name):
            raise BadInputError(f"clone name {name!r} is not a safe VM name ({CLONE_NAME.pattern})")
    return names


def _main(argv: Sequence[str]) -> int:
    """``python -m qualification.baseline.clones create-<platform> ENDPOINT MASTER NAME`` and
    ``remove-<platform> ENDPOINT NAME`` (``create-libvirt URI MASTER NAME``): the platform
    plug-in's ``create_clone`` / ``remove_clone``, the steps of ``playbooks/clone_qualify.yml``
    that run on the controller, printing JSON; one line on stderr and the exit code on error."""
    usage = ("usage: python -m qualification.baseline.clones "
             "create-<platform> ENDPOINT MASTER NAME | remove-<platform> ENDPOINT NAME")
    try:
        action, _, platform = (argv[0] if argv else "").partition("-")
        if action == "create" and len(argv) == 4:
            if not CLONE_NAME.match(argv[3]):
                raise BadInputError(
                    f"clone name {argv[3]!r} is not a safe VM name ({CLONE_NAME.pattern})"
                )
            print(json.dumps(registry.get(platform).create_clone(argv[1], argv[2], argv[3])))
            return 0
        if action == "remove" and len(argv) == 3:
            registry.get(platform).remove_clone(argv[1], argv[2])
            print(json.dumps({"removed": argv[2]}))
            return 0
        raise BadInputError(usage)
    except VqualError as exc:
        print(f"vqual: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
