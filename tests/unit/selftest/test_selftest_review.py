"""ST-OQ-29 (VQ-68): the run summary escapes hostile target data and names each failure's
reason, as `vqual selftest` checks it; the check fails when the summary does not escape."""

from __future__ import annotations

import pytest

from qualification.reports import summary
from qualification.selftest import review_summary
from qualification.selftest.run import self_checks


def _check() -> object:
    (check,) = [c for c in self_checks(None, lambda: None) if c.test_id == "ST-OQ-29"]  # type: ignore[arg-type,return-value]
    return check


def test_the_check_holds() -> None:
    outcome = _check().run()  # type: ignore[attr-defined]
    assert outcome.ok, outcome.reason
    assert outcome.observed["markup from the target"] == []


def test_the_check_fails_when_the_summary_does_not_escape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A summary that would show markup: the fragment is rendered without escaping.
    real = summary.render_summary

    def unescaped(records: object, **kwargs: object) -> str:
        import html

        return html.unescape(real(records, **kwargs))  # type: ignore[arg-type]

    monkeypatch.setattr(review_summary, "render_summary", unescaped)
    outcome = _check().run()  # type: ignore[attr-defined]
    assert not outcome.ok and "<script" in outcome.observed["markup from the target"]
