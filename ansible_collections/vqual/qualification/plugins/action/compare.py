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
    from qualification.execution.evaluation import evaluate_cross_host

class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("plan", "plan_var", "results_var"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        if not HAS_QUALIFICATION:
            result.update(failed=True, msg=MISSING_QUALIFICATION.format(error=QUALIFICATION_IMPORT_ERROR))
            return result
        plan = self._task.args.get("plan")
        if not plan:
            # The plan registered by the plan task, read without templating it into this
            # task's arguments (a large plan costs seconds to template).
            plan = (task_vars.get(self._task.args.get("plan_var", "vqual_run")) or {}).get("vqual_plan") or {}
        var = self._task.args.get("results_var", "vqual_host_result")
        hostvars = task_vars.get("hostvars", {})
        tests_by_target = {t["name"]: t.get("tests", []) for t in plan.get("targets", [])}
        cross = {}
        for target in tests_by_target:
            registered = hostvars[target].get(var) if target in hostvars else None
            if registered:
                cross[target] = plain(registered.get("vqual_cross") or {})
        # A target without a registered result left the play (unreachable or failed): the
        # callback has already recorded errors for all of its tests.
        reached = {name: tests for name, tests in tests_by_target.items() if name in cross}
        result.update(changed=False, vqual_results=evaluate_cross_host(reached, cross))
        return result
