"""Reading the rollups: the dashboard's figures, its charts' series, their CSV and the API all
come from ``figures(...)``, so every place shows the same numbers. Three queries over at most
(days x queues) + (days x blueprints) + days rows, whatever the number of tickets."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Sum

from incidents.analytics.models import (
    LATENCY_BUCKETS_MS,
    DailyAgentStat,
    DailyApprovalStat,
    DailyTicketStat,
)
from incidents.analytics.rollups import today

PERIODS = {"7": 7, "30": 30, "90": 90, "365": 365}
DEFAULT_PERIOD = "30"

# The charts: key → (title, the columns of its table/CSV).
CHARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "volume": (
        "Tickets opened and resolved, and the backlog",
        ("day", "opened", "resolved", "backlog"),
    ),
    "sla": ("SLA: tickets due and breached", ("day", "due", "breached", "attainment_pct")),
    "mttr": ("Mean time to resolve (hours)", ("day", "resolved", "mttr_hours")),
    "rates": (
        "Auto-resolution and escalation rates (%)",
        ("day", "auto_resolution_pct", "escalation_pct"),
    ),
    "approvals": (
        "Approval SLA attainment (%)",
        ("day", "decided", "within_sla", "attainment_pct"),
    ),
    "agents": (
        "Agent performance by blueprint",
        ("blueprint", "runs", "succeeded", "success_pct", "p95_step_ms", "tokens", "cost_usd"),
    ),
    "csat": ("Customer satisfaction (1-5)", ("day", "ratings", "average")),
}


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _p95(hist: list[int]) -> int | None:
    """The 95th percentile step latency from merged bucket counts (the bucket's upper bound)."""
    total = sum(hist)
    if not total:
        return None
    running = 0
    for index, count in enumerate(hist):
        running += count
        if running >= 0.95 * total:
            bounds = LATENCY_BUCKETS_MS
            return bounds[index] if index < len(bounds) else bounds[-1] * 2
    return None


@dataclass
class Figures:
    period_days: int
    bucket: str  # "day" or "week" (each row's day is the week's Monday)
    start: dt.date
    end: dt.date
    queue_ref: int | None
    kpis: dict = field(default_factory=dict)
    tables: dict[str, list[dict]] = field(default_factory=dict)
    refreshed_at: dt.datetime | None = None


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def _ticket_rows(tenant, start, end, queue_ref) -> dict[dt.date, dict]:
    rows = DailyTicketStat.objects.for_tenant(tenant).filter(day__gte=start, day__lte=end)
    if queue_ref is not None:
        rows = rows.filter(queue_ref=queue_ref)
    sums = {
        name: Sum(name)
        for name in (
            "opened",
            "escalated",
            "resolved",
            "auto_resolved",
            "resolve_seconds",
            "cancelled",
            "sla_due",
            "sla_breached",
            "csat_count",
            "csat_sum",
            "backlog",
        )
    }
    return {row["day"]: row for row in rows.values("day").annotate(**sums).order_by("day")}


SUMMED = (
    "opened",
    "escalated",
    "resolved",
    "auto_resolved",
    "resolve_seconds",
    "cancelled",
    "sla_due",
    "sla_breached",
    "csat_count",
    "csat_sum",
)
# Periods longer than this are charted by week (Monday), so a year is 53 points, not 365.
DAILY_UP_TO = 31


def _buckets(days: list[dt.date]) -> list[tuple[dt.date, list[dt.date]]]:
    """(label, its days): one per day, or per ISO week for long periods."""
    if len(days) <= DAILY_UP_TO:
        return [(day, [day]) for day in days]
    weeks: dict[dt.date, list[dt.date]] = {}
    for day in days:
        weeks.setdefault(day - dt.timedelta(days=day.weekday()), []).append(day)
    return list(weeks.items())


def _bucket_sums(by_day: dict, approvals: dict, days: list[dt.date]) -> dict:
    sums = dict.fromkeys(SUMMED, 0)
    for day in days:
        row = by_day.get(day) or {}
        for name in SUMMED:
            sums[name] += row.get(name) or 0
    last = by_day.get(days[-1]) or {}
    sums["backlog"] = last.get("backlog") or 0  # a level, not a flow: the end of the bucket
    found = [approvals[d] for d in days if d in approvals]
    sums["decided"] = sum(a.decided for a in found)
    sums["within_sla"] = sum(a.within_sla for a in found)
    return sums


def _daily_tables(by_day: dict, approvals: dict, days: list[dt.date]) -> dict[str, list[dict]]:
    tables: dict[str, list[dict]] = {
        k: [] for k in ("volume", "sla", "mttr", "rates", "approvals", "csat")
    }
    for label, bucket in _buckets(days):
        g = _bucket_sums(by_day, approvals, bucket)
        iso = label.isoformat()
        tables["volume"].append(
            {"day": iso, "opened": g["opened"], "resolved": g["resolved"], "backlog": g["backlog"]}
        )
        tables["sla"].append(
            {
                "day": iso,
                "due": g["sla_due"],
                "breached": g["sla_breached"],
                "attainment_pct": _pct(g["sla_due"] - g["sla_breached"], g["sla_due"]),
            }
        )
        mttr = round(g["resolve_seconds"] / g["resolved"] / 3600, 2) if g["resolved"] else None
        tables["mttr"].append({"day": iso, "resolved": g["resolved"], "mttr_hours": mttr})
        tables["rates"].append(
            {
                "day": iso,
                "auto_resolution_pct": _pct(g["auto_resolved"], g["resolved"]),
                "escalation_pct": _pct(g["escalated"], g["opened"]),
            }
        )
        tables["approvals"].append(
            {
                "day": iso,
                "decided": g["decided"],
                "within_sla": g["within_sla"],
                "attainment_pct": _pct(g["within_sla"], g["decided"]),
            }
        )
        avg = round(g["csat_sum"] / g["csat_count"], 2) if g["csat_count"] else None
        tables["csat"].append({"day": iso, "ratings": g["csat_count"], "average": avg})
    return tables


def _agent_table(tenant, start, end) -> list[dict]:
    merged: dict[str, dict] = {}
    rows = DailyAgentStat.objects.for_tenant(tenant).filter(day__gte=start, day__lte=end)
    for row in rows:
        m = merged.setdefault(
            row.agent_name,
            {
                "runs": 0,
                "succeeded": 0,
                "tokens": 0,
                "cost": Decimal(0),
                "hist": [0] * (len(LATENCY_BUCKETS_MS) + 1),
            },
        )
        m["runs"] += row.runs
        m["succeeded"] += row.succeeded
        m["tokens"] += row.tokens
        m["cost"] += row.cost_usd
        for i, n in enumerate(row.latency_hist or []):
            if i < len(m["hist"]):
                m["hist"][i] += n
    return [
        {
            "blueprint": name,
            "runs": m["runs"],
            "succeeded": m["succeeded"],
            "success_pct": _pct(m["succeeded"], m["runs"]),
            "p95_step_ms": _p95(m["hist"]),
            "tokens": m["tokens"],
            "cost_usd": float(round(m["cost"], 4)),
        }
        for name, m in sorted(merged.items(), key=lambda item: -item[1]["runs"])
    ]


def _kpis(tables: dict, by_day: dict, approvals: dict) -> dict:
    total = lambda name: sum((r.get(name) or 0) for r in by_day.values())  # noqa: E731
    decided = sum(a.decided for a in approvals.values())
    within = sum(a.within_sla for a in approvals.values())
    last = tables["volume"][-1] if tables["volume"] else {"backlog": 0}
    return {
        "opened": total("opened"),
        "resolved": total("resolved"),
        "mttr_hours": round(total("resolve_seconds") / total("resolved") / 3600, 1)
        if total("resolved")
        else None,
        "auto_resolution_pct": _pct(total("auto_resolved"), total("resolved")),
        "escalation_pct": _pct(total("escalated"), total("opened")),
        "sla_breached": total("sla_breached"),
        "sla_attainment_pct": _pct(total("sla_due") - total("sla_breached"), total("sla_due")),
        "approval_sla_pct": _pct(within, decided),
        "approvals_decided": decided,
        "csat_average": round(total("csat_sum") / total("csat_count"), 2)
        if total("csat_count")
        else None,
        "csat_ratings": total("csat_count"),
        "backlog": last["backlog"],
    }


def figures(tenant, *, period: str = DEFAULT_PERIOD, queue_ref: int | None = None) -> Figures:
    """Everything the dashboard shows for ``period`` days up to today, one queue or all."""
    days_count = PERIODS.get(period, PERIODS[DEFAULT_PERIOD])
    end = today()
    start = end - dt.timedelta(days=days_count - 1)
    days = _days(start, end)
    by_day = _ticket_rows(tenant, start, end, queue_ref)
    approvals = {
        a.day: a
        for a in DailyApprovalStat.objects.for_tenant(tenant).filter(day__gte=start, day__lte=end)
    }
    tables = _daily_tables(by_day, approvals, days)
    tables["agents"] = _agent_table(tenant, start, end)
    return Figures(
        period_days=days_count,
        bucket="day" if days_count <= DAILY_UP_TO else "week",
        start=start,
        end=end,
        queue_ref=queue_ref,
        kpis=_kpis(tables, by_day, approvals),
        tables=tables,
    )
