"""Time helpers: the one place that turns text into instants and back.

The engine counts in integer milliseconds since the Unix epoch (UTC): exact,
cheap to compare, and immune to wall-clock arithmetic across DST. Aware
``datetime`` objects and ISO strings exist only at the edges.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DURATION = re.compile(r"^\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")


def parse_duration(text: str | int | float) -> int:
    """``"90s"``, ``"5m"``, ``"1h30m"`` (or a number of seconds) → milliseconds.

    Raises ValueError with a message suitable for a planner.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like 90s, 5m or 1h, got {text!r}")
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError(f"a duration cannot be negative, got {text!r}")
        return int(round(text * 1000))
    if not isinstance(text, str):
        raise ValueError(f"expected a duration like 90s, 5m or 1h, got {text!r}")
    m = _DURATION.match(text)
    if not m or not any(m.groups()):
        raise ValueError(f"expected a duration like 90s, 5m or 1h, got {text!r}")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return ((h * 60 + mi) * 60 + s) * 1000


def format_duration(ms: int) -> str:
    """Milliseconds → compact human text (``1h05m``, ``4m30s``, ``12s``)."""
    s = int(ms // 1000)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def to_ms(dt: datetime) -> int:
    """Aware datetime → epoch milliseconds (naive datetimes are taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds → aware UTC datetime."""
    return EPOCH + timedelta(milliseconds=ms)


def parse_instant(text: str) -> datetime:
    """ISO-8601 text → aware UTC datetime. Accepts ``Z``; naive text is UTC.

    Raises ValueError on anything else.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected an ISO-8601 time, got {text!r}")
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"expected an ISO-8601 time, got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def parse_instant_ms(text: str) -> int:
    return to_ms(parse_instant(text))


def iso(ms_or_dt: int | datetime | None) -> str | None:
    """Epoch ms or datetime → ``2026-11-25T14:03:07.120Z`` (None stays None)."""
    if ms_or_dt is None:
        return None
    dt = from_ms(ms_or_dt) if isinstance(ms_or_dt, int) else ms_or_dt.astimezone(UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond // 1000:03d}"
    return text + "Z"


def parse_date(text: str | date) -> date:
    """``YYYY-MM-DD`` → date, or ValueError naming what was expected."""
    if isinstance(text, datetime):
        return text.date()
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def zone(name: str) -> ZoneInfo:
    """IANA zone name → ZoneInfo, or ValueError saying the zone is unknown."""
    if not isinstance(name, str) or not name or len(name) > 100:
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Europe/Paris)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Europe/Paris)") from None


def local_midnight_ms(day: date, tz: ZoneInfo) -> int:
    """The UTC instant at which ``day`` begins in ``tz``."""
    return to_ms(datetime(day.year, day.month, day.day, tzinfo=tz))


def local_date(ms: int, tz: ZoneInfo) -> date:
    return from_ms(ms).astimezone(tz).date()
