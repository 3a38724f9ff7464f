#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Documentation of the vqual.qualification.rolling_patch action plugin
(plugins/action/rolling_patch.py).

The plugin runs on the controller only; this file carries its documentation so that
ansible-doc shows it, as Ansible does for its own action-only plugins.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rolling_patch
short_description: Patch a hypervisor cluster one host at a time, showing each step as it happens
description:
  - Runs the rolling patch of a change file (C(vqual.change/v1)) on the controller, in the
    task's process, with the orchestrator C(vqual patch) runs (gates, lease, journal, signed
    evidence; docs/rolling-patch.md of the project).
  - Shows one line per gate, host and step (drain, maintenance, patch, reboot, requalify,
    return) in the job output as it happens, so a job of an hour is followed live in AAP.
  - Fails with the run's first summary line unless the run sealed with verdict pass
    (C(vqual_exit_code) as C(vqual patch) exits); with O(fail_job_on_fail=false) a sealed run
    of another verdict does not fail the task (errors before the run still do).
  - Not run in check mode (it changes hosts); use C(vqual patch --plan) to see the plan.
version_added: "0.1.0"
author:
  - vqual developers (!UNKNOWN)
options:
  change:
    description: The change file.
    type: path
    required: true
  inventory:
    description: The inventory naming the platform endpoints; the play's first inventory source by default.
    type: path
  bind:
    description: Run only if the live plan's digest equals this one (from C(vqual patch --plan)).
    type: str
  resume:
    description: Continue a crashed or halted run (its run id) under a new run id linked to it.
    type: str
  platform_host:
    description: Inventory host of the platform endpoint, if several manage the cluster.
    type: str
  requalify:
    description: C(platform) the built-in requalification tests; C(qualify) also a vqual qualify run per host.
    type: str
    choices: [platform, qualify]
  evidence_dir:
    description: Root of evidence bundles; C(VQUAL_EVIDENCE_DIR) or C(./evidence) by default.
    type: path
  state_dir:
    description: The vqual state directory; C(VQUAL_STATE_DIR) or the user's data directory by default.
    type: path
  run_id:
    description: Run id (default from the UTC time).
    type: str
  key_file:
    description:
      - The executor's signing key (mode 0600); C(VQUAL_KEY_FILE) (set by the executor key
        credential) or C(<state dir>/keys/executor.pem) by default.
    type: path
  key_passphrase_file:
    description: File (mode 0600) holding the key's passphrase; C(VQUAL_KEY_PASSPHRASE_FILE) by default.
    type: path
  fail_job_on_fail:
    description: Fail the task (the AAP job) when the sealed run's verdict is not pass.
    type: bool
    default: true
  initiator:
    description: The person or pipeline user who started the run; C(VQUAL_INITIATOR) or the login user by default.
    type: str
attributes:
  check_mode:
    support: none
    description: A rolling patch changes hosts; in check mode the task is skipped.
  diff_mode:
    support: none
    description: The evidence bundle records every state before and after.
"""

EXAMPLES = r"""
- name: Rolling patch of the change's cluster
  vqual.qualification.rolling_patch:
    change: changes/CHG0012345.yaml
    bind: "{{ vqual_bind }}"
"""

RETURN = r"""
vqual_patch:
  description: The outcome as C(vqual patch --json) prints it (status, verdict, committed hosts, bundle, seal).
  returned: when the run started
  type: dict
vqual_exit_code:
  description: The exit code C(vqual patch) would give.
  returned: always
  type: int
"""
