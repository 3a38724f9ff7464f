"""What AAP / AWX does around a job, as the tests of docs/aap.md need it.

:func:`inject_credential` applies a credential type's injectors as AWX does
(``CredentialType.inject_credential`` in awx/main/models/credential/__init__.py): every
``file`` template rendered in Jinja's immutable sandbox into its own ``mkstemp`` file under
``<private data dir>/env`` with mode 0600, its path in ``tower.filename.<name>``, then every
``env`` template rendered. AWX hands the path as it appears inside the execution environment
(``/runner/env/...``, the private data directory mounted at ``/runner``); without a container
the same role is played by a path relative to the project directory, where ansible-runner
starts ``ansible-playbook`` (``../env/...``), which stays valid in the worker's own copy of the
private data directory.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

REPO = Path(__file__).resolve().parents[2]
CREDENTIAL_TYPE = (REPO / "ansible_collections" / "vqual" / "qualification" / "extensions"
                   / "aap" / "credential_type_executor_key.yml")


class _Namespace:
    pass


def inject_credential(credential_type: dict[str, Any], inputs: dict[str, str],
                      private_data_dir: Path) -> dict[str, str]:
    """The environment the credential's injectors give a job; files written as AWX does."""
    namespace: dict[str, Any] = {"tower": _Namespace(), **inputs}
    filenames = _Namespace()
    namespace["tower"].filename = filenames
    sandbox = ImmutableSandboxedEnvironment()
    env_dir = private_data_dir / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    for label, template in credential_type["injectors"].get("file", {}).items():
        data = sandbox.from_string(template).render(**namespace)
        fd, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(fd, "w") as handle:
            handle.write(data)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        setattr(filenames, label.split(".", 1)[1], f"../env/{Path(path).name}")
    return {name: sandbox.from_string(template).render(**namespace)
            for name, template in credential_type["injectors"].get("env", {}).items()}


def credential_type() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CREDENTIAL_TYPE.read_text())
    return loaded
