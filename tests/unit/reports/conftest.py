"""Fixtures for the report tests; the record builder lives in ``reports_testlib``."""

from __future__ import annotations

import pytest

from tests.unit.reports.reports_testlib import RunRecords, qualification_run


@pytest.fixture
def run() -> RunRecords:
    """The standard finished run (see :func:`qualification_run`)."""
    return qualification_run()
