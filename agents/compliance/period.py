"""A report period: whole UTC days, from a start date to an end date, both included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.core.exceptions import ValidationError

MAX_DAYS = 366


@dataclass(frozen=True)
class Period:
    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, datetime.min.time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:  # exclusive: midnight after the last day
        return datetime.combine(self.last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)

    @property
    def key(self) -> str:
        return f"{self.first.isoformat()}..{self.last.isoformat()}"

    def __str__(self) -> str:
        return f"{self.first:%Y-%m-%d} to {self.last:%Y-%m-%d}"


def _day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(str(text).strip())
    except ValueError as exc:
        raise ValidationError({field: "Give a date as YYYY-MM-DD."}) from exc


def parse(start: str | None, end: str | None, *, today: date | None = None) -> Period:
    """From two dates (either may be empty: the last 30 days up to today)."""
    today = today or datetime.now(UTC).date()
    last = _day(end, "end") if end else today
    first = _day(start, "start") if start else last - timedelta(days=29)
    if first > last:
        raise ValidationError({"start": "The period starts after it ends."})
    if (last - first).days + 1 > MAX_DAYS:
        raise ValidationError({"end": f"A report covers at most {MAX_DAYS} days."})
    return Period(first, last)


def from_key(key: str) -> Period:
    """'2026-11-01..2026-11-30' (a run's subject id)."""
    first, sep, last = str(key).partition("..")
    if not sep:
        raise ValidationError({"subject_id": "Name the period as YYYY-MM-DD..YYYY-MM-DD."})
    return parse(first, last)
