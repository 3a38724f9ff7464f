"""The rolling-patch journal: durable lines, a cut last line, replay over a resume chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qualification.errors import BadInputError
from qualification.rollout.journal import (
    STEPS,
    Journal,
    journal_chain,
    journal_path,
    read_journal,
    replay,
)


def _begin(j: Journal, run_id: str, resumed_from: str | None = None) -> None:
    j.append("run.begin", run_id=run_id, change_id="CHG0000001", resumed_from=resumed_from)


def test_each_append_is_one_line_on_disk_before_it_returns(tmp_path: Path) -> None:
    seen: list[int] = []

    def on_append(index: int) -> None:
        # The hook runs after the line is durable: the file already holds index + 1 lines.
        seen.append(len(journal_path(tmp_path, "R1").read_bytes().splitlines()) - 1)
        assert seen[-1] == index

    j = Journal.create(tmp_path, "R1", on_append=on_append)
    _begin(j, "R1")
    j.append("step.begin", host="h1", step="recheck")
    j.close()
    assert seen == [0, 1]
    events = read_journal(journal_path(tmp_path, "R1"))
    assert [e["event"] for e in events] == ["run.begin", "step.begin"]
    assert events[1]["host"] == "h1" and events[1]["time"].endswith("Z")


def test_a_second_journal_for_the_same_run_is_refused(tmp_path: Path) -> None:
    Journal.create(tmp_path, "R1").close()
    with pytest.raises(BadInputError, match="exists"):
        Journal.create(tmp_path, "R1")


def test_unknown_event_is_refused(tmp_path: Path) -> None:
    j = Journal.create(tmp_path, "R1")
    with pytest.raises(BadInputError, match="unknown journal event"):
        j.append("step.maybe", host="h1")


def test_a_cut_last_line_is_dropped_and_an_inner_bad_line_refused(tmp_path: Path) -> None:
    j = Journal.create(tmp_path, "R1")
    _begin(j, "R1")
    j.append("step.begin", host="h1", step="recheck")
    j.close()
    path = journal_path(tmp_path, "R1")
    with path.open("ab") as f:
        f.write(b'{"event":"step.done","ho')  # crash mid-write
    assert [e["event"] for e in read_journal(path)] == ["run.begin", "step.begin"]
    lines = path.read_bytes().split(b"\n")
    lines[1] = b"garbage"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(BadInputError, match=r"R1.jsonl:2"):
        read_journal(path)


def test_replay_follows_the_resume_chain(tmp_path: Path) -> None:
    a = Journal.create(tmp_path, "A")
    _begin(a, "A")
    for step in STEPS:
        a.append("step.begin", host="h1", step=step)
        a.append("step.done", host="h1", step=step)
    a.append("host.committed", host="h1")
    a.append("step.begin", host="h2", step="recheck")
    a.append("step.done", host="h2", step="recheck")
    a.append("step.begin", host="h2", step="stop_placements")
    a.close()  # crash: no run.done / run.halted
    b = Journal.create(tmp_path, "B")
    _begin(b, "B", resumed_from="A")
    b.append("step.done", host="h2", step="stop_placements")
    b.append("step.begin", host="h2", step="evacuate")
    b.close()
    chain = journal_chain(tmp_path, "B")
    assert [c[0]["run_id"] for c in chain] == ["A", "B"]
    state = replay(chain)
    assert state.committed == ["h1"]
    h2 = state.progress("h2")
    assert h2.done == ["recheck", "stop_placements"]
    assert STEPS[h2.last_done_index] == "stop_placements"
    assert "evacuate" in h2.begun and not h2.in_maintenance_by_run
    assert not state.ended_cleanly


def test_maintenance_is_explained_only_between_enter_and_leave(tmp_path: Path) -> None:
    j = Journal.create(tmp_path, "A")
    _begin(j, "A")
    j.append("step.begin", host="h1", step="enter_maintenance")
    j.close()
    assert replay(journal_chain(tmp_path, "A")).progress("h1").in_maintenance_by_run
    j = Journal.create(tmp_path, "B")
    _begin(j, "B", resumed_from="A")
    j.append("step.begin", host="h1", step="leave_maintenance")
    j.append("step.done", host="h1", step="leave_maintenance")
    j.append("run.done", run_id="B")
    j.close()
    state = replay(journal_chain(tmp_path, "B"))
    assert not state.progress("h1").in_maintenance_by_run
    assert state.finished


def test_a_looping_chain_is_refused(tmp_path: Path) -> None:
    for run, prev in (("A", "B"), ("B", "A")):
        path = journal_path(tmp_path, run)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"event": "run.begin", "run_id": run, "resumed_from": prev}) + "\n")
    with pytest.raises(BadInputError, match="loops"):
        journal_chain(tmp_path, "A")


def test_a_skipped_host_is_marked_so_a_resume_does_not_take_it_up(tmp_path: Path) -> None:
    j = Journal.create(tmp_path, "A")
    _begin(j, "A")
    j.append("step.begin", host="h1", step="recheck")
    j.append("step.done", host="h1", step="recheck", at_target=True)
    j.append("host.skipped", host="h1", reason="already at the target")
    j.close()
    h1 = replay(journal_chain(tmp_path, "A")).progress("h1")
    assert h1.skipped and not h1.committed
