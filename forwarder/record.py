"""Reading a CloudTrail record's loose fields: values of the expected type or None, and
CloudTrail's time formats, read tolerantly and written as ISO 8601 UTC.

Shared by the enrichment and the sinks (neither imports the other)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_time(value: object) -> datetime | None:
    """``eventTime`` and its export variants: ``2023-07-10T11:54:42Z``,
    ``2024-06-02 19:41:40.000000000``, ``2020-11-23T22:06:08.123Z``. Naive times are UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_expiration(value: object) -> datetime | None:
    """STS credentials' expiration as CloudTrail writes it (``Jan 7, 2026, 11:00:00 AM``, UTC) or ISO."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, "%b %d, %Y, %I:%M:%S %p").replace(tzinfo=UTC)
    except ValueError:
        return parse_time(value)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def epoch(value: object) -> float | None:
    moment = parse_time(value)
    return moment.timestamp() if moment else None
