# -*- coding: utf-8 -*-
# Copyright: vqual developers
# Apache License 2.0
"""Action plugin: validate a qualification run and compute its plan (no target is touched)."""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.vqual.qualification.plugins.module_utils.vqual_controller import (
    CALLBACK_NAME,
    CALLBACK_STATE_ENV,
    HAS_QUALIFICATION,
    MISSING_QUALIFICATION,
    QUALIFICATION_IMPORT_ERROR,
    is_vault_error,
    plain,
)

if HAS_QUALIFICATION:
    from pathlib import Path

    from qualification.errors import VqualError
    from qualification.execution.collection import find_shipped
    from qualification.execution.inventory import RenderFailure
    from qualification.execution.planning import plan_in_playbook
    from qualification.server.client import HeldRuns
    from qualification.spec.inventory import CONNECTION_VARS
    from qualification.state import resolve_state_dir


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        ("spec", "change_id", "run_id", "tests", "change_pattern", "mode", "allow_empty",
         "state_dir", "master_bundle", "master_subject", "conversion_baseline",
         "decommission_evidence", "decommission_server", "decommission_token_file")
    )

    def _hostvars(self, task_vars):
        hostvars = task_vars.get("hostvars", {})
        found = {}
        for host in plain(task_vars.get("groups", {}).get("all", [])):
            host_vars = hostvars[host]
            picked = {}
            for key in plain(list(host_vars.keys())):
                # Only vqual's own variables and the connection's identity reach the plan.
                if key.startswith("vqual_") or key in CONNECTION_VARS:
                    try:
                        picked[key] = plain(host_vars[key])
                    except AnsibleError as exc:
                        if is_vault_error(exc):
                            reason = (str(exc).splitlines() or [""])[0]
                            failure = RenderFailure(host, key, "vault", reason)
                            raise AnsibleError(failure.one_line()) from None
                        raise AnsibleError(f"{host}: variable {key} cannot be templated: {exc}")
            picked["group_names"] = plain(host_vars.get("group_names", []))
            found[host] = picked
        return found

    def _spec_path(self, spec):
        # Where the user stands first, then beside the playbook (Ansible's rule), then a spec
        # the collection ships (by name, or as specs/<name>.yaml); else the path as the user
        # gave it, so the error names where they stand.
        if os.path.isabs(spec) or os.path.exists(spec):
            return os.path.abspath(spec)
        beside = self._loader.path_dwim(spec)
        if os.path.exists(beside):
            return beside
        shipped = find_shipped(Path(spec), root=Path(__file__).resolve().parents[2])
        return str(shipped.resolve()) if shipped.is_file() else os.path.abspath(spec)

    def _slice_vars(self, task_vars):
        # What names the run's slice of a sliced job: vqual_slice, else AWX's job and
        # workflow job ids (AWX gives a slice no number or count; docs/aap.md).
        names = ("vqual_slice", "awx_job_id", "awx_workflow_job_id")
        return {name: plain(self._templar.template(task_vars[name]))
                for name in names if name in task_vars}

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        if not HAS_QUALIFICATION:
            result.update(failed=True, msg=MISSING_QUALIFICATION.format(error=QUALIFICATION_IMPORT_ERROR))
            return result
        state = os.environ.get(CALLBACK_STATE_ENV, "")
        if state != "ready":
            reason = state[len("error: "):] if state.startswith("error: ") else (
                f"the evidence callback {CALLBACK_NAME} is not enabled; enable it "
                f"(ANSIBLE_CALLBACKS_ENABLED={CALLBACK_NAME}) so the run records evidence"
            )
            result.update(failed=True, msg=reason, vqual_exit_code=2)
            return result
        args = self._task.args
        groups = plain(task_vars.get("groups", {}))
        try:
            server = None
            if args.get("decommission_server"):
                # The server that must hold the targets' bundles (vqual decommission --server);
                # the token from the file named, else the environment, never from a task arg.
                token_file = args.get("decommission_token_file")
                server = HeldRuns(str(args["decommission_server"]),
                                  Path(token_file) if token_file else None)
            # The run context vqual handed over (its environment names the file), else the
            # inputs are loaded here, once.
            plan = plan_in_playbook(
                Path(self._spec_path(str(args.get("spec", "")))),
                self._hostvars(task_vars),
                groups,
                environ=os.environ,
                state_dir=resolve_state_dir(args.get("state_dir")),
                change_id=args.get("change_id"),
                run_id=args.get("run_id"),
                hosts=plain(task_vars.get("ansible_play_hosts_all", [])) or None,
                test_ids=args.get("tests"),
                change_pattern=args.get("change_pattern"),
                mode=args.get("mode", "qualify"),
                allow_empty=bool(args.get("allow_empty", False)),
                master_bundle=Path(args["master_bundle"]) if args.get("master_bundle") else None,
                master_subject=args.get("master_subject") or None,
                play_vars=self._slice_vars(task_vars),
                conversion_baseline=(Path(args["conversion_baseline"])
                                     if args.get("conversion_baseline") else None),
                decommission_evidence=(Path(args["decommission_evidence"])
                                       if args.get("decommission_evidence") else None),
                decommission_server=server,
            )
        except VqualError as exc:
            result.update(failed=True, msg=exc.one_line(), vqual_exit_code=exc.exit_code)
            return result
        result.update(changed=False, vqual_plan=plan.to_packed(), vqual_planned=len(plan.planned()))
        return result
