# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Callback plugin: record every qualification result and action as signed evidence."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: evidence
type: notification
short_description: Records vqual qualification results as a signed, hash-chained evidence bundle
description:
  - Opens an evidence bundle C(evidence/<change_id>/<run_id>/) when M(vqual.qualification.plan)
    returns a plan, appends a signed C(check.result) record for every result handed back by
    M(vqual.qualification.qualify) and M(vqual.qualification.compare), C(action) records for OQ
    steps, C(fingerprint) records for targets with fingerprint tests, and C(error) results for
    targets that are unreachable or fail.
  - Makes what it wrote durable at every task boundary (group commit) and at the end writes
    JUnit, the report, the manifest and the sealing C(run.end) record; it seals earlier, when
    a M(vqual.qualification.seal) task starts, so that task can return the seal to the play.
  - Keeps no logic of its own; everything is done by the C(qualification) package.
  - Results of tasks with C(no_log) are never recorded.
version_added: "0.1.0"
author:
  - vqual developers (!UNKNOWN)
requirements:
  - the vqual Python package (C(qualification)) on the controller
  - enabled in configuration (C(callbacks_enabled))
options:
  evidence_dir:
    description: Root directory of evidence bundles.
    type: path
    default: ./evidence
    env:
      - name: VQUAL_EVIDENCE_DIR
    ini:
      - section: callback_vqual_evidence
        key: evidence_dir
  key_file:
    description: Ed25519 private key (PEM, mode 0600) that signs the records (the executor's key).
    type: path
    required: true
    env:
      - name: VQUAL_KEY_FILE
    ini:
      - section: callback_vqual_evidence
        key: key_file
  key_passphrase_file:
    description: File holding the key's passphrase (mode 0600); not needed for service keys.
    type: path
    env:
      - name: VQUAL_KEY_PASSPHRASE_FILE
  initiator:
    description: The person or pipeline user who started the run; defaults to the login user.
    type: str
    env:
      - name: VQUAL_INITIATOR
  push_on_seal:
    description:
      - URL of an evidence server (C(vqual serve)) to push the run to when it is sealed; the
        service-account token from C(VQUAL_SERVER_TOKEN) or C(VQUAL_SERVER_TOKEN_FILE).
      - A push that fails is shown in one line; the run stays sealed locally, for
        C(vqual push) later.
    type: str
    env:
      - name: VQUAL_PUSH_ON_SEAL
    ini:
      - section: callback_vqual_evidence
        key: push_on_seal
"""

import getpass
import json
import os

from ansible.plugins.callback import CallbackBase

from ansible_collections.vqual.qualification.plugins.module_utils.vqual_controller import (
    CALLBACK_STATE_ENV,
    HAS_QUALIFICATION,
    SEAL_ACTIONS,
    SEALED_ENV,
    MISSING_QUALIFICATION,
    QUALIFICATION_IMPORT_ERROR,
)

if HAS_QUALIFICATION:
    from pathlib import Path

    from qualification.errors import VqualError
    from qualification.execution.observing import unpack_evidence
    from qualification.execution.planning import RunPlan
    from qualification.execution.recorder import RunRecorder, open_signer
    from qualification.server.client import push_sealed


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "vqual.qualification.evidence"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self.recorder = None

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        if not HAS_QUALIFICATION:
            os.environ[CALLBACK_STATE_ENV] = "error: " + MISSING_QUALIFICATION.format(
                error=QUALIFICATION_IMPORT_ERROR
            )
            return
        try:
            signer = open_signer(
                Path(self.get_option("key_file")),
                self.get_option("key_passphrase_file"),
            )
            self.recorder = RunRecorder(
                Path(self.get_option("evidence_dir")),
                signer,
                self.get_option("initiator") or getpass.getuser(),
            )
        except VqualError as exc:
            os.environ[CALLBACK_STATE_ENV] = "error: evidence callback: " + exc.one_line()
            return
        os.environ[CALLBACK_STATE_ENV] = "ready"

    # Task boundaries: group commit of everything written so far.
    def v2_playbook_on_task_start(self, task, is_conditional):
        if self.recorder:
            self.recorder.task_boundary()
            if task.action in SEAL_ACTIONS:
                self._seal()

    def _seal(self):
        if self.recorder.seal is not None:
            return  # sealed and announced already
        seal = self.recorder.finish()
        if seal:
            # Workers are forked per task, after this hook: the seal task's worker inherits it.
            os.environ[SEALED_ENV] = json.dumps({
                "bundle": str(self.recorder.path), "seal": seal,
                "verdict": self.recorder.verdict, "counts": self.recorder.counts,
            })
            self._display.display(f"vqual: sealed {self.recorder.path} (seal {seal})")
            self._push()

    def _push(self):
        url = self.get_option("push_on_seal")
        if url:
            pushed = push_sealed(self.recorder.path, url)
            show = self._display.display if pushed.ok else self._display.warning
            show(f"vqual: {pushed.line}")

    def v2_playbook_on_handler_task_start(self, task):
        if self.recorder:
            self.recorder.task_boundary()

    def v2_runner_on_ok(self, result):
        if not self.recorder:
            return
        data = result._result
        if data.get("_ansible_no_log"):
            return
        if "vqual_plan" in data:
            path = self.recorder.start(RunPlan.from_dict(data["vqual_plan"]))
            self._display.display(f"vqual: evidence bundle {path}")
        elif "vqual_results" in data or "vqual_evidence" in data:
            results, actions, fingerprints = unpack_evidence(data)
            self.recorder.record(results, actions, fingerprints=fingerprints)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if self.recorder:
            msg = "the task failed" if result._result.get("_ansible_no_log") else result._result.get("msg", "the task failed")
            self.recorder.target_failed(result._host.get_name(), f"{result._task.get_name()}: {msg}")

    def v2_runner_on_unreachable(self, result):
        if self.recorder:
            msg = result._result.get("msg", "unreachable")
            self.recorder.target_failed(result._host.get_name(), f"host unreachable: {msg}")

    def v2_playbook_on_stats(self, stats):
        if self.recorder:
            self._seal()
