"""Fixtures for the report tests; the record builder lives in ``report_records``."""

from __future__ import annotations

import pytest
from report_records import RunRecords, qualification_run


@pytest.fixture
def run() -> RunRecords:
    """The standard finished run (see :func:`qualification_run`)."""
    return qualification_run()
