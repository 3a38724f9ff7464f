"""One inventory reader: host variables rendered as ``ansible-playbook`` renders them.

:func:`read_hostvars` returns ``{host: {variable: value}}`` for the variables and hosts asked
for, with templates, lookups and vault-encrypted values resolved by Ansible itself, so a
value is what a play of the same inventory sees in ``hostvars``. ``vqual patch`` and
``vqual cleanup`` read their endpoints (URIs, logins, passwords) through it.

Why this shape:

- Rendering is Ansible's: ``ansible-inventory --list`` (and ansible-runner's inventory
  interface, which wraps it) returns templates as written and vault values as ciphertext,
  and the core never imports ``ansible``. So one subprocess renders: an ad hoc
  ``ansible localhost -m vqual.qualification.hostvars_info`` against the inventory. That
  action plugin of the collection (controller-side, touches no target) reads each selected
  variable through ``hostvars[host][name]``, which templates it in that host's context with
  the run's vault secrets, exactly as a play does.
- Values travel over a pipe, never through output meant for people: this process opens a
  pipe, passes its write end down (``pass_fds``) and names it in the plugin's ``fd``
  argument; the plugin writes one line of JSON there, which is read here and parsed in
  memory. The task result Ansible prints, hands to callbacks or logs holds only variable
  names, never a value; nothing is written to disk (no ansible-runner here: it keeps every
  job event of a run in its artifact directory). Ansible's stdout and stderr are read only
  for its error lines when no document came back.
- Vault: Ansible's usual sources apply through the inherited environment and configuration
  (``ANSIBLE_VAULT_PASSWORD_FILE``, ``ANSIBLE_VAULT_IDENTITY_LIST``, ``ansible.cfg``), plus
  the ``--vault-password-file`` and ``--vault-id`` options of the command, carried by
  :class:`VaultOptions` (the same options go to ``ansible-playbook`` in a qualify run). A
  vaulted value that cannot be decrypted is one line of bad input naming the host and the
  variable, and how to give the password.
- Errors name the inventory and never a rendered value: before it reports Ansible's message
  (its first line), the plugin takes out of it every value of the host's variables that
  renders, since a lookup or filter may quote its argument.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError
from qualification.execution.collection import collections_path, find_collection_root

MODULE = "vqual.qualification.hostvars_info"

#: Where Ansible looks for the vault password when no option names one.
VAULT_HINT = "give --vault-password-file or --vault-id, or set ANSIBLE_VAULT_PASSWORD_FILE"

#: Bound of one read: inventory plugins may query a source (a CMDB, vCenter); a read of the
#: shipped inventories took 0.4-1.9 s here (Ansible's start-up, most of it).
TIMEOUT_S = 300.0

_ERROR_LINE = re.compile(r"^(?:\[ERROR\]:|ERROR!)\s*(.*)$")
_PARSE_WARNING = re.compile(r"^\[WARNING\]:\s*(Failed to parse .*)$")


@dataclass(frozen=True)
class VaultOptions:
    """Vault secrets given on the command line, passed to Ansible as its own options.

    Attributes:
        password_files: ``--vault-password-file`` values (a file, or an executable script).
        ids: ``--vault-id`` values, ``[label@]source``.
    """

    password_files: tuple[Path, ...] = ()
    ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for vault_id in self.ids:
            if vault_id.rpartition("@")[2] in ("prompt", ""):
                raise BadInputError(
                    f"--vault-id {vault_id}: vqual runs Ansible without a terminal, so it "
                    "cannot prompt; give a password file or script")

    def argv(self) -> list[str]:
        """Ansible's command-line options for these secrets, with absolute paths."""
        args: list[str] = []
        for path in self.password_files:
            args += ["--vault-password-file", str(Path(path).resolve())]
        for vault_id in self.ids:
            label, sep, source = vault_id.rpartition("@")
            if Path(source).exists():
                source = str(Path(source).resolve())
            args += ["--vault-id", f"{label}{sep}{source}"]
        return args


@dataclass(frozen=True)
class RenderFailure:
    """A variable of a host that Ansible could not render (the reason holds no value).

    Attributes:
        kind: ``vault`` (a vault-encrypted value could not be decrypted) or ``template``.
    """

    host: str
    variable: str
    kind: str
    reason: str

    def one_line(self) -> str:
        if self.kind == "vault":
            if "no vault secrets found" in self.reason:
                return (f"host {self.host}: variable {self.variable} needs a vault-encrypted "
                        f"value and no vault password was given: {VAULT_HINT}")
            return (f"host {self.host}: variable {self.variable} needs a vault-encrypted value "
                    f"that the vault password given cannot decrypt ({self.reason})")
        return f"host {self.host}: variable {self.variable} cannot be rendered: {self.reason}"


def read_hostvars(
    inventory: Path,
    *,
    names: Iterable[str] = (),
    patterns: Iterable[str] = (),
    hosts: Iterable[str] | None = None,
    vault: VaultOptions | None = None,
    failures: list[RenderFailure] | None = None,
    timeout: float = TIMEOUT_S,
) -> dict[str, dict[str, Any]]:
    """``{host: {variable: value}}`` as ``ansible-playbook`` renders the inventory's variables.

    Args:
        inventory: an inventory file or directory.
        names: variables to render by exact name (a host without one is left without it).
        patterns: also every variable whose whole name matches one of these regexes.
        hosts: inventory hosts to read (default: all of them).
        vault: vault secrets from the command line; Ansible's own sources apply as well.
        failures: when given, a variable that cannot be rendered is left out of its host
            and appended here; when None, it is bad input.
        timeout: seconds before the read is given up.

    Returns:
        Every selected host (also one with none of the variables) with its rendered variables.
        The values are in memory only; they hold credentials.

    Raises:
        BadInputError: the inventory cannot be read, a host is not in it, or (``failures``
            None) a variable cannot be rendered; the message names the inventory, never a value.
    """
    where = str(inventory)
    if not inventory.exists():
        raise BadInputError("no such file or directory", where=where)
    arguments: dict[str, Any] = {"names": sorted(set(names)), "patterns": list(patterns)}
    if hosts is not None:
        arguments["hosts"] = list(hosts)
    for pattern in arguments["patterns"]:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadInputError(f"variable pattern {pattern!r}: {exc}") from None
    document = _render(inventory, arguments, vault or VaultOptions(), timeout)
    found: list[RenderFailure] = [
        RenderFailure(host=str(host), variable=str(variable), kind=str(why.get("kind", "")),
                      reason=str(why.get("reason", "")))
        for host, variables in sorted(document.get("failed", {}).items())
        for variable, why in sorted(variables.items())
    ]
    if found and failures is None:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise BadInputError(found[0].one_line() + more, where=where)
    if failures is not None:
        failures.extend(found)
    values = document.get("hosts")
    if not isinstance(values, dict):
        raise BadInputError("Ansible returned no host variables", where=where)
    return {str(host): dict(variables) for host, variables in values.items()}


def _ansible() -> str:
    beside = Path(sys.executable).parent / "ansible"
    return str(beside) if beside.exists() else "ansible"


def _environment(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    ours = collections_path(find_collection_root(), scratch)
    # The inventory may use other collections' plugins (inventory sources, lookups).
    others = env.get("ANSIBLE_COLLECTIONS_PATH") or os.pathsep.join(
        (str(Path.home() / ".ansible" / "collections"), "/usr/share/ansible/collections"))
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": ours + os.pathsep + others,
        # Ad hoc: the minimal stdout callback only, no other callback (they would see only
        # names anyway).
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        # An inventory that does not parse is an error, not an empty inventory.
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
    })
    return env


def _render(inventory: Path, arguments: dict[str, Any], vault: VaultOptions,
            timeout: float) -> dict[str, Any]:
    where = str(inventory)
    read_end, write_end = os.pipe()
    received: list[bytes] = []

    def drain() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            received.append(pipe.read())

    reader = threading.Thread(target=drain, name="vqual-hostvars", daemon=True)
    with tempfile.TemporaryDirectory(prefix="vqual-inventory-") as scratch:
        try:
            env = _environment(Path(scratch))
            argv = [_ansible(), "localhost", "-i", str(inventory.resolve()), "-m", MODULE,
                    "-a", json.dumps({**arguments, "fd": write_end}), *vault.argv()]
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, pass_fds=(write_end,), env=env, text=True,
            )
        except BaseException as exc:
            os.close(read_end)
            if isinstance(exc, OSError):
                raise BadInputError(f"cannot run ansible: {exc.strerror or exc}",
                                    where=where) from None
            raise
        finally:
            os.close(write_end)  # the child holds its own copy; EOF comes when it ends
        reader.start()
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise BadInputError(f"reading the inventory took more than {timeout:.0f} s",
                                where=where) from None
        reader.join(timeout=30)
    lines = b"".join(received).splitlines()
    if len(lines) == 1:
        try:
            document = json.loads(lines[0])
        except ValueError:
            document = None
        if isinstance(document, dict):
            if "error" in document:
                raise BadInputError(str(document["error"]), where=where)
            return document
    raise BadInputError(_ansible_error(out, err, proc.returncode), where=where)


def _ansible_error(out: str, err: str, returncode: int) -> str:
    """Ansible's error, one line, from its stdout and stderr (which hold no value)."""
    lines = [line.strip() for line in (err + "\n" + out).splitlines()]
    errors = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _ERROR_LINE.match(line))]
    text = f"ansible ended with exit code {returncode} and no error"
    if errors:
        last, text = errors[-1]
        # Ansible names the file and line on an "Origin:" line after the message.
        origins = [line[len("Origin:"):].strip() for line in lines[last + 1:last + 8]
                   if line.startswith("Origin: /")]
        if origins:
            text = f"{text} ({origins[0]})"
    if text.startswith("No inventory was parsed"):
        # Ansible's reason is in its warnings: the first plugin that tried names it.
        reasons = [m.group(1) for line in lines if (m := _PARSE_WARNING.match(line))]
        text = reasons[0] if reasons else text
    # Our task is an implementation detail: Ansible's "Task failed: " says nothing here.
    text = re.sub(r"^(?:Task failed|Action failed):\s*", "", text)
    if "Decryption failed" in text:
        return f"the vault password given cannot decrypt the inventory's vault-encrypted data ({text})"
    if "vault secrets" in text:
        return f"the inventory holds vault-encrypted data and no vault password was given: {VAULT_HINT}"
    return f"cannot read the inventory: {' '.join(text.split())[:300]}"
