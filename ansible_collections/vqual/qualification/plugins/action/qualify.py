# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Action plugin: observe one target in one round trip, evaluate its tests on the controller.

An adapter: it reads the plan and the target's variables and hands the work, with Ansible's
means of reaching the target, to ``qualification.execution.observing``.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.vqual.qualification.plugins.module_utils.host_observations import (
    fingerprint_image,
)
from ansible_collections.vqual.qualification.plugins.module_utils.vqual_controller import (
    HAS_QUALIFICATION,
    MISSING_QUALIFICATION,
    QUALIFICATION_IMPORT_ERROR,
    plain,
)

if HAS_QUALIFICATION:
    from qualification.errors import VqualError
    from qualification.execution.observing import qualify_target
    from qualification.execution.planning import RunPlan
    from qualification.execution.testinfra import CONNECTION_VARS, PASSWORD_VARS


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("plan", "plan_var", "baseline", "allowed"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        if not HAS_QUALIFICATION:
            result.update(failed=True, msg=MISSING_QUALIFICATION.format(error=QUALIFICATION_IMPORT_ERROR))
            return result
        args = self._task.args
        plan_var = args.get("plan_var", "vqual_run")
        # The plan registered by the plan task, read without templating it into this
        # task's arguments (a large plan costs seconds to template).
        data = args.get("plan") or (task_vars.get(plan_var) or {}).get("vqual_plan") or {}
        target = task_vars.get("inventory_hostname")

        def run_module(name, module_args):
            return self._execute_module(module_name=name, module_args=module_args, task_vars=task_vars)

        def target_vars():
            # Inventory values may be templates (the lab's credentials are file lookups).
            # Registered results (the plan, earlier results) are not site facts and are
            # large: they are left out rather than templated.
            skip = {plan_var, "vqual_host_result"}
            return {
                k: plain(self._templar.template(v))
                for k, v in task_vars.items()
                if k.startswith("vqual_") and k not in skip
            }

        def connection_vars():
            # For testinfra tests: only the settings that reach the target, never a password.
            return {
                k: plain(self._templar.template(task_vars[k]))
                for k in CONNECTION_VARS
                if k in task_vars
            } | {k: True for k in PASSWORD_VARS if task_vars.get(k)}

        try:
            plan = RunPlan.from_dict(data, targets=[target])
        except VqualError as exc:
            result.update(failed=True, msg=exc.one_line())
            return result
        outcome = qualify_target(
            plan,
            target,
            run_module=run_module,
            target_vars=target_vars,
            fingerprint_image=fingerprint_image,
            check_mode=bool(self._play_context.check_mode),
            baseline=args.get("baseline") or None,
            allowed=args.get("allowed") or None,
            connection_vars=connection_vars,
        )
        result.update(changed=False, **outcome.to_dict())
        return result
