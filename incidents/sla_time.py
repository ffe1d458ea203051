"""Business time: how many working seconds lie between two instants, and when a number of
working seconds will have passed, under a calendar of weekly hours, a time zone and holidays.

Pure functions over a ``Hours`` value (no database), so weekends, time zones and DST changes
are tested directly. Each working interval is built in the calendar's local wall time and then
converted to UTC with ``zoneinfo`` (the standard library's IANA database), so "09:00-17:00" is
eight hours on the day clocks change, and a 24-hour day is 23 or 25 hours long then. Public
holidays come from ``holidays`` (the maintained per-country/per-subdivision calendar library);
a tenant adds its own closing days on top.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Weekday (Monday = 0) → working intervals as ("HH:MM", "HH:MM"); "24:00" ends at midnight.
DEFAULT_WEEK: dict[int, list[tuple[str, str]]] = {
    day: [("09:00", "17:00")] for day in range(5)
}  # fmt: skip
MAX_DAYS = 3 * 366  # a search never runs longer than three years of calendar days


class CalendarError(ValueError):
    """A calendar that cannot be used (bad zone, bad hours, no working time at all)."""


def _parse(text: str) -> time | None:
    """'HH:MM' → time; '24:00' → None (the end of the day)."""
    if text == "24:00":
        return None
    try:
        hours, minutes = (int(part) for part in text.split(":"))
        return time(hours, minutes)
    except (ValueError, TypeError) as exc:
        raise CalendarError(f"{text!r} is not a time of day (HH:MM)") from exc


def parse_week(raw) -> dict[int, list[tuple[time, time | None]]]:
    """Validate a week as stored (JSON: {"0": [["09:00", "17:00"]], ...})."""
    if not isinstance(raw, dict):
        raise CalendarError("Working hours must map weekdays (0 = Monday) to intervals.")
    week: dict[int, list[tuple[time, time | None]]] = {}
    for key, intervals in raw.items():
        try:
            day = int(key)
        except (TypeError, ValueError) as exc:
            raise CalendarError(f"{key!r} is not a weekday number (0-6)") from exc
        if not 0 <= day <= 6 or not isinstance(intervals, list):
            raise CalendarError(f"Weekday {key!r}: a day 0-6 (Monday = 0) with [start, end] pairs.")
        parsed = []
        for interval in intervals:
            if not isinstance(interval, (list, tuple)) or len(interval) != 2:
                raise CalendarError(f"Weekday {day}: {interval!r} is not a [start, end] pair.")
            start, end = _parse(interval[0]), _parse(interval[1])
            if start is None or (end is not None and end <= start):
                raise CalendarError(f"Weekday {day}: {interval[0]}-{interval[1]} is empty.")
            parsed.append((start, end))
        parsed.sort()
        for (_, end_a), (start_b, _) in itertools.pairwise(parsed):
            if end_a is None or end_a > start_b:
                raise CalendarError(f"Weekday {day}: intervals overlap.")
        week[day] = parsed
    if not any(week.values()):
        raise CalendarError("A calendar needs some working time in its week.")
    return week


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise CalendarError(f"{name!r} is not a known time zone (IANA name).") from exc


@functools.lru_cache(maxsize=256)
def public_holidays(country: str, subdivision: str, year: int) -> frozenset[date]:
    import holidays

    if not country:
        return frozenset()
    try:
        days = holidays.country_holidays(country, subdiv=subdivision or None, years=year)
    except NotImplementedError as exc:  # unknown country or subdivision
        raise CalendarError(f"No public holidays are known for {country} {subdivision}") from exc
    return frozenset(days.keys())


@dataclass(frozen=True)
class Hours:
    """A working calendar: weekly hours in a time zone, public holidays, extra closed days."""

    tz: str = "UTC"
    week: dict = field(default_factory=lambda: dict(DEFAULT_WEEK))
    country: str = ""
    subdivision: str = ""
    closed: frozenset[date] = frozenset()

    def __post_init__(self):
        object.__setattr__(self, "_zone", zone(self.tz))
        object.__setattr__(self, "_week", parse_week({str(k): v for k, v in self.week.items()}))

    def is_closed(self, day: date) -> bool:
        return day in self.closed or day in public_holidays(
            self.country, self.subdivision, day.year
        )

    def intervals_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's working intervals as aware UTC-comparable datetimes (DST-correct)."""
        if self.is_closed(day):
            return []
        tz = self._zone
        out = []
        for start, end in self._week.get(day.weekday(), []):
            begin = datetime.combine(day, start, tzinfo=tz)
            finish = (
                datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
                if end is None
                else datetime.combine(day, end, tzinfo=tz)
            )
            # Compare in UTC: a wall time in a DST gap or fold maps to one instant.
            out.append((_utc(begin), _utc(finish)))
        return out


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _local_day(hours: Hours, moment: datetime) -> date:
    return moment.astimezone(hours._zone).date()


def business_seconds(hours: Hours, start: datetime, end: datetime) -> float:
    """Working seconds in [start, end)."""
    if end <= start:
        return 0.0
    total = 0.0
    day = _local_day(hours, start) - timedelta(days=1)  # an interval may start the day before
    last = _local_day(hours, end)
    while day <= last:
        for begin, finish in hours.intervals_on(day):
            lo, hi = max(begin, start), min(finish, end)
            if hi > lo:
                total += (hi - lo).total_seconds()
        day += timedelta(days=1)
    return total


def add_business_seconds(hours: Hours, start: datetime, seconds: float) -> datetime:
    """The instant at which ``seconds`` of working time will have passed since ``start``."""
    remaining = max(0.0, float(seconds))
    if remaining == 0:
        return start
    day = _local_day(hours, start) - timedelta(days=1)
    for _ in range(MAX_DAYS):
        for begin, finish in hours.intervals_on(day):
            lo = max(begin, start)
            if finish <= lo:
                continue
            available = (finish - lo).total_seconds()
            if remaining <= available:
                return lo + timedelta(seconds=remaining)
            remaining -= available
        day += timedelta(days=1)
    raise CalendarError("No working time within three years: check the calendar.")
