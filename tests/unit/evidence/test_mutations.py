"""Mutation testing by class (issue 13): every seeded instance of every registered mutation
class (:mod:`mutation_classes`) makes the change invalid, naming what was mutated.

The default run takes SUBSET instances of each class; the full sweep (FULL per class, marked
``slow``) runs with ``scripts/run test-slow`` or
``.venv/bin/pytest -m slow tests/unit/evidence/test_mutations.py -s`` and prints, per class,
the instances tried and detected. An instance is reproduced by its seed ``<class>/<n>``.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qualification.evidence.result import VALID
from qualification.execution.verifying import verify_command
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


def test_the_honest_change_verifies(base: Base, tmp_path: Path) -> None:
    """The control: unmutated, the change is valid (detection is not vacuous), through the
    API and through ``vqual verify``'s command."""
    judged = judge(copy_case(base, tmp_path))
    assert judged.status == VALID, judged.problems
    text, payload, code = verify_command(tmp_path / base.change.name, base.state)
    assert code == 0 and payload["status"] == VALID, text
    assert [r["status"] for r in payload["runs"]] == [VALID] * len(RUNS)
    assert [len(r["signatures"]) for r in payload["runs"]] == [2, 1, 0]


def test_the_registry_has_enough_named_classes() -> None:
    assert len(REGISTRY) >= MIN_CLASSES, sorted(REGISTRY)
    for name, cls in REGISTRY.items():
        assert cls.name == name and cls.attack.strip() and name == name.lower()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_seeded_subset_of_each_class_is_detected(base: Base, tmp_path: Path, name: str) -> None:
    misses = list(sweep(base, tmp_path, REGISTRY[name], SUBSET))
    assert not misses, "\n".join(misses)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_vqual_verify_names_the_mutation(base: Base, tmp_path: Path, name: str) -> None:
    """The CLI's answer for one instance of each class: exit 1, INVALID, and its JSON
    names what the API names."""
    case, expect = instance(base, tmp_path, REGISTRY[name], 0)
    text, payload, code = verify_command(case.change, base.state)
    assert code == 1 and text.startswith(f"{case.change}: INVALID"), text
    problems: list[Any] = list(payload["problems"])
    for run in payload["runs"]:
        problems += [f"run {run['run']}: {p}" for p in run["problems"]]
    assert missed(Judged(payload["status"], problems), expect) == [], problems


@pytest.mark.slow
def test_full_sweep_every_instance_of_every_class_is_detected(
    base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows, misses = [], []
    start = time.perf_counter()
    for name in sorted(REGISTRY):
        found = list(sweep(base, tmp_path, REGISTRY[name], FULL))
        rows.append(f"{name:34} tried {FULL:3}  detected {FULL - len(found):3}")
        misses += found
    took = time.perf_counter() - start
    total = FULL * len(REGISTRY)
    with capsys.disabled():
        print(f"\nmutation sweep: {len(REGISTRY)} classes x {FULL} instances")
        print("\n".join(rows))
        print(f"{total} instances in {took:.1f} s ({total / took:.1f} per second)")
    assert not misses, "\n".join(misses)
