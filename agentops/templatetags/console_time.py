"""Times as people say them: "just now", "5 minutes ago", "in 2 hours", "2 hours overdue".

Django's ``timesince`` says "0 minutes" under a minute, which the pages turned into "0 minutes
ago" and "now ago". These filters are builtins (settings TEMPLATES), so every page has them.
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.timesince import timesince, timeuntil

register = template.Library()
JUST = 60  # seconds under which a moment is "just now"


def _seconds_from_now(value) -> float | None:
    if not isinstance(value, dt.datetime):
        return None
    return (value - timezone.now()).total_seconds()


@register.filter
def ago(value) -> str:
    """A past moment: "just now", "5 minutes ago" (a future one reads "in 5 minutes")."""
    seconds = _seconds_from_now(value)
    if seconds is None:
        return ""
    if abs(seconds) < JUST:
        return "just now"
    if seconds > 0:
        return f"in {timeuntil(value, depth=1)}"
    return f"{timesince(value, depth=1)} ago"


@register.filter
def due(value) -> str:
    """A deadline: "due in 2 hours", "due now", "2 hours overdue"."""
    seconds = _seconds_from_now(value)
    if seconds is None:
        return ""
    if abs(seconds) < JUST:
        return "due now"
    if seconds > 0:
        return f"due in {timeuntil(value, depth=1)}"
    return f"{timesince(value, depth=1)} overdue"


@register.filter
def age(value) -> str:
    """How old something is: "5 minutes old", "new" under a minute."""
    seconds = _seconds_from_now(value)
    if seconds is None:
        return ""
    return "new" if abs(seconds) < JUST else f"{timesince(value, depth=1)} old"
