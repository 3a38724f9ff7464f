#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Documentation of the vqual.qualification.plan action plugin (plugins/action/plan.py).

The plugin runs on the controller only; this file carries its documentation so that
ansible-doc shows it, as Ansible does for its own action-only plugins.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: plan
short_description: Plan a vqual qualification run and open its evidence bundle
description:
  - Loads and validates the spec, the change id and the inventory's vqual variables,
    derives each target's risk from the applications it carries, and selects the tests to run.
  - Runs on the controller only and changes nothing on any target.
  - Fails at once, before anything executes, when the evidence callback
    C(vqual.qualification.evidence) is not enabled or cannot sign, or when any input is bad.
  - Under C(vqual qualify) the inputs vqual loaded and validated before Ansible started (site
    configuration, spec, trust store, approval, deviations) are handed over in a file of the
    runner's private data directory and not loaded again; run with C(ansible-playbook), this
    task loads them, once.
  - The callback opens the evidence bundle from this task's result (C(run.start)).
  - Run it once per play (C(run_once=true)) and register its result for M(vqual.qualification.qualify).
version_added: "0.1.0"
author:
  - vqual developers (!UNKNOWN)
options:
  spec:
    description: Path of the spec (protocol) file, C(apiVersion vqual/v1).
    type: path
    required: true
  change_id:
    description: The change this run belongs to; must match the configured pattern.
    type: str
    required: true
  run_id:
    description: Run id; a new one is made from the UTC time when omitted.
    type: str
  tests:
    description: Run only these test ids.
    type: list
    elements: str
  change_pattern:
    description: Regular expression a change id must match (default C(^CHG[0-9]{7}$)).
    type: str
  allow_empty:
    description: Record a run even when no test applies to the selected targets (otherwise
      that is bad input); used to measure start-up.
    type: bool
    default: false
  state_dir:
    description:
      - vqual's state directory (trust store, approvals, deviations); default
        C($VQUAL_STATE_DIR), else C(~/.local/share/vqual).
      - With a trust store there, a malformed C(deviations.yaml) of the change, or a spec
        without a valid approval where C(config.yaml) requires one, refuses the run here.
    type: path
  mode:
    description: What the run is, recorded in C(run.start).
    type: str
    default: qualify
  conversion_baseline:
    description:
      - With O(mode=conversion), the source baseline bundle the targets are compared with;
        it must verify, and C(run.start) cites its seal (C(vqual convert qualify)).
    type: path
  decommission_evidence:
    description:
      - With O(mode=decommission), the evidence directory whose bundles of each target must
        verify before it is removed (C(vqual decommission)).
    type: path
attributes:
  check_mode:
    support: full
    description: Planning never changes anything.
  diff_mode:
    support: none
    description: Planning changes nothing on the hosts, so there is nothing to diff.
notes:
  - Site facts (applications and their risk, expected values) come from the inventory
    variables C(vqual_applications), C(vqual_expected), C(vqual_target_kinds), C(vqual_cluster).
"""

EXAMPLES = r"""
- name: Plan the run
  vqual.qualification.plan:
    spec: specs/linux-virt-host.yaml
    change_id: "{{ vqual_change_id }}"
  run_once: true
  register: vqual_run
"""

RETURN = r"""
vqual_plan:
  description:
    - The plan, as recorded in C(run.start) (targets, risks, planned tests, digests of the
      spec, its data files, the inventory and the trust store; the approval and configuration
      in force) and the change's judged deviations.
    - Each target's tests, the planned tests, the inventory snapshot and the traceability are
      JSON texts in it (C(packed) is true), so Ansible handles a few values instead of
      thousands; the collection's actions and callback read it as it is.
  returned: success
  type: dict
vqual_planned:
  description: How many tests the plan runs.
  returned: success
  type: int
vqual_exit_code:
  description: 2 when the inputs were bad and nothing ran.
  returned: failure
  type: int
"""
