# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Action plugin: render inventory hosts' variables and hand them to the caller over a pipe.

Rendering is Ansible's own: each value is read through ``hostvars[host][name]``, which
templates it in that host's variable context (lookups, filters, references to other variables,
vault-encrypted values decrypted with the run's vault secrets), as a play sees it. The values
go to an inherited file descriptor only (documented in plugins/modules/hostvars_info.py).
"""

from __future__ import annotations

import json
import os
import re

from ansible.plugins.action import ActionBase
from ansible_collections.vqual.qualification.plugins.module_utils.vqual_controller import (
    is_vault_error,
    plain,
)

_REDACTED = "<redacted>"
#: Shorter values are not taken out of a reason (they would garble its words).
_SHORTEST = 5
#: Ansible's magic variables: names and paths that messages quote, never secrets.
_MAGIC = frozenset((
    "ansible_config_file", "ansible_playbook_python", "group_names", "groups",
    "inventory_dir", "inventory_file", "inventory_hostname", "inventory_hostname_short",
    "omit", "playbook_dir",
))


def _kind(exc):
    """``vault`` when a vault-encrypted value could not be decrypted, else ``template``."""
    return "vault" if is_vault_error(exc) else "template"


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _reason(exc, rendered):
    """The first line of Ansible's message, without any of the values ``rendered`` holds."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    line = " ".join(lines[0].split())
    # Longest first, so a value containing a shorter one is removed whole.
    for secret in sorted(set(_strings(rendered)), key=len, reverse=True):
        if len(secret) >= _SHORTEST:
            line = line.replace(secret, _REDACTED)
    return line


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("fd", "names", "patterns", "hosts"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        _spec, args = self.validate_argument_spec(argument_spec={
            "fd": {"type": "int", "required": True},
            "names": {"type": "list", "elements": "str", "default": []},
            "patterns": {"type": "list", "elements": "str", "default": []},
            "hosts": {"type": "list", "elements": "str"},
        })
        try:
            if args["fd"] < 3:  # a worker's stdin, stdout and stderr are /dev/null
                raise OSError("not a descriptor passed down by the caller")
            os.fstat(args["fd"])
        except OSError as exc:
            result.update(failed=True, msg=f"hostvars_info failed: fd {args['fd']}: {exc}")
            return result
        problem = None
        try:
            patterns = [re.compile(p) for p in args["patterns"]]
        except re.error as exc:
            problem = f"bad variable pattern: {exc}"
        names = set(args["names"])
        inventory_hosts = plain(task_vars.get("groups", {}).get("all", []))
        hosts = args["hosts"] if args["hosts"] is not None else inventory_hosts
        unknown = sorted(set(hosts) - set(inventory_hosts))
        if unknown:
            problem = f"not in the inventory: {', '.join(unknown)}"
        if problem is not None:
            # The caller reads the reason from the pipe; the task fails with it as well.
            return self._finish(result, args["fd"], {"error": problem},
                                failed=True, msg=f"hostvars_info failed: {problem}")

        hostvars = task_vars.get("hostvars", {})
        values, failed = {}, {}
        for host in hosts:
            host_vars = hostvars[host]
            # The names come from the host's variables without templating any of them.
            wanted = sorted(
                key for key in plain(list(host_vars.keys()))
                if key in names or any(p.fullmatch(key) for p in patterns)
            )
            rendered, errors = {}, {}
            for key in wanted:
                try:
                    rendered[key] = plain(host_vars[key])
                except Exception as exc:  # noqa: BLE001 - a lookup or filter may raise anything
                    errors[key] = exc
            values[host] = rendered
            if errors:
                known = self._every_value(host_vars, rendered)
                failed[host] = {k: {"kind": _kind(e), "reason": _reason(e, known)}
                                for k, e in errors.items()}
        summary = {"rendered": {host: sorted(found) for host, found in values.items()},
                   "failed_variables": failed}
        if failed:
            count = sum(len(v) for v in failed.values())
            summary.update(failed=True, msg=f"hostvars_info: {count} variable(s) could not be "
                           f"rendered on {', '.join(sorted(failed))}")
        return self._finish(result, args["fd"], {"hosts": values, "failed": failed}, **summary)

    @staticmethod
    def _every_value(host_vars, rendered):
        """Every value of the host's variables that renders (error path only): a reason may
        quote any of them (a lookup naming its argument), so each is taken out of it."""
        known = [rendered]
        for key in plain(list(host_vars.keys())):
            if key in rendered or key in _MAGIC:
                continue
            try:
                known.append(plain(host_vars[key]))
            except Exception:  # noqa: BLE001, S112 - only values that render can be quoted
                continue
        return known

    def _finish(self, result, fd, document, **summary):
        """Write ``document`` to ``fd``; the task result gets ``summary`` (never a value)."""
        try:
            _write_all(fd, json.dumps(document, sort_keys=True).encode("utf-8") + b"\n")
        except OSError as exc:
            result.update(failed=True,
                          msg=f"hostvars_info failed: writing to fd {fd}: {exc.strerror or exc}")
            return result
        result.update(changed=False, **summary)
        return result
