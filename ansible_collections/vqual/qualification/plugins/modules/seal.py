#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Documentation of the vqual.qualification.seal action plugin (plugins/action/seal.py).

The plugin runs on the controller only; this file carries its documentation so that
ansible-doc shows it, as Ansible does for its own action-only plugins.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: seal
short_description: Seal the run's evidence bundle and return its verdict, seal and path
description:
  - When this task starts, the C(vqual.qualification.evidence) callback records what never
    ran, writes JUnit, the report and the manifest and seals the bundle (C(run.end)); nothing
    is recorded after it. The task returns the bundle, its seal digest, verdict and counts,
    so the play can publish them with M(ansible.builtin.set_stats) for workflow nodes and
    fail the job on a failed qualification.
  - With O(artifacts_dir) (under ansible-runner, AAP and AWX the job's artifacts directory,
    C(AWX_ISOLATED_DATA_DIR)), copies the sealed bundle to
    C(<artifacts_dir>/vqual-evidence/<change_id>/<run_id>), so it comes back to the
    controller with the job's artifacts even when the execution node deletes the job's
    directory.
  - Run once per play, as the play's last vqual task.
version_added: "0.1.0"
author:
  - vqual developers (!UNKNOWN)
options:
  artifacts_dir:
    description: Directory the sealed bundle is copied into; empty or omitted for no copy.
    type: path
attributes:
  check_mode:
    support: full
    description: A check-mode run is sealed as well (its tests are not executed).
  diff_mode:
    support: none
    description: Nothing to diff.
"""

EXAMPLES = r"""
- name: Seal the run
  vqual.qualification.seal:
    artifacts_dir: "{{ lookup('ansible.builtin.env', 'AWX_ISOLATED_DATA_DIR') }}"
  run_once: true
  register: sealed
"""

RETURN = r"""
vqual_bundle:
  description: Path of the sealed bundle where the run wrote it.
  returned: success
  type: str
vqual_seal:
  description: The seal digest (SHA-256 of the C(run.end) line).
  returned: success
  type: str
vqual_verdict:
  description: The run's overall verdict (pass, fail, error, not-executed).
  returned: success
  type: str
vqual_counts:
  description: Check results per verdict.
  returned: success
  type: dict
vqual_artifact:
  description: The copy's path relative to O(artifacts_dir), or null without a copy.
  returned: success
  type: str
"""
