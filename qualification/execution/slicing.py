"""The ``slice`` block of a run that qualifies one slice of a sliced job (docs/aap.md).

A job sliced K ways writes K bundles; each records ``slice {index, count, job, parent}`` in
its ``run.start``, and ``parent`` (the id they share) is what a join run
(:mod:`qualification.execution.join`) and change verification group them by. It comes from
``vqual qualify --slice INDEX/COUNT --slice-parent ID [--slice-job ID]``, from the play's
``vqual_slice`` variable, or, when neither is given and the play runs as a job of an AWX/AAP
workflow, from AWX's own variables: AWX gives a slice job no slice number or count, only its
job id and its workflow job's id (the parent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from qualification.errors import BadInputError
from qualification.evidence.kinds.run_start import slice_problem

__all__ = ["parse_slice_option", "slice_block", "slice_from_vars"]


def _id(value: Any) -> str | None:
    # AWX hands its ids over as integers; the record keeps every id as text.
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else repr(value)


def _number(value: Any) -> Any:
    # A templated playbook variable may arrive as text ("2").
    return int(value) if isinstance(value, str) and value.isdigit() else value


def slice_block(index: Any, count: Any, job: Any, parent: Any) -> dict[str, Any]:
    """The ``slice`` block, checked.

    Raises:
        BadInputError: index not in 1..count, count < 1, or a job or parent that is not a
            plain id (letters, digits, ``. _ : -``).
    """
    if parent is None or parent == "":
        raise BadInputError("slice: a slice needs its parent id (--slice-parent)")
    block = {"index": _number(index), "count": _number(count), "job": _id(job),
             "parent": _id(parent)}
    why = slice_problem(block)
    if why is not None:
        raise BadInputError(why)
    return block


def parse_slice_option(text: str) -> tuple[int, int]:
    """``INDEX/COUNT`` of ``--slice`` (``2/4``: the second of four slices).

    Raises:
        BadInputError: not INDEX/COUNT, or index not in 1..count.
    """
    found = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", text)
    if found is None:
        raise BadInputError(f"--slice {text!r}: give INDEX/COUNT, e.g. 2/4")
    index, count = int(found.group(1)), int(found.group(2))
    if count < 1 or not 1 <= index <= count:
        raise BadInputError(f"--slice {text}: index {index} is not in 1..{count}")
    return index, count


def slice_from_vars(play_vars: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``slice`` block from a play's variables, or None (not sliced).

    ``vqual_slice`` ({index, count, job, parent}; index and count may be left out) wins;
    else a job of an AWX/AAP workflow (``awx_job_id`` and ``awx_workflow_job_id``) is a
    slice of that workflow job with no index or count.

    Raises:
        BadInputError: ``vqual_slice`` is not such a mapping or its values are bad.
    """
    given = play_vars.get("vqual_slice")
    if given is not None and given != "":
        if not isinstance(given, Mapping) or not set(given) <= {"index", "count", "job", "parent"}:
            raise BadInputError(
                "vqual_slice must be a mapping of index, count, job and parent"
            )
        return slice_block(
            given.get("index"), given.get("count"), given.get("job"), given.get("parent")
        )
    job, workflow = play_vars.get("awx_job_id"), play_vars.get("awx_workflow_job_id")
    if job in (None, "") or workflow in (None, ""):
        return None
    return slice_block(None, None, job, workflow)
