# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Controller-side helpers shared by vqual's action plugins.

Action plugins run on the controller, where the ``qualification`` package is installed (the
collection declares it as a Python requirement). This module imports it with a guard so a
missing package gives one clear message instead of a traceback.
"""

from __future__ import annotations

from typing import Any

try:
    import qualification  # noqa: F401  # pylint: disable=unused-import

    HAS_QUALIFICATION = True
    QUALIFICATION_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    HAS_QUALIFICATION = False
    QUALIFICATION_IMPORT_ERROR = str(exc)

# No public index serves vqual: it is installed from the wheel shipped beside this collection,
# with the extras of the site's platforms (docs/install.md).
MISSING_QUALIFICATION = (
    "the vqual Python package is not installed on the controller: install the vqual wheel of "
    "this collection's version with the extras of your platforms, "
    "pip install 'vqual-<version>-py3-none-any.whl[libvirt,vsphere,hyperv]' "
    "(docs/install.md): {error}"
)

#: Environment variable the evidence callback sets in the controller process so that the
#: playbook's first task can refuse to run without it (workers inherit the environment).
CALLBACK_STATE_ENV = "VQUAL_EVIDENCE_CALLBACK_STATE"
CALLBACK_NAME = "vqual.qualification.evidence"
#: Set by the evidence callback when it sealed the run at the start of the
#: vqual.qualification.seal task: JSON with the bundle, seal, verdict and counts, which that
#: task returns so the play can publish them (set_stats) and fail the job on a failed run.
SEALED_ENV = "VQUAL_EVIDENCE_SEALED"
SEAL_ACTIONS = ("vqual.qualification.seal", "seal")


def is_vault_error(exc: BaseException) -> bool:
    """Whether templating failed because a vault-encrypted value could not be decrypted."""
    seen: BaseException | None = exc
    while seen is not None:
        # ansible.parsing.vault.AnsibleVaultError, or the templating layer's undecryptable
        # value error (context "vault"); by name, so module_utils imports nothing of Ansible's.
        if type(seen).__name__ == "AnsibleVaultError" or getattr(seen, "context", None) == "vault":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def plain(value: Any) -> Any:
    """Copy a templated Ansible value into plain Python types (str, int, list, dict...)."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {plain(k) if isinstance(k, str) else str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        # Ansible's tagged strings are str subclasses; canonical JSON wants exact types.
        return value if value.__class__ is str else "".join((value,))
    return str(value)
