# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Action plugin: observe one target in one round trip, evaluate its tests on the controller."""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase

from ansible_collections.vqual.qualification.plugins.module_utils.vqual_controller import (
    HAS_QUALIFICATION,
    MISSING_QUALIFICATION,
    QUALIFICATION_IMPORT_ERROR,
    plain,
)

if HAS_QUALIFICATION:
    from qualification.execution.evaluation import TARGET_PROBES, evaluate_target, requests_for
    from qualification.execution.probes import run_controller_probe
    from qualification.checks.fingerprint import (
        fill_template_images,
        fill_vm_names,
        target_fingerprint,
    )
    from qualification.baseline import fingerprint_record
    from qualification.timeutil import utc_now_text

_TARGET_MODULES = {"host": "vqual.qualification.host_probe"}

class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("plan", "plan_var", "baseline", "allowed"))

    def _observe_on_target(self, probe, requests, task_vars):
        outcome = self._execute_module(
            module_name=_TARGET_MODULES[probe],
            module_args={"requests": requests},
            task_vars=task_vars,
        )
        if outcome.get("failed") or "observations" not in outcome:
            reason = outcome.get("msg") or "the probe module failed"
            return {r["key"]: {"error": f"{_TARGET_MODULES[probe]} failed: {reason}"} for r in requests}
        return outcome["observations"]

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
        target = task_vars.get("inventory_hostname")
        tests = []
        for planned in plan.get("targets", []):
            if planned.get("name") == target:
                tests = planned.get("tests", [])
        result.update(changed=False, vqual_target=target, vqual_results=[], vqual_actions=[], vqual_cross={})
        if not tests:
            return result
        requests = requests_for(tests)
        started = utc_now_text()
        t0 = time.perf_counter()
        observations = {}
        for probe, probe_requests in requests.by_probe.items():
            if probe in TARGET_PROBES:
                observations.update(self._observe_on_target(probe, probe_requests, task_vars))
            else:
                try:
                    # Inventory values may be templates (the lab's credentials are file lookups).
                    # Registered results (the plan, earlier results) are not site facts and
                    # are large: they are left out rather than templated.
                    skip = {self._task.args.get("plan_var", "vqual_run"), "vqual_host_result"}
                    host_vars = {
                        k: plain(self._templar.template(v))
                        for k, v in task_vars.items()
                        if k.startswith("vqual_") and k not in skip
                    }
                except Exception as exc:  # a failed lookup: error verdicts, not a traceback
                    reason = " ".join(str(exc).split())
                    observations.update(
                        {r["key"]: {"error": f"cannot resolve the target's vqual_ variables: {reason}"} for r in probe_requests}
                    )
                    continue
                if probe == "template":
                    # template_fingerprint: the template's disk image, read here offline.
                    from ansible_collections.vqual.qualification.plugins.module_utils.host_observations import (
                        fingerprint_image,
                    )

                    for request in fill_template_images(probe_requests, host_vars):
                        args = dict(request.get("args") or {})
                        image = args.pop("image", None)
                        observations[request["key"]] = (
                            fingerprint_image(image, args) if image else
                            {"error": "no template image: set vqual_template_image for this target"}
                        )
                    continue
                # vm_fingerprint tests name their VM from the inventory when the spec does not.
                probe_requests = fill_vm_names(probe_requests, probe, host_vars, target)
                observations.update(
                    run_controller_probe(
                        probe,
                        probe_requests,
                        host_vars=host_vars,
                        run_id=str(plan.get("run_id", "")),
                        check_mode=bool(self._play_context.check_mode),
                        data_files=plan.get("data_files") or [],
                    )
                )
        duration_ms = (time.perf_counter() - t0) * 1000.0
        results, actions, cross = evaluate_target(
            tests, observations, requests, started=started, finished=utc_now_text(),
            duration_ms=duration_ms,
        )
        # The target's fingerprint (both parts merged) becomes a `fingerprint` record.
        fingerprint = target_fingerprint(target, tests, observations, requests.test_keys)
        fingerprints = [fingerprint_record(fingerprint)] if fingerprint is not None else []
        baseline = self._task.args.get("baseline")
        if baseline:
            # vqual drift: the fingerprint tests' results become the comparison with the
            # baseline bundle, one failed result per difference.
            from qualification.baseline.drift import drift_results

            results = drift_results(
                str(baseline), target, tests, results, fingerprint,
                allowed=self._task.args.get("allowed") or None,
            )
        result.update(vqual_results=results, vqual_actions=actions, vqual_cross=cross,
                      vqual_fingerprints=fingerprints)
        return result
