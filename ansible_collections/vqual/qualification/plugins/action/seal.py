# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Action plugin: return the run the evidence callback sealed when this task started.

The callback (controller process) seals the bundle at the start of this task and leaves the
bundle, seal, verdict and counts in the environment this task's worker inherits; the plugin
returns them and, under ansible-runner, copies the bundle into the job's artifacts so it comes
back to the controller (``qualification.execution.artifacts``).
"""

from __future__ import annotations

import json
import os

from ansible.plugins.action import ActionBase

from ansible_collections.vqual.qualification.plugins.module_utils.vqual_controller import (
    CALLBACK_NAME,
    HAS_QUALIFICATION,
    MISSING_QUALIFICATION,
    QUALIFICATION_IMPORT_ERROR,
    SEALED_ENV,
)

if HAS_QUALIFICATION:
    from pathlib import Path

    from qualification.errors import VqualError
    from qualification.execution.artifacts import copy_to_artifacts


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("artifacts_dir",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if not HAS_QUALIFICATION:
            result.update(failed=True, msg=MISSING_QUALIFICATION.format(error=QUALIFICATION_IMPORT_ERROR))
            return result
        sealed = os.environ.get(SEALED_ENV)
        if not sealed:
            result.update(failed=True, msg=f"no sealed run: enable the {CALLBACK_NAME} callback "
                                           "and plan the run before this task")
            return result
        run = json.loads(sealed)
        result.update(changed=False, vqual_bundle=run["bundle"], vqual_seal=run["seal"],
                      vqual_verdict=run["verdict"], vqual_counts=run["counts"], vqual_artifact=None)
        artifacts_dir = self._task.args.get("artifacts_dir")
        if artifacts_dir:
            try:
                relative = copy_to_artifacts(Path(run["bundle"]), Path(artifacts_dir))
            except VqualError as exc:
                result.update(failed=True, msg=f"copy to artifacts failed: {exc.one_line()}")
                return result
            result["vqual_artifact"] = str(relative)
        return result
