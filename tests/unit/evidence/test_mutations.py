"""Mutation testing by class (issue 13): every seeded instance of every registered mutation
class (:mod:`mutation_classes`) makes the change invalid, naming what was mutated.

The default run takes SUBSET instances of each class; the full sweep (FULL per class, marked
``slow``) runs with ``scripts/run test-slow`` or
``.venv/bin/pytest -m slow tests/unit/evidence/test_mutations.py -s`` and prints, per class,
the instances tried and detected. An instance is reproduced by its seed ``<class>/<n>``.

Classes of the trust root and trusted time act on the trusted change (``Base.build_trusted``),
whose TSA is started here, in a temporary directory on port 0 (never the machine-wide lab).
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vqual_lab.tsa import TsaProcess, running_tsa

from qualification.errors import EvidenceInvalidError
from qualification.evidence.result import INVALID, VALID
from qualification.execution.verifying import verify_command
from qualification.signing.trusted_tsa import TsaEntry
from tests.unit.evidence.evidence_testlib import SINCE
from tests.unit.evidence.mutation_classes import REGISTRY, MutationClass
from tests.unit.evidence.mutation_testlib import (
    RUNS,
    Base,
    Case,
    Judged,
    copy_case,
    judge,
    missed,
)
from tests.unit.evidence.tamper_testlib import records

SUBSET = 3
FULL = 20
MIN_CLASSES = 25


def instance(base: Base, root: Path, cls: MutationClass, n: int) -> tuple[Case, tuple[str, ...]]:
    """Instance ``n`` of ``cls`` (seed ``<class>/<n>``) applied to a copy under ``root``."""
    case = copy_case(base, root / f"{cls.name}-{n}")
    return case, cls.apply(case, random.Random(f"{cls.name}/{n}"))


def sweep(base: Base, root: Path, cls: MutationClass, count: int) -> Iterator[str]:
    """Instances 0..count-1 of ``cls``: one line per instance not detected, naming its seed
    and what verify failed to say. Each copy is removed once judged."""
    for n in range(count):
        case, expect = instance(base, root, cls, n)
        judged = judge(case)
        gaps = missed(judged, expect)
        if gaps:
            yield f"{cls.name}/{n}: {'; '.join(gaps)}; problems: {judged.problems[:6]}"
        shutil.rmtree(case.change.parent)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return Base.build(tmp_path_factory.mktemp("mutation-base"))


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaProcess]:
    with running_tsa(tmp_path_factory.mktemp("tsa"), address="127.0.0.88", port=0) as proc:
        yield proc


@pytest.fixture(scope="module")
def trusted_base(tmp_path_factory: pytest.TempPathFactory, tsa: TsaProcess) -> Base:
    entry = TsaEntry("site TSA", tsa.url, tsa.ca_file.read_text(), SINCE)
    return Base.build_trusted(tmp_path_factory.mktemp("mutation-trusted"), entry)


def base_of(request: pytest.FixtureRequest, cls: MutationClass) -> Base:
    """The honest change ``cls`` acts on (built once, when a class first needs it)."""
    base: Base = request.getfixturevalue("trusted_base" if cls.base == "trusted" else "base")
    return base


@pytest.mark.parametrize("which", ["base", "trusted_base"])
def test_the_honest_change_verifies(
    request: pytest.FixtureRequest, tmp_path: Path, which: str
) -> None:
    """The control: unmutated, the change is valid (detection is not vacuous), through the
    API and through ``vqual verify``'s command; the trusted change with a token after every
    seal and signature, judged by trust-store version 1 of its two."""
    base: Base = request.getfixturevalue(which)
    case = copy_case(base, tmp_path)
    judged = judge(case)
    assert judged.status == VALID, judged.problems
    text, payload, code = verify_command(case.change, case.state)
    assert code == 0 and payload["status"] == VALID, text
    assert [r["status"] for r in payload["runs"]] == [VALID] * len(RUNS)
    assert [len(r["signatures"]) for r in payload["runs"]] == [2, 1, 0]
    if which == "trusted_base":
        assert "trust version 2" in payload["trust_root"], payload["trust_root"]
        for run in RUNS:
            kinds = [r["kind"] for r in records(case.change / run)]
            stamped = [n for n, k in enumerate(kinds) if k in ("run.end", "signature")]
            assert all(kinds[n + 1] == "timestamp" for n in stamped), kinds


def test_the_registry_has_enough_named_classes() -> None:
    assert len(REGISTRY) >= MIN_CLASSES, sorted(REGISTRY)
    for name, cls in REGISTRY.items():
        assert cls.name == name and cls.attack.strip() and name == name.lower()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_seeded_subset_of_each_class_is_detected(
    request: pytest.FixtureRequest, tmp_path: Path, name: str
) -> None:
    cls = REGISTRY[name]
    misses = list(sweep(base_of(request, cls), tmp_path, cls, SUBSET))
    assert not misses, "\n".join(misses)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_vqual_verify_names_the_mutation(
    request: pytest.FixtureRequest, tmp_path: Path, name: str
) -> None:
    """The CLI's answer for one instance of each class: exit 1, INVALID, and its JSON
    names what the API names (a trust store the pinned root does not vouch for: refused
    with one line, exit 1)."""
    case, expect = instance(base_of(request, REGISTRY[name]), tmp_path, REGISTRY[name], 0)
    try:
        text, payload, code = verify_command(case.change, case.state)
    except EvidenceInvalidError as exc:
        assert exc.exit_code == 1
        refused = Judged(INVALID, [exc.one_line()])
        assert missed(refused, expect) == [], exc.one_line()
        return
    assert code == 1 and text.startswith(f"{case.change}: INVALID"), text
    problems: list[Any] = list(payload["problems"])
    for run in payload["runs"]:
        problems += [f"run {run['run']}: {p}" for p in run["problems"]]
    assert missed(Judged(payload["status"], problems), expect) == [], problems


@pytest.mark.slow
def test_full_sweep_every_instance_of_every_class_is_detected(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows, misses = [], []
    start = time.perf_counter()
    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        found = list(sweep(base_of(request, cls), tmp_path, cls, FULL))
        rows.append(f"{name:34} tried {FULL:3}  detected {FULL - len(found):3}")
        misses += found
    took = time.perf_counter() - start
    total = FULL * len(REGISTRY)
    with capsys.disabled():
        print(f"\nmutation sweep: {len(REGISTRY)} classes x {FULL} instances")
        print("\n".join(rows))
        print(f"{total} instances in {took:.1f} s ({total / took:.1f} per second)")
    assert not misses, "\n".join(misses)
