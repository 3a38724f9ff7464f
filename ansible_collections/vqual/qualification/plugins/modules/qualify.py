#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Documentation of the vqual.qualification.qualify action plugin (plugins/action/qualify.py).

The plugin runs on the controller only; this file carries its documentation so that
ansible-doc shows it, as Ansible does for its own action-only plugins.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qualify
short_description: Run a target's planned IQ/OQ tests and evaluate them
description:
  - Collects every observation the target's planned tests need, deduplicated, and makes them
    in one round trip per probe, with M(vqual.qualification.host_probe) on the target for host
    observations, and in-process on the controller for platform observations (libvirt,
    vSphere, Hyper-V), as the platform modules do when delegated to localhost.
  - Evaluates every test on the controller with vqual's check library and returns the
    results; the C(vqual.qualification.evidence) callback records them.
  - A test failing is a result, not a task failure. An unreachable target is reported by
    Ansible as unreachable; the callback records C(error) for its tests.
version_added: "0.1.0"
author:
  - vqual developers (!UNKNOWN)
options:
  plan:
    description:
      - The C(vqual_plan) returned by M(vqual.qualification.plan).
      - When omitted, it is read from the variable named by O(plan_var) without templating.
    type: dict
  plan_var:
    description: The variable the plan task's result was registered in.
    type: str
    default: vqual_run
  baseline:
    description:
      - A drift run (C(vqual drift), C(playbooks/drift.yml)) sets this to the baseline bundle.
      - The target's fingerprint tests then report the comparison with the baseline's
        fingerprint, one failed result per difference, and other tests are compared with the
        baseline's result of the same test and target (docs/master-vm.md).
    type: path
  allowed:
    description:
      - "Differences allowed in a drift run: C(identity) (identity fields) and C(sizing)
        (C(vcpus), C(memory_mib) each with C(min), C(max)); default every identity field,
        no sizing change."
    type: dict
attributes:
  check_mode:
    support: full
    description: IQ observations are read-only; OQ steps report C(not-executed) in check mode.
  diff_mode:
    support: none
    description: Qualification records results; it changes no configuration to diff.
"""

EXAMPLES = r"""
- name: Qualify the host
  vqual.qualification.qualify:
    plan_var: vqual_run
  register: vqual_host_result
"""

RETURN = r"""
vqual_evidence:
  description:
    - What the evidence callback records, as one JSON text (one value for Ansible to pass on,
      not thousands), with the keys C(results), C(actions) and C(fingerprints).
    - C(results) holds one C(check.result) payload per test (docs/formats.md).
    - C(actions) holds the OQ steps performed, with state before and after.
    - C(fingerprints) holds the target's fingerprint (C(vqual.fingerprint/v1) plus its
      C(digest)) when it has fingerprint tests, recorded as a C(fingerprint) record.
  returned: always
  type: str
vqual_counts:
  description: How many of the target's results have each verdict.
  returned: always
  type: dict
vqual_cross:
  description: Observations of tests that compare hosts, for M(vqual.qualification.compare).
  returned: always
  type: dict
"""
