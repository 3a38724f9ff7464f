"""The rolling patch's steps as data: the table's order and resume flags, and its version."""

from __future__ import annotations

from qualification.rollout import journal, steps
from qualification.rollout.steps import STEP_TABLE, STEPS, STEPS_VERSION

# The table as version 1 defines it: (name, re-runs on resume). A change here changes what
# a journal's steps mean, so it goes with a new STEPS_VERSION (docs/formats.md).
VERSION_1 = (
    ("recheck", True),
    ("stop_placements", True),
    ("evacuate", False),
    ("verify_empty", False),
    ("enter_maintenance", False),
    ("patch", False),
    ("reboot", True),
    ("requalify", True),
    ("leave_maintenance", False),
    ("health_check", True),
    ("commit", True),
)


def test_the_table_is_version_1_in_order_with_its_resume_flags() -> None:
    assert STEPS_VERSION == 1, "a new steps version: pin its table here"
    assert tuple((s.name, s.rerun_on_resume) for s in STEP_TABLE) == VERSION_1, (
        "the step table changed: give it a new STEPS_VERSION"
    )


def test_the_names_come_from_the_table_and_the_journal_uses_them() -> None:
    assert STEPS == tuple(name for name, _ in VERSION_1)
    assert journal.STEPS is STEPS
    assert len(set(STEPS)) == len(STEPS)


def test_each_step_has_its_own_action_and_a_post_condition() -> None:
    actions = [s.action for s in STEP_TABLE]
    assert len(set(actions)) == len(actions)
    for step in STEP_TABLE:
        assert step.action is getattr(steps, step.name), step.name
        assert callable(step.post)
    # Steps whose post-condition is read from the platform never re-run on a resume that
    # finds it holding; steps with nothing to read back always re-run.
    for step in STEP_TABLE:
        if step.post is steps.nothing_to_read:
            assert step.rerun_on_resume, step.name
