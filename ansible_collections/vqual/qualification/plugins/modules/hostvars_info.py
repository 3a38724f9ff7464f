#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Documentation of the vqual.qualification.hostvars_info action plugin
(plugins/action/hostvars_info.py).

The plugin runs on the controller only; this file carries its documentation so that
ansible-doc shows it, as Ansible does for its own action-only plugins.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hostvars_info
short_description: Render inventory hosts' variables as a play sees them, for vqual's inventory reader
description:
  - Renders the selected variables of the selected inventory hosts exactly as a play would
    see them in C(hostvars); templates, lookups and vault-encrypted values are resolved with
    the vault secrets Ansible was started with.
  - Writes the rendered values as one line of JSON to the file descriptor O(fd), which the
    process that started Ansible passed down (a pipe), and nowhere else. The task result
    holds only which variables were rendered or failed, never a value, so no callback, log
    or artifact of the run sees one.
  - Used by vqual's inventory reader (C(qualification.execution.inventory)) with an ad hoc
    command on the implicit C(localhost); runs on the controller only, touches no target and
    changes nothing.
version_added: "0.1.0"
author:
  - vqual developers (!UNKNOWN)
options:
  fd:
    description:
      - An open, writable file descriptor inherited from the process that started Ansible
        (a pipe it reads); the JSON document is written there.
      - "The document: C({\"hosts\": {HOST: {VAR: VALUE}}, \"failed\": {HOST: {VAR:
        {\"kind\": \"vault\" or \"template\", \"reason\": ONE_LINE}}}}). A reason never
        holds a rendered value of the host. When the arguments are bad (a host not in the
        inventory, a pattern that does not compile), C({\"error\": REASON}) instead."
    type: int
    required: true
  names:
    description: Variables to render, by exact name; a host without one of them is left without it.
    type: list
    elements: str
    default: []
  patterns:
    description: Also render every variable whose whole name matches one of these Python
      regular expressions.
    type: list
    elements: str
    default: []
  hosts:
    description: Inventory hosts whose variables are rendered; all hosts of the inventory
      (C(groups['all'])) when omitted.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    description: Rendering never changes anything.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
notes:
  - Run it once (on C(localhost), with C(gather_facts=false)); every requested host is
    rendered in that one task, in its own variable context.
  - A host named in O(hosts) that is not in the inventory fails the task.
"""

EXAMPLES = r"""
# The way vqual's inventory reader runs it (FD is a pipe the caller reads):
#   ansible localhost -i inventories/local -m vqual.qualification.hostvars_info \
#     -a '{"fd": 5, "patterns": ["vqual_.*"]}' --vault-password-file ~/.vault_pass
- name: Render the vSphere endpoints' variables into an inherited pipe
  vqual.qualification.hostvars_info:
    fd: 5
    names: [vqual_vsphere_host, vqual_vsphere_username, vqual_vsphere_password]
    hosts: [vc-default]
  run_once: true
"""

RETURN = r"""
rendered:
  description: Per host, the names of the variables rendered (their values went to O(fd) only).
  returned: always
  type: dict
  sample: {"vc-default": ["vqual_vsphere_host", "vqual_vsphere_password"]}
failed_variables:
  description: Per host, the variables that could not be rendered and why (no values).
  returned: always
  type: dict
  sample: {"vc-default": {"vqual_vsphere_password": {"kind": "vault", "reason": "Attempting to decrypt but no vault secrets found."}}}
"""
