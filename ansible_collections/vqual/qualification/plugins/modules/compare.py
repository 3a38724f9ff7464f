#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Documentation of the vqual.qualification.compare action plugin (plugins/action/compare.py).

The plugin runs on the controller only; this file carries its documentation so that
ansible-doc shows it, as Ansible does for its own action-only plugins.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compare
short_description: Evaluate vqual tests whose expectation compares hosts
description:
  - For tests with C(expect.op same_across_hosts), compares the observation of every host
    that ran the test and fails each host whose value differs from the majority, naming the
    hosts and both values (cluster homogeneity, URS-CL-01).
  - Run once per play, after M(vqual.qualification.qualify), with its results registered on
    every host.
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
  results_var:
    description: Name of the variable each host registered the qualify task's result in.
    type: str
    default: vqual_host_result
attributes:
  check_mode:
    support: full
    description: Comparing only reads the hosts' results, so check mode compares as well.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
"""

EXAMPLES = r"""
- name: Compare hosts
  vqual.qualification.compare:
    plan_var: vqual_run
  run_once: true
"""

RETURN = r"""
vqual_results:
  description: One C(check.result) payload per host and cross-host test.
  returned: always
  type: list
  elements: dict
"""
