"""The ``slice`` block from ``--slice``, ``vqual_slice`` and AWX's variables (docs/aap.md)."""

from __future__ import annotations

from typing import Any

import pytest

from qualification.errors import BadInputError
from qualification.execution.slicing import parse_slice_option, slice_block, slice_from_vars


def test_vqual_slice_wins_and_awx_ids_become_text() -> None:
    assert slice_from_vars({"vqual_slice": {"index": "2", "count": 3, "parent": 81},
                            "awx_job_id": 12, "awx_workflow_job_id": 11}) == {
        "index": 2, "count": 3, "job": None, "parent": "81"}
    assert slice_from_vars({"awx_job_id": 12, "awx_workflow_job_id": 11}) == {
        "index": None, "count": None, "job": "12", "parent": "11"}


@pytest.mark.parametrize("play_vars", [{}, {"awx_job_id": 12}, {"vqual_slice": ""}])
def test_without_a_slice_or_a_workflow_there_is_none(play_vars: dict[str, Any]) -> None:
    assert slice_from_vars(play_vars) is None


@pytest.mark.parametrize(("play_vars", "message"), [
    ({"vqual_slice": "1/2"}, "vqual_slice must be a mapping"),
    ({"vqual_slice": {"index": 1, "count": 2, "parent": "p", "total": 2}}, "must be a mapping"),
    ({"vqual_slice": {"index": 0, "count": 2, "parent": "p"}}, "index 0 is not in 1..2"),
    ({"vqual_slice": {"index": 1, "parent": "p"}}, "must both be integers, or both null"),
    ({"vqual_slice": {"index": 1, "count": 1}}, "needs its parent id"),
    ({"vqual_slice": {"parent": "../x"}}, "is not a plain id"),
])
def test_a_bad_vqual_slice_is_one_clear_line(play_vars: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        slice_from_vars(play_vars)


def test_the_slice_option_is_index_over_count() -> None:
    assert parse_slice_option("2/4") == (2, 4)
    for bad, message in (("0/2", "not in 1..2"), ("3/2", "not in 1..2"), ("1/0", "not in 1..0"),
                         ("2", "INDEX/COUNT"), ("-1/2", "INDEX/COUNT")):
        with pytest.raises(BadInputError, match=message):
            parse_slice_option(bad)
    assert slice_block(1, 1, "j", "p") == {"index": 1, "count": 1, "job": "j", "parent": "p"}
