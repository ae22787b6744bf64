"""Dates and timespans as the Qarnot clients parse them (contract §10)."""

from datetime import datetime

NOT_ENDED = "0001-01-01T00:00:00Z"


def fmt_date(value: datetime | None) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ``: at most 6 fractional digits and a Z, never +00:00."""
    if value is None:
        return NOT_ENDED
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fmt_timespan(seconds: float) -> str:
    """``hh:mm:ss`` or ``d.hh:mm:ss`` without fractions (the SDK misreads fractions)."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    core = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}.{core}" if days else core


def parse_timespan(text: str) -> float:
    """Inverse of fmt_timespan, also accepting .NET fractions; raises ValueError."""
    days = 0
    body = text.strip()
    head, sep, tail = body.partition(":")
    if not sep:
        raise ValueError(text)
    if "." in head:
        d, _, h = head.partition(".")
        days, head = int(d), h
    parts = [head, *tail.split(":")]
    if len(parts) != 3:
        raise ValueError(text)
    hours, minutes, secs = int(parts[0]), int(parts[1]), float(parts[2])
    if hours < 0 or minutes < 0 or secs < 0 or minutes > 59 or secs >= 60:
        raise ValueError(text)
    return days * 86400 + hours * 3600 + minutes * 60 + secs
