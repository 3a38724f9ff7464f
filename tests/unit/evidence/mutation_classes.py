"""Mutation classes: named attacks on an honest change, each applied as seeded instances.

Each class is one way someone with write access to the evidence (an administrator of the
controller, an insider holding the executor's key, a buggy writer) could alter it; an
instance is one seeded choice of run, record, test, file or field. ``apply(case, rng)``
mutates the copy of the honest change in ``case`` (:mod:`mutation_testlib`) and returns the
fragments verify's problems must contain: detected means the change is invalid *and* the
mutated run, record, test or file is named, not only that something is wrong.

The classes here act on the plain honest change (``Base.build``); those of the trust root and
trusted time (a backdated trust version, a key added after the record's time, a dropped or
swapped ``timestamp`` record) are in :mod:`mutation_classes_trust` and act on the trusted
change (``Base.build_trusted``: a TSA, a two-version trust history). Every case is judged as
``vqual verify`` judges (:func:`mutation_testlib.judge`: the pinned root, the case's own copy
of the trust history).

Adding a class: write a function ``(case, rng) -> tuple[str, ...]`` that changes
``case.change`` (or ``case.state``'s trust store and history; use ``rng`` for every choice, so
an instance is reproduced by its seed) and decorate it with ``@mutation("name", "the attack
in one line")``, adding ``base="trusted"`` if it needs the trusted change.
``tests/unit/evidence/test_mutations.py`` picks up every registered class: the seeded subset
in the default run, the full sweep under ``slow``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.records import format_time
from qualification.evidence.verify import WAIVER_TYPE
from qualification.execution.recorder import records_as_dicts
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.signing.dsse import parse_envelope, sign_envelope
from qualification.signing.keys import Ed25519Signer
from qualification.verdict import overall, zero_counts
from tests.unit.evidence.evidence_testlib import SINCE, TARGETS, TESTS
from tests.unit.evidence.mutation_testlib import (
    DEVIATION,
    RUNS,
    Case,
    junit_edited,
    keep,
    reseal_files,
    resign,
    results_of,
)
from tests.unit.evidence.tamper_testlib import (
    Edit,
    cut_run_end,
    flip,
    lines_of,
    records,
    rewrite,
    sign_records,
    write_lines,
)

Apply = Callable[[Case, random.Random], tuple[str, ...]]
VERDICTS = ("pass", "fail", "error", "not-executed")


@dataclass(frozen=True)
class MutationClass:
    name: str
    attack: str
    apply: Apply
    base: str = "plain"  # or "trusted": Base.build_trusted


REGISTRY: dict[str, MutationClass] = {}


def mutation(name: str, attack: str, *, base: str = "plain") -> Callable[[Apply], Apply]:
    def register(fn: Apply) -> Apply:
        assert name not in REGISTRY, f"mutation class {name} registered twice"
        REGISTRY[name] = MutationClass(name, attack, fn, base)
        return fn

    return register


# ---------------------------------------------------------------- choices


def _cited(rng: random.Random) -> int:
    """A run a later run cites (any but the latest)."""
    return rng.randrange(len(RUNS) - 1)


def _any_run(rng: random.Random) -> int:
    return rng.randrange(len(RUNS))


def _result(case: Case, i: int, rng: random.Random, *, waived: bool = True) -> dict[str, Any]:
    rows = [r for r in results_of(case.run(i)) if waived or r["verdict"] != "waived"]
    return rng.choice(rows)


def _row(data: dict[str, Any]) -> str:
    return f"{data['test_id']} on {data['target']}"


def _line_of(case: Case, i: int, rng: random.Random, *, last: bool = False) -> int:
    """A line index of run ``i``; not its last line unless ``last`` (removing a trailing
    signature leaves a run as it was before that signature: nothing to detect)."""
    n = len(lines_of(case.run(i)))
    return rng.randrange(n if last else n - 1)


def _where(index: int) -> str:
    return f"records.jsonl line {index + 1} "


def _edit_kind(kind: str, change: Callable[[dict[str, Any]], None]) -> Edit:
    def edit(rec: dict[str, Any]) -> dict[str, Any]:
        if rec["kind"] == kind:
            change(rec["data"])
        return rec

    return edit


# ---------------------------------------------------------------- records re-signed by the executor


@mutation(
    "verdict-flipped", "a check.result's verdict changed, the run re-signed with the executor key"
)
def _verdict_flipped(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    data = _result(case, i, rng)
    to = rng.choice([v for v in VERDICTS if v != data["verdict"]])
    resign(case.run(i), case, flip(data["test_id"], data["target"], to))
    return (
        f"run {RUNS[i]}: junit.xml: test {_row(data)}",
        f"run {RUNS[i]}: report.html: test {_row(data)}",
    )


@mutation(
    "counts-edited", "one of run.end's counts changed, the run re-signed with the executor key"
)
def _counts_edited(case: Case, rng: random.Random) -> tuple[str, ...]:
    i, verdict = _any_run(rng), rng.choice([*VERDICTS, "waived"])
    delta = rng.choice([-3, -2, -1, 1, 2, 5])

    def change(d: dict[str, Any]) -> None:
        d["counts"][verdict] += delta

    resign(case.run(i), case, _edit_kind("run.end", change))
    return (f"run {RUNS[i]}: run.end: counts {verdict} is",)


@mutation("run-end-totals-edited", "run.end's planned, executed or verdict changed and re-signed")
def _totals_edited(case: Case, rng: random.Random) -> tuple[str, ...]:
    i, name = _any_run(rng), rng.choice(["planned", "executed", "verdict"])
    value: Any = (
        rng.choice(["pass", "error"]) if name == "verdict" else rng.choice([0, 3, 14, 16, 99])
    )

    def change(d: dict[str, Any]) -> None:
        d[name] = value

    resign(case.run(i), case, _edit_kind("run.end", change))
    return (f"run {RUNS[i]}: run.end: {name} is {value}",)


def _run_records(case: Case, i: int) -> list[dict[str, Any]]:
    """Run ``i``'s records without the signatures (the insider cannot sign as others)."""
    return [r for r in records(case.run(i)) if r["kind"] != "signature"]


@mutation("unplanned-result", "a check.result for a test not planned added, counts kept true")
def _unplanned(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    test_id, target = f"KVM-{rng.randrange(50, 99)}", rng.choice(TARGETS)
    verdict = rng.choice(VERDICTS)
    recs = _run_records(case, i)
    at = rng.choice([n for n, r in enumerate(recs) if r["kind"] == "check.result"])
    extra = json.loads(json.dumps(recs[at]))
    extra["data"].update(test_id=test_id, target=target, verdict=verdict, deviation=None)
    recs.insert(at + 1, extra)
    end = recs[-1]["data"]
    end["counts"][verdict] += 1
    end["executed"] += 1
    sign_records(case.run(i), case.keys.executor, recs)
    return (f"run {RUNS[i]}: junit.xml: test {test_id} on {target}",)


@mutation("planned-result-dropped", "a planned test's check.result removed, counts kept true")
def _dropped(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    data = _result(case, i, rng)

    def edit(rec: dict[str, Any]) -> dict[str, Any] | None:
        d = rec["data"]
        if rec["kind"] == "check.result" and (d["test_id"], d["target"]) == (
            data["test_id"],
            data["target"],
        ):
            return None
        if rec["kind"] == "run.end":
            d["counts"][data["verdict"]] -= 1
            d["executed"] -= 1
        return rec

    resign(case.run(i), case, edit)
    return (f"run {RUNS[i]}: junit.xml: test {_row(data)}",)


@mutation(
    "failed-results-dropped",
    "the failed results removed, counts and verdict recomputed, JUnit and report re-rendered",
)
def _failed_dropped(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    recs = _run_records(case, i)
    results = [r for r in recs if r["kind"] == "check.result" and r["data"]["verdict"] != "fail"]
    dropped = rng.sample(results, rng.randrange(3))  # and a few passed ones with them
    recs = [
        r
        for r in recs
        if not (r["kind"] == "check.result" and (r["data"]["verdict"] == "fail" or r in dropped))
    ]
    counts = zero_counts()
    for r in recs:
        if r["kind"] == "check.result":
            counts[r["data"]["verdict"]] += 1
    recs[-1]["data"].update(
        counts=counts, executed=sum(counts.values()), verdict=overall(counts).value
    )
    sign_records(case.run(i), case.keys.executor, recs)
    shown = records_as_dicts(case.run(i))
    files = {
        "junit.xml": render_junit(shown).encode(),
        "report.html": render_report(shown).encode(),
    }
    reseal_files(case.run(i), case.keys.executor, files, keep)
    return (f"run {RUNS[i]}: run.end: verdict is pass, the records give error",)


@mutation("test-id-changed", "a check.result's test id changed and the run re-signed")
def _test_id_changed(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    data = _result(case, i, rng)
    new = rng.choice([t for t in (*TESTS, "KVM-99", "HCL-02") if t != data["test_id"]])

    def change(rec: dict[str, Any]) -> dict[str, Any]:
        d = rec["data"]
        if rec["kind"] == "check.result" and (d["test_id"], d["target"]) == (
            data["test_id"],
            data["target"],
        ):
            d["test_id"] = new
        return rec

    resign(case.run(i), case, change)
    return (f"run {RUNS[i]}: junit.xml: test", f"on {data['target']}")


@mutation("prev-run-seal-changed", "run.start's prev_run_seal pointed elsewhere, the run re-signed")
def _prev_changed(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = rng.randrange(1, len(RUNS))
    other = rng.choice([f"{rng.getrandbits(256):064x}", "0" * 64])

    def change(d: dict[str, Any]) -> None:
        d["prev_run_seal"] = other

    resign(case.run(i), case, _edit_kind("run.start", change))
    return (f"run {RUNS[i]}: run.start: prev_run_seal {other[:16]} is the seal of no run",)


@mutation(
    "fingerprint-edited", "a fingerprint record's content changed, its digest left, re-signed"
)
def _fingerprint_edited(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    part = rng.choice(["guest", "identity", "generalised"])
    index = next(n for n, r in enumerate(records(case.run(i))) if r["kind"] == "fingerprint")

    def change(d: dict[str, Any]) -> None:
        d[part] = {**d[part], "edited": rng.randrange(10**6)}

    resign(case.run(i), case, _edit_kind("fingerprint", change))
    return (f"run {RUNS[i]}: {_where(index)}", "fingerprint digest")


@mutation("host-skipped-edited", "a host.skipped record's target or reason changed, re-signed")
def _skipped_edited(case: Case, rng: random.Random) -> tuple[str, ...]:
    # The latest run rewritten consistently is what "latest run not anchored" warns of.
    i = _cited(rng)
    name, value = rng.choice(
        [("target", f"kvm{rng.randrange(10, 99)}.lab"), ("reason", "unreachable")]
    )

    def change(d: dict[str, Any]) -> None:
        d[name] = value

    resign(case.run(i), case, _edit_kind("host.skipped", change))
    return (f"run {RUNS[i + 1]}: cites prev_run_seal", f"run {RUNS[i]} (the latest sealed")


@mutation(
    "cited-run-rewritten",
    "a run a later one cites re-signed with the executor key, consistent in itself",
)
def _cited_rewritten(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _cited(rng)
    data = _result(case, i, rng)
    observed = {"server": f"ntp{rng.randrange(9)}", "stratum": rng.randrange(1, 9)}

    def edit(rec: dict[str, Any]) -> dict[str, Any]:
        d = rec["data"]
        if rec["kind"] == "check.result" and (d["test_id"], d["target"]) == (
            data["test_id"],
            data["target"],
        ):
            d["observed"] = observed
        return rec

    resign(case.run(i), case, edit)
    return (f"run {RUNS[i + 1]}: cites prev_run_seal", f"run {RUNS[i]} (the latest sealed")


# ---------------------------------------------------------------- sealed files


@mutation(
    "junit-outcome-edited", "a test's outcome in junit.xml changed, manifest and run.end re-sealed"
)
def _junit_edited_cls(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    data = _result(case, i, rng, waived=False)
    to = rng.choice([v for v in VERDICTS if v != data["verdict"]])
    junit = junit_edited(
        (case.run(i) / "junit.xml").read_bytes(), data["test_id"], data["target"], to
    )
    reseal_files(case.run(i), case.keys.executor, {"junit.xml": junit}, keep)
    return (f"run {RUNS[i]}: junit.xml: test {_row(data)}",)


@mutation(
    "report-outcome-edited",
    "a row's verdict in report.html changed, manifest and run.end re-sealed",
)
def _report_edited(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    data = _result(case, i, rng)
    to = rng.choice([v for v in VERDICTS if v != data["verdict"]])
    html = (case.run(i) / "report.html").read_text()
    mark = f'data-test-id="{data["test_id"]}" data-target="{data["target"]}" data-verdict="{data["verdict"]}"'
    assert mark in html
    html = html.replace(mark, mark.rsplit("=", 1)[0] + f'="{to}"')
    reseal_files(case.run(i), case.keys.executor, {"report.html": html.encode()}, keep)
    return (f"run {RUNS[i]}: report.html: test {_row(data)}",)


def _sealed(case: Case, i: int, rng: random.Random) -> str:
    manifest = json.loads((case.run(i) / "manifest.json").read_bytes())["files"]
    return str(rng.choice(sorted(manifest)))


@mutation(
    "manifest-digest-edited",
    "a file's digest in manifest.json changed, run.end re-sealed to the manifest",
)
def _manifest_edited(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    rel = _sealed(case, i, rng)
    path = case.run(i) / "manifest.json"
    manifest = json.loads(path.read_bytes())
    manifest["files"][rel] = f"{rng.getrandbits(256):064x}"
    path.write_bytes(canonical_bytes(manifest))
    reseal_files(case.run(i), case.keys.executor, {}, keep)
    return (f"run {RUNS[i]}: {rel}: content does not match its manifest digest",)


@mutation("sealed-file-replaced", "a sealed file (JUnit, report, raw output) overwritten")
def _file_replaced(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    rel = _sealed(case, i, rng)
    data = bytearray((case.run(i) / rel).read_bytes())
    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    (case.run(i) / rel).write_bytes(bytes(data))
    return (f"run {RUNS[i]}: {rel}: content does not match its manifest digest",)


@mutation(
    "raw-output-replaced-resealed", "a raw output replaced, manifest and run.end re-sealed over it"
)
def _raw_resealed(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    rel = rng.choice(sorted(p.name for p in (case.run(i) / "raw").iterdir()))
    reseal_files(
        case.run(i),
        case.keys.executor,
        {f"raw/{rel}": b"Stratum : 1\n%d\n" % rng.randrange(10**9)},
        keep,
    )
    return (
        f"run {RUNS[i]}: records.jsonl line",
        f"raw output raw/{rel} is not sealed in the manifest",
    )


@mutation("sealed-file-deleted", "a sealed file removed")
def _file_deleted(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    rel = _sealed(case, i, rng)
    (case.run(i) / rel).unlink()
    return (f"run {RUNS[i]}: {rel}: listed in the manifest but missing",)


@mutation("file-added", "a file the seal does not list added to a run")
def _file_added(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    rel = rng.choice(
        [f"raw/{rng.getrandbits(256):064x}.txt", "notes.txt", "data/extra.csv", "spec.yaml"]
    )
    (case.run(i) / rel).parent.mkdir(parents=True, exist_ok=True)
    (case.run(i) / rel).write_bytes(b"added %d\n" % rng.randrange(10**6))
    return (f"run {RUNS[i]}: {rel}: file not listed in the manifest",)


# ---------------------------------------------------------------- lines of records.jsonl


@mutation("record-deleted", "one line of records.jsonl removed")
def _deleted(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    k = _line_of(case, i, rng)
    lines = lines_of(case.run(i))
    del lines[k]
    write_lines(case.run(i), lines)
    return (f"run {RUNS[i]}: {_where(k)}",)


@mutation("record-duplicated", "one line of records.jsonl written twice")
def _duplicated(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    k = _line_of(case, i, rng, last=True)
    lines = lines_of(case.run(i))
    lines.insert(k + 1, lines[k])
    write_lines(case.run(i), lines)
    return (f"run {RUNS[i]}: {_where(k + 1)}",)


@mutation("records-reordered", "two lines of records.jsonl swapped")
def _reordered(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    lines = lines_of(case.run(i))
    a, b = sorted(rng.sample(range(len(lines)), 2))
    lines[a], lines[b] = lines[b], lines[a]
    write_lines(case.run(i), lines)
    return (f"run {RUNS[i]}: {_where(a)}",)


@mutation(
    "record-spliced-from-another-run", "a line of another run of the change put in place of one"
)
def _spliced(case: Case, rng: random.Random) -> tuple[str, ...]:
    i, j = rng.sample(range(len(RUNS)), 2)
    mine, theirs = lines_of(case.run(i)), lines_of(case.run(j))
    k = rng.randrange(min(len(mine), len(theirs)))
    mine[k] = theirs[k]
    write_lines(case.run(i), mine)
    return (f"run {RUNS[i]}: {_where(k)}",)


@mutation(
    "run-cut-before-run-end",
    "a cited run's records cut from run.end on (a sealed run passed off as crashed)",
)
def _cut(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _cited(rng)
    cut_run_end(case.run(i))
    return (f"run {RUNS[i + 1]}: cites prev_run_seal", f"run {RUNS[i]} has no run.end")


# ---------------------------------------------------------------- signatures and keys


def _envelope(line: bytes) -> dict[str, Any]:
    return dict(json.loads(line))


@mutation("signature-byte-flipped", "one bit of a record's Ed25519 signature flipped")
def _sig_flipped(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    lines = lines_of(case.run(i))
    k = rng.randrange(len(lines))
    env = _envelope(lines[k])
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[rng.randrange(len(sig))] ^= 1 << rng.randrange(8)
    env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    lines[k] = canonical_bytes(env)
    write_lines(case.run(i), lines)
    return (f"run {RUNS[i]}: {_where(k)}", "does not verify with any key in the trust store")


@mutation("keyid-swapped", "a record envelope's keyid replaced by another trusted key's")
def _keyid_swapped(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    lines = lines_of(case.run(i))
    k = rng.randrange(len(lines))
    env = _envelope(lines[k])
    keys = case.keys
    others = [
        s.keyid
        for s in (keys.executor, keys.reviewer, keys.approver)
        if s.keyid != env["signatures"][0]["keyid"]
    ]
    env["signatures"][0]["keyid"] = rng.choice(others)
    lines[k] = canonical_bytes(env)
    write_lines(case.run(i), lines)
    return (f"run {RUNS[i]}: {_where(k)}", "does not verify with any key in the trust store")


@mutation(
    "resigned-untrusted-key", "a run rewritten and signed with a key the trust store does not hold"
)
def _untrusted(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    data = _result(case, i, rng)
    resign_with = Ed25519Signer.generate()
    rewrite(case.run(i), resign_with, flip(data["test_id"], data["target"], rng.choice(VERDICTS)))
    return (
        f"run {RUNS[i]}: {_where(0)}",
        f"signature by key {resign_with.keyid[:16]} does not verify",
    )


@mutation(
    "role-not-held",
    "a run record re-signed (chain rebuilt) by a trusted key without the executor role",
)
def _role(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    n = len([r for r in records(case.run(i)) if r["kind"] != "signature"])
    k = rng.randrange(n)
    signer = rng.choice([case.keys.reviewer, case.keys.approver])
    resign(case.run(i), case, keep, signer_at={k: signer})
    return (f"run {RUNS[i]}: {_where(k)}", f"key {signer.keyid[:16]} does not hold role executor")


@mutation(
    "time-outside-key-validity",
    "a record's time moved before its key's validity, the chain re-signed",
)
def _time_moved(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    n = len([r for r in records(case.run(i)) if r["kind"] != "signature"])
    k = rng.randrange(n)
    stamp = format_time(
        SINCE - timedelta(days=rng.randrange(1, 3000), seconds=rng.randrange(86400))
    )

    def edit(rec: dict[str, Any]) -> dict[str, Any]:
        if rec["seq"] == k:
            rec["time"] = stamp
        return rec

    resign(case.run(i), case, edit)
    return (f"run {RUNS[i]}: {_where(k)}", f"(signed {stamp})")


@mutation(
    "signature-transplanted",
    "a reviewer's signature record copied from another run after this one's seal",
)
def _transplanted(case: Case, rng: random.Random) -> tuple[str, ...]:
    src = rng.choice([0, 1])
    dst = rng.choice([j for j in range(len(RUNS)) if j != src])
    sigs = [
        ln
        for ln, r in zip(lines_of(case.run(src)), records(case.run(src)), strict=True)
        if r["kind"] == "signature"
    ]
    lines = lines_of(case.run(dst))
    lines.append(rng.choice(sigs))
    write_lines(case.run(dst), lines)
    return (f"run {RUNS[dst]}: {_where(len(lines) - 1)}",)


# ---------------------------------------------------------------- waivers


def _waiver_index(case: Case, i: int) -> int:
    return next(n for n, r in enumerate(records(case.run(i))) if r["kind"] == "deviation.waiver")


@mutation(
    "waiver-edited", "the copied waiver's deviation (justification, expiry, test) edited, re-signed"
)
def _waiver_edited(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    name, value = rng.choice(
        [
            ("justification", "approved by phone"),
            ("expiry", "2099-01-01T00:00:00.000000Z"),
            ("test_id", "KVM-01"),
            ("owner", "nobody@example.com"),
        ]
    )

    def change(d: dict[str, Any]) -> None:
        d[name] = value

    resign(case.run(i), case, _edit_kind("deviation.waiver", change))
    return (
        f"run {RUNS[i]}: {_where(_waiver_index(case, i))}",
        f"waiver {DEVIATION} does not match its signed envelope",
    )


@mutation(
    "waiver-forged",
    "the waiver's envelope re-made and signed by a key that is not a trusted approver",
)
def _waiver_forged(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    signer = rng.choice([case.keys.executor, case.keys.reviewer, Ed25519Signer.generate()])

    def change(d: dict[str, Any]) -> None:
        payload = json.loads(parse_envelope(d["envelope"].encode()).payload)
        payload.update(
            keyid=signer.keyid, time=format_time(SINCE + timedelta(days=rng.randrange(2000)))
        )
        env = sign_envelope(canonical_bytes(payload), signer, WAIVER_TYPE)
        d["envelope"] = env.to_bytes().decode()

    resign(case.run(i), case, _edit_kind("deviation.waiver", change))
    return (f"run {RUNS[i]}: waiver {DEVIATION}: {_where(_waiver_index(case, i))}",)


@mutation(
    "waiver-repointed",
    "the waived result made to name another deviation, or the waiver moved after it",
)
def _waiver_repointed(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    recs = _run_records(case, i)
    waived = next(n for n, r in enumerate(recs) if r["data"].get("verdict") == "waived")
    other = rng.choice(["DEV-002", "DEV-0", None, DEVIATION])
    if other == DEVIATION:  # the waiver moved to just after the result it waives
        recs.insert(waived, recs.pop(_waiver_index(case, i)))
        waived -= 1
    else:
        recs[waived]["data"]["deviation"] = other
    sign_records(case.run(i), case.keys.executor, recs)
    return (
        f"run {RUNS[i]}: {_where(waived)}",
        f"waived by {other!r}, which no valid waiver before it approves",
    )


@mutation(
    "waiver-for-another-result",
    "a result of another test turned waived under the run's waiver, re-signed",
)
def _waiver_misused(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    recs = _run_records(case, i)
    k = rng.choice(
        [
            n
            for n, r in enumerate(recs)
            if r["kind"] == "check.result" and r["data"]["verdict"] != "waived"
        ]
    )
    recs[k]["data"].update(verdict="waived", deviation=DEVIATION)
    sign_records(case.run(i), case.keys.executor, recs)
    return (f"run {RUNS[i]}: {_where(k)}", f"deviation {DEVIATION} is for another test or target")


@mutation("actor-changed", "a record's actor set to another trusted key's id, re-signed")
def _actor_changed(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    recs = _run_records(case, i)
    k = rng.randrange(len(recs))
    other = rng.choice([case.keys.reviewer, case.keys.approver]).keyid
    sign_records(case.run(i), case.keys.executor, recs)
    # The claimed actor differs from the key that signs; the chain after it is rebuilt.
    lines, prev = lines_of(case.run(i)), ""
    for n, rec in enumerate(records(case.run(i))):
        if n >= k:
            rec.update(prev=prev) if n > k else rec.update(actor=other)
            lines[n] = sign_envelope(canonical_bytes(rec), case.keys.executor).to_bytes()
        prev = hashlib.sha256(lines[n]).hexdigest()
    write_lines(case.run(i), lines)
    return (f"run {RUNS[i]}: {_where(k)}", f"actor {other[:16]} is not the signing key")


@mutation("record-moved-to-another-run", "a record's change or run id changed, the run re-signed")
def _ids_changed(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    recs = _run_records(case, i)
    k = rng.randrange(1, len(recs))
    name = rng.choice(["change_id", "run_id"])
    recs[k][name] = rng.choice(["CHG0009999", RUNS[(i + 1) % len(RUNS)], "x"])
    sign_records(case.run(i), case.keys.executor, recs)
    return (f"run {RUNS[i]}: {_where(k)}", f"belongs to {recs[k]['change_id']}/{recs[k]['run_id']}")


@mutation("record-after-run-end", "a run record moved after run.end, the run re-signed")
def _after_end(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _any_run(rng)
    recs = _run_records(case, i)
    k = rng.randrange(1, len(recs) - 1)
    moved = recs.pop(k)
    recs.append(moved)
    sign_records(case.run(i), case.keys.executor, recs)
    return (f"run {RUNS[i]}: {_where(len(recs) - 1)}", f"{moved['kind']} record after run.end")


@mutation("signature-meaning-changed", "a reviewer's signature record made to say approved")
def _meaning_changed(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _cited(rng)  # the runs with signatures
    lines, recs = lines_of(case.run(i)), records(case.run(i))
    k = rng.choice([n for n, r in enumerate(recs) if r["kind"] == "signature"])
    env = json.loads(lines[k])
    payload = json.loads(base64.b64decode(env["payload"]))
    payload["data"]["meaning"] = rng.choice(["approved", "reviewed", "executed"])
    if payload == recs[k]:
        payload["data"]["comment"] = "edited"
    env["payload"] = base64.b64encode(canonical_bytes(payload)).decode()
    lines[k] = canonical_bytes(env)
    write_lines(case.run(i), lines)
    return (f"run {RUNS[i]}: {_where(k)}", "does not verify")


# ---------------------------------------------------------------- whole runs of the change


@mutation("cited-run-deleted", "a run a later one cites deleted from the change")
def _run_deleted(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _cited(rng)
    shutil.rmtree(case.run(i))
    return (f"run {RUNS[i + 1]}: cites prev_run_seal", "deleted")


@mutation(
    "cited-run-replaced", "a run a later one cites replaced by another honest run of the same id"
)
def _run_replaced(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = _cited(rng)
    shutil.rmtree(case.run(i))
    shutil.copytree(case.base.spare / RUNS[i], case.run(i))
    # The stand-in cites a seal of the other change, or started after the runs it precedes.
    return (f"run {RUNS[i + 1]}: cites prev_run_seal", f"run {RUNS[i]}: ")


# The trust-root and trusted-time classes register themselves here too, so REGISTRY is whole
# wherever it is imported.
from tests.unit.evidence import mutation_classes_trust  # noqa: F401
