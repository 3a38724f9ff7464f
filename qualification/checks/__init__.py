"""The check library: a registry of check types and the evaluation of their observations.

A spec test names a check type (``check: sysctl``) with parameters and an expectation. The
controller asks the check type for its :class:`ProbeRequest`, collects every request of a host
so the probe answers all of them in one round trip, and evaluates each test here:
:func:`evaluate` for a single target, :func:`compare_across` for ``same_across_hosts``.
Evaluation never raises for a bad observation: whatever goes wrong becomes an ``error``
outcome with the reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from qualification.checks.base import (
    Check,
    Observation,
    Observed,
    Outcome,
    ProbeRequest,
    StepNotExecuted,
)
from qualification.checks.operators import apply, describe_expectation, validate_expect
from qualification.checks.registry import get_check, known_check_types, register, validate_params
from qualification.verdict import Verdict

__all__ = [
    "Check",
    "Observation",
    "Observed",
    "Outcome",
    "ProbeRequest",
    "compare_across",
    "describe_expectation",
    "evaluate",
    "get_check",
    "known_check_types",
    "register",
    "validate_expect",
    "validate_params",
]

#: The reason of a test observed by ``vqual baseline capture`` (no expectation yet).
CAPTURED = "observed for a baseline capture; judged once the captured values are approved"


def _expected(expect: Mapping[str, Any]) -> dict[str, Any]:
    return dict(expect)


def _short(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _unobserved(observation: Observation, expect: Mapping[str, Any]) -> Outcome | None:
    if observation.error:
        return Outcome(Verdict.ERROR, _expected(expect), None, " ".join(observation.error.split()))
    if observation.not_executed:
        reason = " ".join(observation.not_executed.split())
        return Outcome(Verdict.NOT_EXECUTED, _expected(expect), None, reason)
    return None


def evaluate(
    check: Check, observation: Observation, params: Mapping[str, Any], expect: Mapping[str, Any]
) -> Outcome:
    """Decide one test on one target.

    A probe error gives ``error`` and a step the platform cannot perform ``not-executed``,
    each with the probe's reason; otherwise the check extracts the observed value and the
    expectation's operator decides ``pass`` or ``fail``. An exception while extracting or
    comparing becomes ``error`` naming it, never a traceback.
    """
    unobserved = _unobserved(observation, expect)
    if unobserved is not None:
        return unobserved
    try:
        observed = check.extract(observation.value, params)
    except StepNotExecuted as exc:
        return Outcome(
            Verdict.NOT_EXECUTED, _expected(expect), None, " ".join(str(exc).split()), exc.measured
        )
    except Exception as exc:  # a check bug or an unexpected probe answer must not abort a run
        return Outcome(
            Verdict.ERROR, _expected(expect), None, f"{check.name}: extract failed: {_short(exc)}"
        )
    run_reason: str | None = None
    measured: Mapping[str, Any] = {}
    if isinstance(observed, Observed):
        run_reason, measured, observed = observed.reason, observed.measured, observed.value
    if expect.get("capture"):
        # vqual baseline capture: the value is recorded to become the expectation, not judged
        return Outcome(Verdict.NOT_EXECUTED, _expected(expect), observed, CAPTURED, measured)
    try:
        ok, reason = apply(observed, expect)
    except Exception as exc:
        return Outcome(
            Verdict.ERROR,
            _expected(expect),
            observed,
            f"{check.name}: compare failed: {_short(exc)}",
            measured,
        )
    if not ok and run_reason:
        # The run's own reason first: "expected pass, observed fail" alone says nothing.
        reason = "; ".join(r for r in (" ".join(run_reason.split()), reason) if r)
    return Outcome(Verdict.PASS if ok else Verdict.FAIL, _expected(expect), observed, reason, measured)


def _fingerprint(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def compare_across(
    check: Check,
    observations: Mapping[str, Observation],
    params: Mapping[str, Any],
    expect: Mapping[str, Any],
) -> dict[str, Outcome]:
    """Decide a ``same_across_hosts`` test for every target of one group.

    Each target's value is compared with the majority value of the hosts that could be
    observed. A target that differs fails, and its reason names it, its value, the majority
    value and the hosts holding it. Without a strict majority (a tie) every target fails.
    Hosts that could not be observed get ``error``/``not-executed`` and do not vote.
    """
    outcomes: dict[str, Outcome] = {}
    values: dict[str, Any] = {}
    for target, observation in observations.items():
        unobserved = _unobserved(observation, expect)
        if unobserved is not None:
            outcomes[target] = unobserved
            continue
        try:
            value = check.extract(observation.value, params)
            values[target] = value.value if isinstance(value, Observed) else value
        except Exception as exc:
            outcomes[target] = Outcome(
                Verdict.ERROR, _expected(expect), None, f"{check.name}: extract failed: {_short(exc)}"
            )
    if not values:
        return outcomes
    prints = {target: _fingerprint(value) for target, value in values.items()}
    counts = Counter(prints.values()).most_common()
    top_print, top_count = counts[0]
    tie = len(counts) > 1 and counts[1][1] == top_count
    majority_hosts = sorted(h for h, p in prints.items() if p == top_print)
    majority_value = values[majority_hosts[0]]
    group = expect.get("group", "cluster")
    for target in sorted(values):
        value = values[target]
        expected = {
            **_expected(expect),
            "value": majority_value,
            "majority_hosts": majority_hosts,
        }
        if len(counts) == 1:
            reason = None if len(values) > 1 else f"only {target} observed in {group}"
            outcomes[target] = Outcome(Verdict.PASS, expected, value, reason)
        elif tie:
            groups = "; ".join(
                f"{', '.join(sorted(h for h, p in prints.items() if p == fp))}: {fp}"
                for fp, _ in counts
            )
            outcomes[target] = Outcome(
                Verdict.FAIL,
                {**_expected(expect), "value": None},
                value,
                f"no majority value in {group}: {groups}",
            )
        elif prints[target] == top_print:
            differing = sorted(h for h, p in prints.items() if p != top_print)
            outcomes[target] = Outcome(
                Verdict.PASS,
                expected,
                value,
                f"differs elsewhere in {group}: {', '.join(differing)}",
            )
        else:
            outcomes[target] = Outcome(
                Verdict.FAIL,
                expected,
                value,
                f"{target} has {_fingerprint(value)}, the majority of {group} "
                f"({', '.join(majority_hosts)}) has {top_print}",
            )
    return outcomes


# The check types register themselves (checks.registry) when their modules are imported.
from . import (
    clone,  # noqa: F401
    decommission,  # noqa: F401
    fingerprint,  # noqa: F401
    guest_os,  # noqa: F401
    host,  # noqa: F401
    hyperv,  # noqa: F401
    libvirt,  # noqa: F401
    paths,  # noqa: F401
    placement,  # noqa: F401
    testinfra,  # noqa: F401
    vsphere,  # noqa: F401
    vsphere_paths,  # noqa: F401
)
