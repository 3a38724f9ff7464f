"""UTC time as vqual writes it: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; and run ids, made from it."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timezone

#: The generated run id form: UTC start time and 6 hex digits.
RUN_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now_text() -> str:
    return utc_text(utc_now())


def parse_utc(text: str) -> datetime:
    """Parse a UTC time written by :func:`utc_text` (or any ISO 8601 time with an offset)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id ``YYYYMMDDTHHMMSSZ-xxxxxx`` for a run starting at ``now`` (UTC).

    Raises:
        ValueError: ``now`` is a naive datetime (its time zone is unknown).
    """
    if now is None:
        now = datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("new_run_id needs a timezone-aware datetime")
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"
