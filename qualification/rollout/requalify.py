"""Requalification of a patched host, and of the cluster after the last host.

The orchestrator calls a :class:`Requalifier`; two exist:

- :class:`PlatformRequalifier`: a handful of tests through the platform and the executor:
  the host runs the change's target (versions/packages), the host is healthy, a canary VM is
  migrated onto the host and back (each landing confirmed from the platform), and after the
  last host the cluster is homogeneous in what the change targets. Small and fast, so the
  simulator sweeps can requalify every host.
- :class:`QualifyRequalifier`: the normal qualify path: ``run_qualify`` with the change's
  ``requalify.spec``, ``--limit <host>`` and ``--test`` ids, into its own bundle, referenced
  from the patch bundle by its seal digest; plus the platform tests above.

A host passes its requalification when no result is ``fail`` or ``error``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from qualification.errors import PlatformError, VqualError
from qualification.execution.collection import collection_for_run
from qualification.execution.inventory import VaultOptions
from qualification.execution.qualify import QualifyRequest, run_qualify
from qualification.platforms.base import HypervisorPlatform
from qualification.platforms.patching import PatchExecutor, target_mismatches
from qualification.rollout.change import RolloutChange
from qualification.timeutil import utc_now_text
from qualification.verdict import Verdict

#: The platform requalification tests: id -> (title, protocol, requirements).
TESTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "RP-IQ-01": ("Host runs the change's target versions", "IQ", ("URS-CHG-02", "URS-HV-02")),
    "RP-IQ-02": ("Host is connected and healthy after the patch", "IQ", ("URS-OPS-01",)),
    "RP-OQ-01": ("Canary VM migrates onto the host and back", "OQ", ("URS-OPS-02", "URS-CHG-02")),
    "RP-IQ-03": ("Cluster hosts run identical versions after the patch", "IQ", ("URS-CL-01",)),
}
HOST_TESTS = ("RP-IQ-01", "RP-IQ-02", "RP-OQ-01")
CLUSTER_TEST = "RP-IQ-03"


@dataclass
class RequalifyContext:
    """What a requalifier may use: the platform (one session), the executor and the change."""

    platform: HypervisorPlatform
    executor: PatchExecutor
    change: RolloutChange
    run_id: str
    risk: str


#: What keeps a host out of service.
_FAILED = (Verdict.FAIL, Verdict.ERROR)


@dataclass
class RequalifyOutcome:
    """Results (``check.result`` data) and, for a separate qualify run, its reference."""

    results: list[dict[str, Any]] = field(default_factory=list)
    reference: dict[str, Any] | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        if self.error is not None:
            return False
        if self.reference is not None and self.reference.get("verdict") != Verdict.PASS:
            return False
        return all(r["verdict"] not in _FAILED for r in self.results)

    def failures(self) -> list[str]:
        out = [f"{r['test_id']} {r['verdict']}: {r.get('reason') or ''}".strip()
               for r in self.results if r["verdict"] in _FAILED]
        if self.reference is not None and self.reference.get("verdict") != Verdict.PASS:
            out.append(f"qualify run {self.reference.get('run_id')} {self.reference.get('verdict')}")
        if self.error:
            out.append(self.error)
        return out


class Requalifier(Protocol):
    def planned(self, hosts: Sequence[str], cluster: str) -> list[dict[str, str]]:
        """The tests this requalifier will record, as ``run.start`` ``planned`` entries."""
        ...

    def requalify(self, host: str, ctx: RequalifyContext) -> RequalifyOutcome: ...

    def requalify_cluster(self, hosts: Sequence[str], ctx: RequalifyContext) -> RequalifyOutcome:
        """After the last host: cluster-wide checks (homogeneity)."""
        ...


def result(
    test_id: str, target: str, *, verdict: Verdict, expected: Mapping[str, Any], observed: Any,
    method: str, reason: str | None, started: str, t0: float, check: str = "rollout",
) -> dict[str, Any]:
    """One ``check.result`` record's data (docs/formats.md)."""
    title, protocol, reqs = TESTS[test_id]
    return {
        "test_id": test_id,
        "title": title,
        "protocol": protocol,
        "requirements": list(reqs),
        "target": target,
        "check": check,
        "method": method,
        "expected": dict(expected),
        "observed": observed,
        "verdict": verdict.value,
        "reason": reason,
        "raw": None,
        "started": started,
        "finished": utc_now_text(),
        "duration_ms": round((time.monotonic() - t0) * 1000, 3),
    }


class PlatformRequalifier:
    """Requalifies through the platform and the executor (no playbook)."""

    def __init__(self, *, migration_timeout_s: float | None = None) -> None:
        self._migration_timeout_s = migration_timeout_s

    def planned(self, hosts: Sequence[str], cluster: str) -> list[dict[str, str]]:
        out = [
            {"test_id": t, "target": h, "protocol": TESTS[t][1]} for h in hosts for t in HOST_TESTS
        ]
        out.append({"test_id": CLUSTER_TEST, "target": f"cluster:{cluster}", "protocol": "IQ"})
        return out

    def requalify(self, host: str, ctx: RequalifyContext) -> RequalifyOutcome:
        out = RequalifyOutcome()
        out.results.append(self._versions(host, ctx))
        out.results.append(self._health(host, ctx))
        out.results.append(self._canary(host, ctx))
        return out

    def _versions(self, host: str, ctx: RequalifyContext) -> dict[str, Any]:
        started, t0 = utc_now_text(), time.monotonic()
        expected = {"op": "includes", "value": ctx.change.target.to_json()}
        try:
            installed = ctx.executor.installed(host)
        except VqualError as exc:
            return result("RP-IQ-01", host, verdict=Verdict.ERROR, expected=expected, observed=None,
                          method=f"{ctx.executor.name} installed", reason=exc.one_line(),
                          started=started, t0=t0)
        missing = target_mismatches(installed, ctx.change)
        return result("RP-IQ-01", host, verdict=Verdict.FAIL if missing else Verdict.PASS, expected=expected,
                      observed=installed, method=f"{ctx.executor.name} installed",
                      reason="; ".join(missing) or None, started=started, t0=t0)

    def _health(self, host: str, ctx: RequalifyContext) -> dict[str, Any]:
        started, t0 = utc_now_text(), time.monotonic()
        expected = {"op": "eq", "value": {"ok": True, "connected": True}}
        try:
            health = ctx.executor.health(host)
            connected = host in {h.name for h in ctx.platform.hosts()}
        except VqualError as exc:
            return result("RP-IQ-02", host, verdict=Verdict.ERROR, expected=expected, observed=None,
                          method=f"{ctx.executor.name} health", reason=exc.one_line(),
                          started=started, t0=t0)
        ok = bool(health.get("ok")) and connected
        problems = [str(p) for p in health.get("problems") or ()]
        if not connected:
            problems.append("the platform does not list the host")
        why = "the host is not healthy" + (f": {'; '.join(problems)}" if problems else "")
        return result("RP-IQ-02", host, verdict=Verdict.PASS if ok else Verdict.FAIL, expected=expected,
                      observed={**health, "listed": connected},
                      method=f"{ctx.executor.name} health; platform host list",
                      reason=None if ok else why, started=started, t0=t0)

    def _canary(self, host: str, ctx: RequalifyContext) -> dict[str, Any]:
        started, t0 = utc_now_text(), time.monotonic()
        canary = ctx.change.canary_vm
        expected = {"op": "eq", "value": {"landed_on": host, "returned_to": "origin"}}
        method = "migrate_vm in and out, host read back from the platform"
        if not canary:
            waiver = ctx.change.canary_waiver
            reason = ("the change waives the OQ canary: " + waiver.reason if waiver is not None
                      else "the change names no requalify.canary_vm")
            return result("RP-OQ-01", host, verdict=Verdict.NOT_EXECUTED, expected=expected,
                          observed=None, method=method, reason=reason, started=started, t0=t0)
        platform = ctx.platform
        try:
            facts = platform.vm(canary)
            origin = facts.host
            live = facts.power_state == "running"
            if live:
                # The host is still in maintenance here: no VM may run on it.
                return result("RP-OQ-01", host, verdict=Verdict.NOT_EXECUTED, expected=expected,
                              observed={"power_state": facts.power_state}, method=method,
                              reason=f"canary {canary} is powered on; a host in maintenance "
                              "takes only a powered-off canary (cold migration)",
                              started=started, t0=t0)
            if origin == host:
                # The canary sits on the host itself: out to a host in service and back in.
                others = [h.name for h in platform.hosts()
                          if h.name != host and not h.in_maintenance]
                if not others:
                    return result("RP-OQ-01", host, verdict=Verdict.ERROR, expected=expected,
                                  observed={"origin": origin}, method=method,
                                  reason="no other host in service to move the canary to",
                                  started=started, t0=t0)
                expected = {"op": "eq", "value": {"landed_on": others[0], "returned_to": host}}
                away = platform.migrate_vm(canary, others[0], live=False).host
                confirmed_away = platform.vm(canary).host
                home = platform.migrate_vm(canary, host, live=False).host
                confirmed_home = platform.vm(canary).host
                observed = {"canary": canary, "origin": origin, "landed_on": confirmed_away,
                            "returned_to": confirmed_home, "reported": [away, home]}
                ok = confirmed_away == others[0] and confirmed_home == host
                return result("RP-OQ-01", host, verdict=Verdict.PASS if ok else Verdict.FAIL,
                              expected=expected, observed=observed, method=method,
                              reason=None if ok else "the canary did not land where it was sent: "
                              f"landed on {confirmed_away}, returned to {confirmed_home}",
                              started=started, t0=t0)
            there = platform.migrate_vm(canary, host, live=False).host
            confirmed_there = platform.vm(canary).host
            back = platform.migrate_vm(canary, origin, live=False).host
            confirmed_back = platform.vm(canary).host
        except PlatformError as exc:
            return result("RP-OQ-01", host, verdict=Verdict.ERROR, expected=expected, observed=None,
                          method=method, reason=exc.one_line(), started=started, t0=t0)
        observed = {"canary": canary, "origin": origin, "landed_on": confirmed_there,
                    "returned_to": confirmed_back, "reported": [there, back]}
        ok = confirmed_there == host and confirmed_back == origin
        expected = {"op": "eq", "value": {"landed_on": host, "returned_to": origin}}
        return result("RP-OQ-01", host, verdict=Verdict.PASS if ok else Verdict.FAIL, expected=expected,
                      observed=observed, method=method,
                      reason=None if ok else "the canary did not land where it was sent: "
                      f"landed on {confirmed_there}, returned to {confirmed_back}",
                      started=started, t0=t0)

    def requalify_cluster(self, hosts: Sequence[str], ctx: RequalifyContext) -> RequalifyOutcome:
        started, t0 = utc_now_text(), time.monotonic()
        target = f"cluster:{ctx.change.cluster}"
        keys = ["hypervisor_version", "hypervisor_build", *sorted(ctx.change.target.packages)]
        expected = {"op": "all_equal", "value": keys}
        try:
            seen = {h: ctx.executor.installed(h) for h in hosts}
        except VqualError as exc:
            return RequalifyOutcome([result(CLUSTER_TEST, target, verdict=Verdict.ERROR,
                                            expected=expected, observed=None,
                                            method="installed on every host",
                                            reason=exc.one_line(), started=started, t0=t0)])
        observed = {h: {k: v.get(k) for k in keys} for h, v in sorted(seen.items())}
        differing = [k for k in keys if len({str(v.get(k)) for v in seen.values()}) > 1]
        return RequalifyOutcome([result(
            CLUSTER_TEST, target, verdict=Verdict.FAIL if differing else Verdict.PASS, expected=expected,
            observed=observed, method="installed on every host",
            reason=f"hosts differ in {', '.join(differing)}" if differing else None,
            started=started, t0=t0)])


@dataclass
class QualifyRequalifier:
    """The normal qualify path for each host, plus :class:`PlatformRequalifier`'s tests.

    Attributes:
        inventory: the Ansible inventory ``vqual qualify`` runs with.
        key_file, passphrase_reader, evidence_dir, state_dir, initiator: as for qualify.
        limit_for: maps a platform host name to the ``--limit`` pattern of its inventory host
            (None: the same name).
    """

    inventory: Path
    key_file: Path
    passphrase_reader: Callable[[], bytes]
    evidence_dir: Path
    state_dir: Path
    initiator: str
    limit_for: Callable[[str], str] | None = None
    platform_tests: PlatformRequalifier = field(default_factory=PlatformRequalifier)
    vault: VaultOptions = field(default_factory=VaultOptions)

    def __post_init__(self) -> None:
        # Made before the first host is drained: a collection of another version is refused
        # then, not at the first requalification with a host already patched.
        collection_for_run()

    def _limit(self, host: str) -> str:
        return self.limit_for(host) if self.limit_for is not None else host

    def planned(self, hosts: Sequence[str], cluster: str) -> list[dict[str, str]]:
        return self.platform_tests.planned(hosts, cluster)

    def requalify(self, host: str, ctx: RequalifyContext) -> RequalifyOutcome:
        out = self.platform_tests.requalify(host, ctx)
        req = ctx.change.requalify
        if req is None:
            return out
        try:
            summary = run_qualify(QualifyRequest(
                inventory=self.inventory, spec=req.spec, change_id=ctx.change.change_id,
                key_file=self.key_file, passphrase_reader=self.passphrase_reader,
                evidence_dir=self.evidence_dir, state_dir=self.state_dir,
                initiator=self.initiator, limit=self._limit(host),
                tests=list(req.tests) or None, vault=self.vault,
            ))
        except VqualError as exc:
            out.error = f"qualify {host}: {exc.one_line()}"
            return out
        out.reference = {
            "mode": "qualify", "run_id": summary.run_id, "seal": summary.seal,
            "verdict": summary.verdict, "bundle": f"{summary.change_id}/{summary.run_id}",
            "spec": str(req.spec), "tests": list(req.tests), "limit": self._limit(host),
            "verification": summary.verification,
        }
        return out

    def requalify_cluster(self, hosts: Sequence[str], ctx: RequalifyContext) -> RequalifyOutcome:
        return self.platform_tests.requalify_cluster(hosts, ctx)
