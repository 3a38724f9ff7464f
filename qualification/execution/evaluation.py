"""Turn a target's planned tests into probe requests, and observations into results."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qualification import checks
from qualification.checks.base import Observation, Outcome, ProbeRequest
from qualification.evidence.kinds.check_result import CheckResultData
from qualification.execution.references import with_references
from qualification.platforms import registry
from qualification.timeutil import utc_now_text
from qualification.verdict import Verdict

#: Probes that run on the target over its connection; all others run on the controller.
TARGET_PROBES = frozenset({"host"})


@dataclass(frozen=True)
class TargetRequests:
    """The deduplicated requests of one target, grouped by probe."""

    by_probe: dict[str, list[dict[str, Any]]]
    #: test id -> request key
    test_keys: dict[str, str]
    #: tests whose expectation compares hosts; evaluated after every host has answered
    cross_host: tuple[str, ...]


def _check(name: str) -> checks.Check:
    """The check type ``name``; a platform plug-in's own check types join the library when
    the registry loads (each Ansible worker process loads it afresh)."""
    registry.plugins()
    return checks.get_check(name)


def requests_for(tests: Sequence[Mapping[str, Any]]) -> TargetRequests:
    """Collect one request per distinct observation among a target's planned tests."""
    by_probe: dict[str, dict[str, dict[str, Any]]] = {}
    test_keys: dict[str, str] = {}
    cross: list[str] = []
    for test in tests:
        check = _check(str(test["check"]))
        request: ProbeRequest = check.request(test.get("params") or {})
        key = request.key()
        by_probe.setdefault(request.probe, {})[key] = request.to_json()
        test_keys[str(test["test_id"])] = key
        if (test.get("expect") or {}).get("op") == "same_across_hosts":
            cross.append(str(test["test_id"]))
    return TargetRequests(
        by_probe={probe: list(reqs.values()) for probe, reqs in by_probe.items()},
        test_keys=test_keys,
        cross_host=tuple(cross),
    )


def _raw_of(observation: Observation) -> str | None:
    return observation.raw


def result_record(
    test: Mapping[str, Any],
    outcome: Outcome,
    observation: Observation | None,
    *,
    started: str,
    finished: str,
    duration_ms: float,
) -> CheckResultData:
    """The ``check.result`` payload for one test (docs/formats.md); ``measured`` only when
    the check names values the observed value rests on (an OQ run's figures);
    ``observation_ms`` only when the probe measured its observation's own time."""
    data: CheckResultData = {
        "test_id": test["test_id"],
        "title": test.get("title", ""),
        "protocol": test.get("protocol", "IQ"),
        "requirements": list(test.get("requirements") or ()),
        "target": test["target"],
        "check": test["check"],
        "method": observation.method if observation else "",
        "expected": dict(test.get("expect") or {}),
        "observed": outcome.observed,
        "verdict": Verdict(outcome.verdict).value,
        "reason": outcome.reason,
        "raw": _raw_of(observation) if observation else None,
        "started": started,
        "finished": finished,
        "duration_ms": round(duration_ms, 3),
    }
    if outcome.measured:
        data["measured"] = dict(outcome.measured)
    if observation is not None and observation.seconds is not None:
        data["observation_ms"] = round(observation.seconds * 1000, 3)
    return data


def evaluate_target(
    tests: Sequence[Mapping[str, Any]],
    observations: Mapping[str, Mapping[str, Any]],
    requests: TargetRequests,
    *,
    started: str,
    finished: str,
    duration_ms: float,
) -> tuple[list[CheckResultData], list[dict[str, Any]], dict[str, Any]]:
    """Evaluate a target's tests against the observations its probes returned.

    Returns:
        (results, actions, cross) where ``cross`` maps the test ids of cross-host tests to
        their raw observation, for :func:`evaluate_cross_host`.
    """
    results: list[CheckResultData] = []
    actions: list[dict[str, Any]] = []
    cross: dict[str, Any] = {}
    seen_action_keys: set[str] = set()
    for test in tests:
        test_id = str(test["test_id"])
        key = requests.test_keys[test_id]
        raw_obs = observations.get(key)
        if raw_obs is None:
            observation = Observation(error="the probe returned no observation for this test")
        else:
            observation = Observation.from_json(raw_obs)
        if key not in seen_action_keys:
            seen_action_keys.add(key)
            actions.extend(dict(a) for a in observation.actions)
        if test_id in requests.cross_host:
            cross[test_id] = dict(raw_obs) if raw_obs is not None else {"error": observation.error}
            continue
        check = _check(str(test["check"]))
        params = with_references(check.name, test.get("params") or {})
        outcome = checks.evaluate(check, observation, params, test.get("expect") or {})
        results.append(
            result_record(
                test, outcome, observation, started=started, finished=finished,
                duration_ms=duration_ms,
            )
        )
    return results, actions, cross


def evaluate_cross_host(
    tests_by_target: Mapping[str, Sequence[Mapping[str, Any]]],
    cross_by_target: Mapping[str, Mapping[str, Any]],
) -> list[CheckResultData]:
    """Evaluate ``same_across_hosts`` tests once every target has answered."""
    started = utc_now_text()
    t0 = time.perf_counter()
    per_test: dict[str, dict[str, Observation]] = {}
    test_defs: dict[tuple[str, str], Mapping[str, Any]] = {}
    for target, tests in tests_by_target.items():
        for test in tests:
            test_id = str(test["test_id"])
            if (test.get("expect") or {}).get("op") != "same_across_hosts":
                continue
            test_defs[(test_id, target)] = test
            raw = (cross_by_target.get(target) or {}).get(test_id)
            obs = (
                Observation.from_json(raw)
                if raw is not None
                else Observation(error=f"{target} returned no observation (unreachable or failed)")
            )
            per_test.setdefault(test_id, {})[target] = obs
    results: list[CheckResultData] = []
    for test_id, obs_by_target in per_test.items():
        any_test = next(t for (tid, _), t in test_defs.items() if tid == test_id)
        check = _check(str(any_test["check"]))
        outcomes = checks.compare_across(
            check, obs_by_target, any_test.get("params") or {}, any_test.get("expect") or {}
        )
        finished = utc_now_text()
        duration = (time.perf_counter() - t0) * 1000
        for target, outcome in sorted(outcomes.items()):
            results.append(
                result_record(
                    test_defs[(test_id, target)], outcome, obs_by_target.get(target),
                    started=started, finished=finished, duration_ms=duration,
                )
            )
    return results


def error_results(
    tests: Sequence[Mapping[str, Any]], reason: str, *, verdict: Verdict = Verdict.ERROR
) -> list[CheckResultData]:
    """Results for tests that could not be observed (host unreachable, probe failed)."""
    now = utc_now_text()
    outcome_for = {
        str(t["test_id"]): Outcome(verdict=verdict, expected=dict(t.get("expect") or {}),
                                   observed=None, reason=reason)
        for t in tests
    }
    return [
        result_record(t, outcome_for[str(t["test_id"])], None, started=now, finished=now,
                      duration_ms=0.0)
        for t in tests
    ]
