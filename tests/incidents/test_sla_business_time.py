"""Business time (incidents.sla_time): weekends, time zones, DST changes and holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from incidents.sla_time import CalendarError, Hours, add_business_seconds, business_seconds

HOUR = 3600
ALL_DAY = {str(d): [["00:00", "24:00"]] for d in range(7)}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_clock_skips_the_weekend():
    new_york = Hours(tz="America/New_York")
    friday_4pm = utc(2026, 11, 20, 21)  # 16:00 EST
    assert add_business_seconds(new_york, friday_4pm, 4 * HOUR) == utc(
        2026, 11, 23, 17
    )  # Mon 12:00
    assert business_seconds(new_york, friday_4pm, utc(2026, 11, 23, 17)) == 4 * HOUR
    # Saturday and Sunday count nothing.
    assert business_seconds(new_york, utc(2026, 11, 21), utc(2026, 11, 23, 5)) == 0


def test_the_same_instant_is_due_at_different_times_in_different_time_zones():
    start = utc(2026, 6, 10, 6)  # Wednesday: 15:00 in Tokyo, 08:00 in Paris
    tokyo = Hours(tz="Asia/Tokyo")
    paris = Hours(tz="Europe/Paris")
    # Tokyo: 2 h left on Wednesday, 2 h on Thursday from 09:00 JST (00:00 UTC).
    assert add_business_seconds(tokyo, start, 4 * HOUR) == utc(2026, 6, 11, 2)
    # Paris: opens at 09:00 CEST (07:00 UTC) the same day, 4 h later is 11:00 UTC.
    assert add_business_seconds(paris, start, 4 * HOUR) == utc(2026, 6, 10, 11)


def test_business_hours_keep_their_wall_clock_across_the_spring_dst_change():
    new_york = Hours(tz="America/New_York")
    friday_1pm_est = utc(2026, 3, 6, 18)
    # 4 h on Friday (EST, UTC-5), then 4 h on Monday after the change (EDT, UTC-4): 13:00 EDT.
    assert add_business_seconds(new_york, friday_1pm_est, 8 * HOUR) == utc(2026, 3, 9, 17)


def test_a_round_the_clock_calendar_has_a_23_and_a_25_hour_day():
    clock = Hours(tz="Europe/London", week=ALL_DAY)
    spring = business_seconds(clock, utc(2026, 3, 29, 0), utc(2026, 3, 29, 23))  # BST starts
    autumn = business_seconds(clock, utc(2026, 10, 25, 0) - timedelta(hours=1), utc(2026, 10, 26))
    assert spring == 23 * HOUR
    assert autumn == 25 * HOUR
    # And the due time is an instant: 24 working hours from local midnight before the change.
    start = utc(2026, 3, 29, 0)  # 00:00 GMT
    assert add_business_seconds(clock, start, 24 * HOUR) == start + timedelta(hours=24)


def test_public_holidays_and_the_tenants_own_closed_days_are_skipped():
    us = Hours(tz="America/New_York", country="US")
    wednesday_1pm = utc(2026, 11, 25, 18)  # Thanksgiving is Thursday 26 November 2026
    assert add_business_seconds(us, wednesday_1pm, 8 * HOUR) == utc(2026, 11, 27, 18)
    closed = Hours(tz="America/New_York", country="US", closed=frozenset({date(2026, 11, 27)}))
    assert add_business_seconds(closed, wednesday_1pm, 8 * HOUR) == utc(2026, 11, 30, 18)
    # A subdivision's own holiday: Epiphany (6 January) in Bavaria, a working day in Berlin.
    bavaria = Hours(tz="Europe/Berlin", country="DE", subdivision="BY")
    berlin = Hours(tz="Europe/Berlin", country="DE", subdivision="BE")
    epiphany = (utc(2026, 1, 6, 0), utc(2026, 1, 7, 0))
    assert business_seconds(bavaria, *epiphany) == 0
    assert business_seconds(berlin, *epiphany) == 8 * HOUR


def test_split_shifts_count_only_their_intervals():
    lunch_break = Hours(tz="UTC", week={"0": [["09:00", "12:00"], ["13:00", "17:00"]]})
    monday = utc(2026, 11, 23)
    assert business_seconds(lunch_break, monday, monday + timedelta(days=1)) == 7 * HOUR
    assert add_business_seconds(lunch_break, monday, 4 * HOUR) == monday + timedelta(hours=14)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tz": "Mars/Olympus"}, "time zone"),
        ({"week": {"0": [["17:00", "09:00"]]}}, "empty"),
        ({"week": {"0": [["09:00", "13:00"], ["12:00", "17:00"]]}}, "overlap"),
        ({"week": {"0": []}}, "working time"),
        ({"week": {"8": [["09:00", "17:00"]]}}, "0-6"),
        ({"week": {"0": [["9am", "5pm"]]}}, "HH:MM"),
    ],
)
def test_a_calendar_that_cannot_work_is_refused_with_a_reason(kwargs, message):
    with pytest.raises(CalendarError, match=message):
        Hours(**kwargs)
