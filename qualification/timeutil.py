"""UTC time as vqual writes it: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""

from __future__ import annotations

from datetime import datetime, timezone


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
