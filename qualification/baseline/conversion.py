"""Conversion qualified by difference (P2V, V2V; URS-CONV-01): the target after a conversion
compared with the signed baseline of its source.

The **source baseline** is a sealed bundle that verifies and holds exactly one fingerprint,
the source's (``vqual convert baseline``: a qualification run of a spec with fingerprint
tests, its application data named by ``vqual_app_data`` in the inventory). Its spec's
``conversion`` section declares what a conversion may change:

```yaml
conversion:
  identity: [name, uuid, macs, addresses]        # identity fields that may differ
  sizing: {vcpus: {min: 1, max: 4}}              # optional ranges
  allowed:                                        # what the new platform brings
    - {what: vm.disk, fields: [format, bus, dev], reason: "disk image format and bus of the target"}
    - {what: vm.nic, fields: [model]}
    - {what: package, where: "open-vm-tools", reason: "the old platform's tools removed"}
```

A rule matches a difference by ``what`` and ``where`` (shell patterns, ``where`` default
``*``); with ``fields`` the two values must both be present and differ only in those keys.
``data`` (application data) differences are never allowed: a rule naming them is refused.

The conversion run (mode ``conversion``, :mod:`qualification.execution.conversion`) records
on the target one summary result per guest comparison and **one ``check.result`` per
difference**: ``fail`` for every difference no rule allows (naming what, where and both
values), ``pass`` with the rule's reason for an allowed one, so allowed differences are
shown, not hidden.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification import yamlio
from qualification.baseline.drift import FINGERPRINT_CHECKS, Baseline, load_baseline
from qualification.checks.fingerprint_model import (
    IDENTITY_FIELDS,
    AllowedDifferences,
    Difference,
    Fingerprint,
    compare,
)
from qualification.errors import BadInputError, EvidenceInvalidError, VqualError

SECTION = "conversion"
#: Difference kinds no rule may allow: the application data must arrive unchanged.
NEVER_ALLOWED = ("data", "subject")


@dataclass(frozen=True)
class AllowedRule:
    """One kind of difference a conversion may bring (see the module doc)."""

    what: str
    where: str = "*"
    fields: tuple[str, ...] = ()
    reason: str = ""

    def matches(self, diff: Difference) -> bool:
        if not fnmatch.fnmatchcase(diff.what, self.what):
            return False
        if not fnmatch.fnmatchcase(diff.where, self.where):
            return False
        if not self.fields:
            return True
        b, lv = diff.baseline, diff.live
        if not isinstance(b, Mapping) or not isinstance(lv, Mapping):
            return False  # added or removed: more than the named fields
        changed = {k for k in set(b) | set(lv) if b.get(k) != lv.get(k)}
        return changed <= set(self.fields)

    def text(self) -> str:
        fields = f" ({', '.join(self.fields)})" if self.fields else ""
        where = "" if self.where == "*" else f" {self.where}"
        return f"{self.what}{where}{fields}" + (f": {self.reason}" if self.reason else "")

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "where": self.where, "fields": list(self.fields),
                "reason": self.reason}


def _rule(item: Any, where: str) -> AllowedRule:
    if not isinstance(item, Mapping) or "what" not in item:
        raise BadInputError("each allowed difference is {what, where?, fields?, reason?}",
                            where=where)
    unknown = sorted(set(item) - {"what", "where", "fields", "reason"})
    if unknown:
        raise BadInputError(f"unknown keys {unknown}", where=where)
    what, at, reason = item["what"], item.get("where", "*"), item.get("reason", "")
    fields = item.get("fields") or []
    if not all(isinstance(v, str) and v for v in (what, at)) or not isinstance(reason, str):
        raise BadInputError("what and where are non-empty strings, reason a string", where=where)
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        raise BadInputError("fields must be a list of field names", where=where)
    if any(fnmatch.fnmatchcase(never, what) for never in NEVER_ALLOWED):
        raise BadInputError(
            f"what {what!r} would allow {' or '.join(NEVER_ALLOWED)} differences: application "
            "data must arrive unchanged and every part must be observed",
            where=where,
        )
    return AllowedRule(what, at, tuple(fields), reason)


@dataclass(frozen=True)
class ConversionRules:
    """The spec's ``conversion`` section: what a conversion may change."""

    identity: frozenset[str] = frozenset(IDENTITY_FIELDS)
    sizing: Mapping[str, Any] = field(default_factory=dict)
    allowed: tuple[AllowedRule, ...] = ()

    @classmethod
    def from_json(cls, data: Any, *, where: str = "spec conversion") -> ConversionRules:
        """Read the section (None: its defaults, every identity field, nothing else).

        Raises:
            BadInputError: unknown keys, identity fields or sizing ranges; a rule that is
                malformed or would allow application data to differ.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise BadInputError("must be a mapping", where=where)
        unknown = sorted(set(data) - {"identity", "sizing", "allowed"})
        if unknown:
            raise BadInputError(f"unknown keys {unknown}", where=where)
        base = AllowedDifferences.from_json(
            {k: data[k] for k in ("identity", "sizing") if k in data}, where=where
        )
        raw = data.get("allowed") or []
        if not isinstance(raw, list):
            raise BadInputError("allowed must be a list", where=where)
        rules = tuple(_rule(item, f"{where}.allowed[{i}]") for i, item in enumerate(raw))
        return cls(identity=base.identity, sizing=base.to_json()["sizing"], allowed=rules)

    def differences_allowed(self) -> AllowedDifferences:
        """Identity and sizing, as the fingerprint comparison takes them."""
        return AllowedDifferences.from_json(
            {"identity": sorted(self.identity), "sizing": dict(self.sizing)}
        )

    def rule_for(self, diff: Difference) -> AllowedRule | None:
        """The first rule that allows ``diff``; None for application data, always."""
        if diff.what in NEVER_ALLOWED:
            return None
        return next((r for r in self.allowed if r.matches(diff)), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "identity": sorted(self.identity),
            "sizing": dict(self.sizing),
            "allowed": [r.to_json() for r in self.allowed],
        }


@dataclass(frozen=True)
class Judged:
    """One difference of a conversion target from its source, and the rule allowing it."""

    difference: Difference
    rule: AllowedRule | None

    @property
    def allowed(self) -> bool:
        return self.rule is not None

    def to_json(self) -> dict[str, Any]:
        return {**self.difference.to_json(), "allowed": self.allowed,
                "rule": self.rule.text() if self.rule else None}


def _with_disk_devs(fp: Fingerprint, names: Mapping[str, str] | None = None) -> Fingerprint:
    """``fp`` with each disk's own device name as ``dev``, and its ``target`` renamed by
    ``names`` (a converted disk paired with the source disk it came from)."""
    if fp.vm is None:
        return fp
    disks = [
        {**d, "dev": d.get("target"), "target": (names or {}).get(str(d.get("target")), d.get("target"))}
        for d in fp.vm.get("disks") or [] if isinstance(d, Mapping)
    ]
    # Only compared, never recorded: its part digests are left as they were.
    return dataclasses.replace(fp, vm={**fp.vm, "disks": disks})


def _disk_pairs(source: Fingerprint, target: Fingerprint) -> dict[str, str]:
    """Target disk name -> the source disk it was converted from, paired in order per
    device type: a conversion onto another bus renames the disks (vda becomes sda), so
    disks are matched by position, not by name."""
    def by_device(fp: Fingerprint) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for d in sorted((fp.vm or {}).get("disks") or [], key=lambda d: str(d.get("target"))):
            out.setdefault(str(d.get("device")), []).append(str(d.get("target")))
        return out

    src, dst = by_device(source), by_device(target)
    pairs: dict[str, str] = {}
    for device, names in dst.items():
        for i, name in enumerate(names):
            if i < len(src.get(device, [])):
                pairs[name] = src[device][i]
    return pairs


def judge(source: Fingerprint, target: Fingerprint, rules: ConversionRules) -> list[Judged]:
    """Every difference of ``target`` from ``source``, each with the rule that allows it
    (None: not allowed). Identity fields and sizing inside the ranges are no difference.
    Disks are paired in order (their device name is the field ``dev``, a difference like
    bus or format)."""
    found = compare(_with_disk_devs(source), _with_disk_devs(target, _disk_pairs(source, target)),
                    rules.differences_allowed())
    return [Judged(d, rules.rule_for(d)) for d in found]


# --------------------------------------------------------------------------- the source baseline


def rules_of(baseline: Baseline) -> ConversionRules:
    """The ``conversion`` section of the baseline's own spec (the protocol the source was
    baselined under).

    Raises:
        BadInputError: the section is malformed.
    """
    spec = yamlio.safe_load(baseline.spec_text.decode("utf-8")) or {}
    return ConversionRules.from_json(
        spec.get(SECTION) if isinstance(spec, Mapping) else None,
        where=f"{baseline.path}/spec.yaml conversion",
    )


def source_of(baseline: Baseline) -> Fingerprint:
    """The one fingerprint of a conversion baseline: the source's.

    Raises:
        BadInputError: none, or several (take the baseline with ``--limit`` the source).
    """
    prints = baseline.fingerprints
    if len(prints) != 1:
        have = ", ".join(sorted(prints)) or "none"
        raise BadInputError(
            f"a conversion baseline holds the fingerprint of exactly one source (it has: "
            f"{have}); take it with vqual convert baseline --limit SOURCE",
            where=str(baseline.path),
        )
    return next(iter(prints.values()))


def conversion_block(baseline: Baseline, rules: ConversionRules) -> dict[str, Any]:
    """``run.start`` ``conversion``: the source baseline the run compares with."""
    source = source_of(baseline)
    return {
        "baseline_bundle": str(baseline.path.resolve()),
        "baseline_seal": baseline.seal,
        "baseline_change_id": baseline.change_id,
        "baseline_run_id": baseline.run_id,
        "source": {"subject": source.subject, "digest": source.digest()},
        "rules": rules.to_json(),
    }


def load_conversion_baseline(path: Path, state_dir: Path | None = None) -> dict[str, Any]:
    """Verify a source baseline and return the ``conversion`` block citing it.

    Raises:
        EvidenceInvalidError: it does not verify or did not finish (exit 1).
        BadInputError: not exactly one fingerprint, or a malformed ``conversion`` section.
    """
    baseline = load_baseline(Path(path), state_dir)
    return conversion_block(baseline, rules_of(baseline))


def conversion_spec(baseline: Baseline, kinds: Sequence[str]) -> dict[str, Any]:
    """The conversion run's spec: the baseline spec's fingerprint tests, applying to the
    target ``kinds`` (a converted VM or host may have other kinds than its source), and its
    ``conversion`` section.

    Raises:
        EvidenceInvalidError: the baseline's spec has no fingerprint test.
    """
    spec = yamlio.safe_load(baseline.spec_text.decode("utf-8"))
    tests = [
        {**t, "applies_to": list(kinds), "risk": ["high", "medium", "low"],
         "scope": ["master", "clone"]}
        for t in (spec.get("tests") or [] if isinstance(spec, dict) else [])
        if isinstance(t, dict) and t.get("check") in FINGERPRINT_CHECKS
    ]
    if not tests:
        raise EvidenceInvalidError("the baseline's spec has no fingerprint test",
                                   where=str(baseline.path))
    meta = dict(spec.get("metadata") or {})
    out: dict[str, Any] = {
        "apiVersion": spec.get("apiVersion", "vqual/v1"),
        "kind": spec.get("kind", "Protocol"),
        "metadata": {
            "name": f"conversion-{meta.get('name', 'baseline')}"[:64],
            "title": f"Conversion compared with the source baseline {baseline.change_id}/{baseline.run_id}",
            "version": str(meta.get("version", "1")),
            "description": (f"Derived by vqual convert qualify from {meta.get('name')} "
                            f"{meta.get('version')}, source baseline seal {baseline.seal}."),
        },
        "requirements": spec.get("requirements") or [],
        "tests": tests,
    }
    for key in ("data_files", SECTION, "traceability"):
        if spec.get(key):
            out[key] = spec[key]
    return out


# --------------------------------------------------------------------------- results on the target


@functools.lru_cache(maxsize=4)
def _cached(path: str, state_dir: str | None) -> Baseline:
    return load_baseline(Path(path), Path(state_dir) if state_dir else None)


def _difference_result(
    test_id: str, base: Mapping[str, Any], judged: Judged, where: str
) -> dict[str, Any]:
    diff = judged.difference
    reason = diff.text() + (f"; allowed: {judged.rule.text()}" if judged.rule else "; not allowed")
    return {
        **base,
        "test_id": f"{test_id}:{diff.what}:{diff.where}",
        "title": f"Conversion: {diff.what} {diff.where}" + (" (allowed)" if judged.allowed else ""),
        "expected": {"op": "equals", "value": diff.baseline},
        "observed": diff.live,
        "verdict": "pass" if judged.allowed else "fail",
        "reason": reason,
        "raw": None,
        "method": where,
    }


def conversion_results(
    block: Mapping[str, Any],
    target: str,
    tests: Sequence[Mapping[str, Any]],
    results: Sequence[Mapping[str, Any]],
    live: Fingerprint | None,
) -> list[dict[str, Any]]:
    """What the ``qualify`` action records on a conversion target: the comparison with the
    source fingerprint the plan's ``conversion`` block cites (re-read from the baseline
    bundle, which must still carry the seal verified at planning)."""
    try:
        baseline = _cached(str(block["baseline_bundle"]), None)
        if baseline.seal != block["baseline_seal"]:
            raise EvidenceInvalidError(
                f"seal {baseline.seal} is not {block['baseline_seal']}, the one verified "
                "when the run was planned", where=str(baseline.path))
        source = source_of(baseline)
        rules = ConversionRules.from_json(block.get("rules"))
    except VqualError as exc:
        return [dict(r, verdict="error", reason=exc.one_line()) for r in results]
    where = (f"conversion compare with source {source.subject} baseline "
             f"{baseline.change_id}/{baseline.run_id} (seal {baseline.seal[:16]})")
    fp_ids = [str(t["test_id"]) for t in tests if t.get("check") in FINGERPRINT_CHECKS]
    host_ids = [str(t["test_id"]) for t in tests if t.get("check") == "host_fingerprint"]
    comparer = (host_ids or fp_ids or [""])[0]
    out: list[dict[str, Any]] = []
    for result in results:
        summary = dict(result, method=where)
        if str(result.get("test_id")) not in fp_ids:
            out.append(summary)
        elif result.get("verdict") == "error" or live is None:
            summary.update(verdict="error", reason=result.get("reason") or "no live fingerprint")
            out.append(summary)
        elif str(result.get("test_id")) != comparer:
            summary.update(verdict="pass", reason=f"compared with the source in {comparer}")
            out.append(summary)
        else:
            judged = judge(source, live, rules)
            failing = [j for j in judged if not j.allowed]
            summary.update(
                expected={"op": "equals", "source": source.subject, "digest": source.digest(),
                          "seal": baseline.seal},
                observed={"digest": live.digest(), "differences": len(failing),
                          "allowed": len(judged) - len(failing)},
                verdict="fail" if failing else "pass",
                reason=(f"{len(failing)} difference(s) not allowed, {len(judged) - len(failing)} "
                        f"allowed, from {source.subject}'s source baseline"),
            )
            out += [summary, *(_difference_result(comparer, summary, j, where) for j in judged)]
    return out
