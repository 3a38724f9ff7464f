# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Action plugin: run the rolling patch in-process, one job-output line per host and step.

An adapter: it hands the task's arguments to ``qualification.rollout.launch.run_patch``, the
entry ``vqual patch`` uses as well, and shows each progress line with Ansible's display as it
happens (a worker's display goes to the controller's output at once; under ansible-runner,
AAP and AWX it becomes a job event shown live).
"""

from __future__ import annotations

import os

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.vqual.qualification.plugins.module_utils.vqual_controller import (
    HAS_QUALIFICATION,
    MISSING_QUALIFICATION,
    QUALIFICATION_IMPORT_ERROR,
)

if HAS_QUALIFICATION:
    from pathlib import Path

    from qualification.errors import KeyFileError, VqualError
    from qualification.execution.recorder import read_passphrase_file
    from qualification.rollout.launch import PatchRequest, run_patch
    from qualification.state import resolve_state_dir

display = Display()


def _path(value):
    return Path(value) if value else None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("change", "inventory", "bind", "resume", "platform_host", "requalify",
                             "evidence_dir", "state_dir", "run_id", "key_file",
                             "key_passphrase_file", "initiator", "fail_job_on_fail"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        if not HAS_QUALIFICATION:
            result.update(failed=True, msg=MISSING_QUALIFICATION.format(error=QUALIFICATION_IMPORT_ERROR))
            return result
        if self._play_context.check_mode:
            result.update(skipped=True, msg="a rolling patch changes hosts: not run in check mode")
            return result
        if task_vars.get("vqual_slice"):
            # One orchestrator plans and holds the whole cluster; a slice would see a part.
            result.update(failed=True, vqual_exit_code=2,
                          msg="a rolling patch runs as one job: it takes no vqual_slice")
            return result
        args = self._task.args
        sources = task_vars.get("ansible_inventory_sources") or [None]
        passphrase_file = args.get("key_passphrase_file") or os.environ.get("VQUAL_KEY_PASSPHRASE_FILE")

        def passphrase():
            if not passphrase_file:
                raise KeyFileError("the executor key is passphrase-protected: set key_passphrase_file "
                                   "or VQUAL_KEY_PASSPHRASE_FILE (an executor key credential)")
            return read_passphrase_file(passphrase_file) or b""

        def progress(line):
            display.display(f"vqual: {line}")

        try:
            request = PatchRequest(
                inventory=Path(args.get("inventory") or sources[0]),
                change_file=Path(args["change"]),
                state_dir=resolve_state_dir(args.get("state_dir")),
                evidence_dir=Path(args.get("evidence_dir") or os.environ.get("VQUAL_EVIDENCE_DIR") or "evidence"),
                bind=args.get("bind"), resume_run=args.get("resume"),
                platform_host=args.get("platform_host"), requalify_mode=args.get("requalify"),
                key_file=_path(args.get("key_file") or os.environ.get("VQUAL_KEY_FILE")),
                passphrase_reader=passphrase, run_id=args.get("run_id"),
                initiator=args.get("initiator"),
            )
            outcome = run_patch(request, progress)
        except VqualError as exc:
            result.update(failed=True, msg=exc.one_line(), vqual_exit_code=exc.exit_code)
            return result
        data = outcome.to_json()
        result.update(changed=bool(outcome.committed), vqual_patch=data,
                      vqual_exit_code=outcome.exit_code)
        if outcome.exit_code != 0 and boolean(args.get("fail_job_on_fail", True), strict=False):
            result.update(failed=True, msg=outcome.to_text().splitlines()[0])
        return result
