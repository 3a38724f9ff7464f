# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Action plugin: evaluate tests that compare hosts (cluster homogeneity)."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.vqual.qualification.plugins.module_utils.vqual_controller import (
    HAS_QUALIFICATION,
    MISSING_QUALIFICATION,
    QUALIFICATION_IMPORT_ERROR,
    plain,
)

if HAS_QUALIFICATION:
    from qualification.errors import VqualError
    from qualification.execution.observing import compare_targets
    from qualification.execution.planning import RunPlan


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("plan", "plan_var", "results_var"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        if not HAS_QUALIFICATION:
            result.update(failed=True, msg=MISSING_QUALIFICATION.format(error=QUALIFICATION_IMPORT_ERROR))
            return result
        args = self._task.args
        # The plan registered by the plan task, read without templating it into this
        # task's arguments (a large plan costs seconds to template).
        data = args.get("plan") or (task_vars.get(args.get("plan_var", "vqual_run")) or {}).get("vqual_plan") or {}
        var = args.get("results_var", "vqual_host_result")
        hostvars = task_vars.get("hostvars", {})

        def cross_of(target):
            registered = hostvars[target].get(var) if target in hostvars else None
            return plain(registered.get("vqual_cross") or {}) if registered else None

        try:
            plan = RunPlan.from_dict(data)
        except VqualError as exc:
            result.update(failed=True, msg=exc.one_line())
            return result
        result.update(changed=False, vqual_results=compare_targets(plan, cross_of))
        return result
