"""Observe a target for its planned tests, one round trip per probe, and evaluate them.

What the ``vqual.qualification.qualify`` action does for each target and
``vqual.qualification.compare`` once every target has answered. The plugins only read their
arguments and variables and hand Ansible's means of reaching the target in as callables:

- ``run_module(name, args)``: run a module on the target and return its result (the ``host``
  probe's observations come from :data:`TARGET_MODULES` ``["host"]``);
- ``target_vars()``: the target's ``vqual_*`` variables, rendered (templates, lookups); only
  called when a controller-side probe needs them;
- ``fingerprint_image(image, args)``: the fingerprint of a template's disk image, read
  offline on the controller (the collection's ``host_observations.fingerprint_image``);
- ``connection_vars()``: the target's connection settings, rendered, for ``testinfra``
  tests (:mod:`qualification.execution.testinfra` runs them through testinfra's backends).

Platform probes (libvirt, vSphere, Hyper-V) run in this process through
:func:`~qualification.execution.probes.run_controller_probe`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qualification.baseline.conversion import conversion_results
from qualification.baseline.drift import drift_results
from qualification.checks.app_data import APP_DATA_VAR, data_paths, split_data, with_app_data
from qualification.checks.decommission import with_storage
from qualification.checks.fingerprint import (
    fill_template_images,
    fill_vm_names,
    target_fingerprint,
)
from qualification.checks.fingerprint_model import fingerprint_record
from qualification.checks.placement import answer_placement
from qualification.checks.testinfra import PROBE as TESTINFRA_PROBE
from qualification.errors import VqualError, missing_extra
from qualification.execution.evaluation import (
    TARGET_PROBES,
    TargetRequests,
    evaluate_cross_host,
    evaluate_target,
    requests_for,
)
from qualification.execution.planning import RunPlan
from qualification.execution.probes import run_controller_probe
from qualification.execution.testinfra import run_testinfra
from qualification.timeutil import utc_now_text

#: The module that answers a target-side probe's requests on the target.
TARGET_MODULES = {"host": "vqual.qualification.host_probe"}

RunModule = Callable[[str, dict[str, Any]], Mapping[str, Any]]
TargetVars = Callable[[], Mapping[str, Any]]
FingerprintImage = Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass
class TargetResult:
    """What one target's qualify task returns (and the evidence callback records)."""

    target: str
    results: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    cross: dict[str, Any] = field(default_factory=dict)
    fingerprints: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The task result's ``vqual_*`` fields (plugins/modules/qualify.py, RETURN).

        The records travel as one JSON text (``vqual_evidence``): Ansible walks every value
        of a task result several times on its way to the callbacks (tagging, native types,
        internal keys; ansible-runner's event files), which for a host's ~100 results with
        their raw output cost more than the probe itself; a text is one value.
        """
        evidence = {"results": self.results, "actions": self.actions,
                    "fingerprints": self.fingerprints}
        return {
            "vqual_target": self.target,
            "vqual_evidence": json.dumps(evidence, separators=(",", ":")),
            "vqual_counts": verdict_counts(self.results),
            "vqual_cross": self.cross,
        }


def verdict_counts(results: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many results have each verdict."""
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r.get("verdict"))] = counts.get(str(r.get("verdict")), 0) + 1
    return counts


def unpack_evidence(data: Mapping[str, Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """Results, actions and fingerprints of a task result: a qualify task's
    ``vqual_evidence`` text, or the lists of a task that returns them as they are (compare)."""
    text = data.get("vqual_evidence")
    if isinstance(text, str):
        packed = json.loads(text)
        return (list(packed.get("results") or []), list(packed.get("actions") or []),
                list(packed.get("fingerprints") or []))
    return (list(data.get("vqual_results") or []), list(data.get("vqual_actions") or []),
            list(data.get("vqual_fingerprints") or []))


class _Vars:
    """The target's variables, rendered at most once, and why not if rendering failed."""

    def __init__(self, render: TargetVars) -> None:
        self._render = render
        self._done = False
        self.values: Mapping[str, Any] = {}
        self.error: str | None = None

    def get(self) -> Mapping[str, Any] | None:
        if not self._done:
            self._done = True
            try:
                self.values = self._render()
            # Rendering is Ansible's templating, whose errors this package cannot name; a
            # failed lookup becomes error verdicts, not a traceback.
            except Exception as exc:  # noqa: BLE001
                self.error = " ".join(str(exc).split())
        return None if self.error is not None else self.values


def _all_error(requests: Sequence[Mapping[str, Any]], reason: str) -> dict[str, dict[str, Any]]:
    return {str(r["key"]): {"error": reason} for r in requests}


def _on_target(
    probe: str, requests: list[dict[str, Any]], run_module: RunModule
) -> dict[str, dict[str, Any]]:
    module = TARGET_MODULES[probe]
    outcome = run_module(module, {"requests": requests})
    observations = outcome.get("observations")
    if outcome.get("failed") or not isinstance(observations, Mapping):
        reason = outcome.get("msg") or "the probe module failed"
        return _all_error(requests, f"{module} failed: {reason}")
    return {str(key): dict(value) for key, value in observations.items()}


def _on_target_with_data(
    probe: str, requests: list[dict[str, Any]], run_module: RunModule, rendered: _Vars
) -> dict[str, dict[str, Any]]:
    """A target-side probe; its fingerprint requests also digest the application data the
    inventory names (``vqual_app_data``), which then stands apart as ``guest.data``."""
    paths: tuple[str, ...] = ()
    if any(r.get("method") == "fingerprint" for r in requests):
        host_vars = rendered.get()
        if host_vars is None:
            return _all_error(requests, f"cannot resolve the target's vqual_ variables: {rendered.error}")
        try:
            paths = data_paths(host_vars.get(APP_DATA_VAR))
        except VqualError as exc:
            return _all_error(requests, exc.one_line())
    if not paths:
        return _on_target(probe, requests, run_module)
    found = _on_target(probe, with_app_data(requests, paths), run_module)
    fingerprints = {str(r["key"]) for r in requests if r.get("method") == "fingerprint"}
    for key in fingerprints & set(found):
        value = found[key].get("value")
        if isinstance(value, Mapping):
            found[key] = {**found[key], "value": split_data(value, paths)}
    return found


def observe_target(
    plan: RunPlan,
    target: str,
    requests: TargetRequests,
    *,
    run_module: RunModule,
    target_vars: TargetVars,
    fingerprint_image: FingerprintImage,
    check_mode: bool,
    connection_vars: TargetVars | None = None,
) -> dict[str, dict[str, Any]]:
    """Every observation ``requests`` asks for, by request key: target-side probes in one
    module call each, platform probes in this process. Never raises for a probe that fails:
    its requests get an ``error`` observation."""
    observations: dict[str, dict[str, Any]] = {}
    rendered = _Vars(target_vars)
    data_files = [d.to_dict() for d in plan.data_files]
    for probe, probe_requests in requests.by_probe.items():
        if probe in TARGET_PROBES:
            observations.update(_on_target_with_data(probe, probe_requests, run_module, rendered))
            continue
        if probe == TESTINFRA_PROBE:
            observations.update(_testinfra(probe_requests, connection_vars, target))
            continue
        if probe == "inventory":
            # placement checks: decided on the inventory this run recorded, nowhere observed
            observations.update(answer_placement(probe_requests, plan.inventory_snapshot, target))
            continue
        host_vars = rendered.get()
        if host_vars is None:
            reason = f"cannot resolve the target's vqual_ variables: {rendered.error}"
            observations.update(_all_error(probe_requests, reason))
            continue
        if probe == "template":
            # template_fingerprint: the template's disk image, read here offline.
            for request in fill_template_images(probe_requests, host_vars):
                args = dict(request.get("args") or {})
                image = args.pop("image", None)
                observations[str(request["key"])] = (
                    fingerprint_image(str(image), args)
                    if image
                    else {"error": "no template image: set vqual_template_image for this target"}
                )
            continue
        # vm_fingerprint tests name their VM from the inventory when the spec does not.
        named = with_storage(fill_vm_names(probe_requests, probe, host_vars, target), host_vars)
        observations.update(_on_controller(
            probe, named, host_vars=host_vars, run_id=plan.run_id, check_mode=check_mode,
            data_files=data_files,
        ))
    return observations


def _testinfra(
    requests: list[dict[str, Any]], connection_vars: TargetVars | None, target: str
) -> dict[str, dict[str, Any]]:
    """A target's testinfra tests, reached with its inventory connection settings."""
    if connection_vars is None:
        return _all_error(requests, "testinfra: this run cannot read the target's connection")
    try:
        connection = connection_vars()
    # Ansible's templating, as in _Vars: a failed lookup becomes error verdicts.
    except Exception as exc:  # noqa: BLE001
        reason = " ".join(str(exc).split())
        return _all_error(requests, f"cannot resolve the target's connection settings: {reason}")
    return run_testinfra(requests, connection, target=target)


def _on_controller(
    probe: str, requests: list[dict[str, Any]], **kwargs: Any
) -> dict[str, dict[str, Any]]:
    """A platform probe in this process; a platform whose optional dependency this site did
    not install gives each request an ``error`` naming the extra that adds it."""
    try:
        return run_controller_probe(probe, requests, **kwargs)
    except ModuleNotFoundError as exc:
        missing = missing_extra(exc)
        if missing is None:
            raise
        return _all_error(requests, missing.one_line())


def qualify_target(
    plan: RunPlan,
    target: str,
    *,
    run_module: RunModule,
    target_vars: TargetVars,
    fingerprint_image: FingerprintImage,
    check_mode: bool = False,
    baseline: str | None = None,
    allowed: Mapping[str, Any] | None = None,
    connection_vars: TargetVars | None = None,
) -> TargetResult:
    """Observe ``target`` for its planned tests and evaluate them on the controller.

    Args:
        plan: the run's plan (its other targets need not be read).
        target: the inventory name of the target.
        run_module, target_vars, fingerprint_image: Ansible's means, see the module doc.
        check_mode: OQ steps report ``not-executed`` instead of changing anything.
        baseline: a drift run's baseline bundle: fingerprint tests report the comparison
            with it, one failed result per difference.
        allowed: the differences a drift run allows.
        connection_vars: the target's connection settings
            (:data:`~qualification.execution.testinfra.CONNECTION_VARS`), rendered; only
            called when the plan has ``testinfra`` tests for it.

    Returns:
        The results, OQ actions, cross-host observations and the target's fingerprint record;
        all empty when the plan has no test for ``target``.
    """
    planned = plan.target(target)
    tests = [test.to_json() for test in planned.tests] if planned is not None else []
    if not tests:
        return TargetResult(target)
    requests = requests_for(tests)
    started = utc_now_text()
    t0 = time.perf_counter()
    observations = observe_target(
        plan,
        target,
        requests,
        run_module=run_module,
        target_vars=target_vars,
        fingerprint_image=fingerprint_image,
        check_mode=check_mode,
        connection_vars=connection_vars,
    )
    duration_ms = (time.perf_counter() - t0) * 1000.0
    typed, actions, cross = evaluate_target(
        tests,
        observations,
        requests,
        started=started,
        finished=utc_now_text(),
        duration_ms=duration_ms,
    )
    # As plain dicts: they cross into Ansible, and drift may replace them.
    results: list[dict[str, Any]] = [dict(r) for r in typed]
    # The target's fingerprint (both parts merged) becomes a `fingerprint` record.
    fingerprint = target_fingerprint(target, tests, observations, requests.test_keys)
    fingerprints = [fingerprint_record(fingerprint)] if fingerprint is not None else []
    if plan.mode == "conversion" and plan.conversion is not None:
        # vqual convert qualify: compared with the source baseline the plan cites, one
        # result per difference (allowed ones pass, with the rule that allows them).
        results = conversion_results(plan.conversion, target, tests, results, fingerprint)
    elif baseline:
        # vqual drift: the fingerprint tests' results become the comparison with the
        # baseline bundle, one failed result per difference.
        results = drift_results(baseline, target, tests, results, fingerprint, allowed=allowed)
    return TargetResult(target, results, actions, cross, fingerprints)


def compare_targets(
    plan: RunPlan, cross_of: Callable[[str], Mapping[str, Any] | None]
) -> list[dict[str, Any]]:
    """Evaluate the tests that compare hosts (``same_across_hosts``) once all have answered.

    Args:
        plan: the run's plan.
        cross_of: a target's registered ``vqual_cross`` (empty when it has none), or None
            when the target has no registered result: it left the play (unreachable or
            failed), and the evidence callback has already recorded ``error`` for its tests.
    """
    tests_by_target = {
        t.name: [test.to_json() for test in t.tests if test.expect.get("op") == "same_across_hosts"]
        for t in plan.targets
    }
    cross: dict[str, Any] = {}
    for name in tests_by_target:
        found = cross_of(name)
        if found is not None:
            cross[name] = dict(found)
    reached = {name: tests for name, tests in tests_by_target.items() if name in cross}
    return [dict(r) for r in evaluate_cross_host(reached, cross)]
