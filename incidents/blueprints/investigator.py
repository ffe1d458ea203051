"""The offline investigator: how a careful on-call engineer works a stated goal, in code.

Used by the investigation blueprint when no model key is set (Claude plans when one is). It
reads the goal for the services and the time window it names, looks at every service's error
rate when none is named, drills into the ones that spiked (error logs, traces, latency), and
turns what it saw into findings, each citing the observations behind it.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_WINDOW = 60  # minutes, when the goal names none
MAX_SERVICES = 6  # error rates read in the first pass
MAX_DRILL = 2  # spiking services looked at closely
SPIKE_RATE = 0.05  # an error rate at or above this is a problem whatever the baseline
SPIKE_CHANGE_PCT = 100.0  # …or a doubling against the start of the window, once over 2 %
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "six": 6, "twelve": 12}
UNITS = {"m": 1, "min": 1, "minute": 1, "h": 60, "hr": 60, "hour": 60, "d": 1440, "day": 1440}
WINDOW_RE = re.compile(
    r"\b(?:last|past|previous|recent)\s+(?:(\d{1,4}|an?|one|two|three|four|six|twelve)\s*)?"
    r"(minutes?|mins?|m|hours?|hrs?|h|days?|d)\b",
    re.IGNORECASE,
)
TICKET_RE = re.compile(
    r"\b(open|create|file|raise|log|cut)\b[^.]{0,40}\b(ticket|incident)s?\b"
    r"|\b(ticket|incident)s?\b[^.]{0,20}\bif (needed|necessary|warranted|required)\b",
    re.IGNORECASE,
)


def window_minutes(goal: str) -> int:
    """The time window the goal names ("last 2 hours", "past day"), in minutes (5 … 1440)."""
    match = WINDOW_RE.search(goal)
    if match is None:
        return DEFAULT_WINDOW
    count = match.group(1)
    amount = NUMBERS.get(count.lower(), 0) if count and not count.isdigit() else int(count or 1)
    unit = match.group(2).lower().rstrip("s")
    minutes = amount * UNITS.get(unit, UNITS.get(unit[:1], 1))
    return max(5, min(1440, minutes))


def named_services(goal: str, known: list[str]) -> list[str]:
    """Known services the goal names as words (case-insensitive), in the goal's order."""
    lower = goal.lower()
    found = [(m.start(), s) for s in known if (m := re.search(rf"\b{re.escape(s)}\b", lower))]
    return [s for _, s in sorted(found)]


def wants_ticket(goal: str) -> bool:
    return bool(TICKET_RE.search(goal))


def spike(observation: dict[str, Any]) -> bool:
    """An error-rate reading that a person should look at."""
    data = observation.get("data") or {}
    if not observation.get("ok") or data.get("metric") != "error_rate" or not data.get("count"):
        return False
    latest, peak = float(data.get("latest") or 0), float(data.get("max") or 0)
    change = float(data.get("change_pct") or 0)
    return latest >= SPIKE_RATE or (peak >= 0.02 and change >= SPIKE_CHANGE_PCT)


def findings(observations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the observations show, one finding per spiking service (or one all-clear)."""
    rates = [o for o in observations if (o.get("data") or {}).get("metric") == "error_rate"]
    spiking = [o for o in rates if spike(o)]
    result = []
    for rate in spiking:
        service = rate["data"]["service"]
        about = [o for o in observations if (o.get("data") or {}).get("service") == service]
        evidence = [rate["id"]] + [o["id"] for o in about if o is not rate and o.get("ok")]
        detail = [rate["summary"]]
        detail += [o["summary"] for o in about if o is not rate and o.get("ok")]
        errors = _top_error(about)
        if errors:
            detail.append(f"Most frequent error: {errors}")
        severity = "critical" if float(rate["data"].get("latest") or 0) >= 0.25 else "high"
        result.append(
            {
                "title": f"{service}: error rate spiked to {float(rate['data']['max']):.1%}",
                "detail": " ".join(detail)[:2000],
                "severity": severity,
                "evidence": evidence[:20],
            }
        )
    if not result and rates:
        result.append(
            {
                "title": "No error spike found",
                "detail": " ".join(o["summary"] for o in rates)[:2000],
                "severity": "info",
                "evidence": [o["id"] for o in rates][:20],
            }
        )
    return result


def _top_error(observations: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for obs in observations:
        for line in (obs.get("data") or {}).get("lines") or []:
            if line.get("level") in ("error", "critical"):
                counts[line.get("message", "")] = counts.get(line.get("message", ""), 0) + 1
        for trace in (obs.get("data") or {}).get("failing") or []:
            if trace.get("first_error"):
                counts[trace["first_error"]] = counts.get(trace["first_error"], 0) + 1
    return max(counts, key=counts.get)[:300] if counts else ""
