"""Ranges, dates and timespans as the clients read them."""

import re
from datetime import datetime

import pytest

from calor.api.wire import fmt_date, fmt_timespan, parse_timespan
from calor.domain.errors import BadRequest
from calor.domain.ranges import format_ranges, parse_ranges


def test_ranges_round_trip() -> None:
    assert parse_ranges("0-5,10,115-117") == [0, 1, 2, 3, 4, 5, 10, 115, 116, 117]
    assert format_ranges([5, 0, 1, 2, 10, 11]) == "0-2,5,10-11"
    assert format_ranges([]) == ""


@pytest.mark.parametrize("bad", ["", "5-2", "a-b", "1,,2", "-3", "0-1000000"])
def test_bad_ranges(bad: str) -> None:
    with pytest.raises(BadRequest):
        parse_ranges(bad, limit=1000)


def test_dates_have_at_most_six_digits_and_z() -> None:
    text = fmt_date(datetime(2026, 11, 28, 1, 2, 3, 456789))
    assert text == "2026-11-28T01:02:03.456789Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    assert fmt_date(None) == "0001-01-01T00:00:00Z"


def test_timespans() -> None:
    assert fmt_timespan(0) == "00:00:00"
    assert fmt_timespan(3725.9) == "01:02:05"
    assert fmt_timespan(90061) == "1.01:01:01"
    assert parse_timespan("1.01:01:01") == 90061
    assert parse_timespan("00:00:30.5000000") == 30.5
    with pytest.raises(ValueError):
        parse_timespan("soon")
