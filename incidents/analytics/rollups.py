"""Keeping the daily rollups up to date.

``refresh_recent(tenant)`` (beat, every few minutes) recomputes the last days from the rows of
those days only, through the indexes on created_at / resolved_at / sla_due / csat_at /
updated_at: its cost follows a day's volume, not the table's size. ``rebuild(tenant, since)``
backfills history (``manage.py rebuild_analytics``). Both are safe to run twice and at the same
time: a day is replaced in one transaction under a per-tenant advisory lock.

Backlog is the open tickets at the end of each day: today's is counted (the index on status),
and each earlier day's follows backwards: backlog(d-1) = backlog(d) - opened(d) + resolved(d) +
cancelled(d).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections import defaultdict

from django.db import connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone

from agents.models import Run, RunStatus, Step
from approvals.models import ApprovalRequest
from incidents.analytics.models import (
    LATENCY_BUCKETS_MS,
    DailyAgentStat,
    DailyApprovalStat,
    DailyTicketStat,
)
from incidents.models import OPEN_STATUSES, Status, Ticket

LOCK_NAMESPACE = 0x414E4C59  # "ANLY": the second key is the tenant id
TICKET_COUNTS = (
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


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The day's start and end in the site's time zone (TIME_ZONE), as aware datetimes."""
    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    return start, start + dt.timedelta(days=1)


def today() -> dt.date:
    return timezone.localdate()


def _lock(tenant) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, tenant.pk])


def _merge(into: dict, rows, fields: dict[str, str]) -> None:
    """Add grouped ``rows`` ({"queue": id, name: n, ...}) to ``into[queue_ref][field]``."""
    for row in rows:
        counts = into[row["queue"] or 0]
        for field, key in fields.items():
            value = row[key] or 0
            counts[field] += (
                int(value.total_seconds()) if isinstance(value, dt.timedelta) else value
            )


def ticket_counts(tenant, day: dt.date) -> dict[int, dict[str, int]]:
    """The day's ticket counts per queue (six grouped queries, each over one day's rows)."""
    start, end = day_bounds(day)
    tickets = Ticket.objects.for_tenant(tenant)
    found: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(TICKET_COUNTS, 0))
    escalated = Q(triage_decision="human") | Q(status=Status.ESCALATED)
    _merge(
        found,
        tickets.filter(created_at__gte=start, created_at__lt=end)
        .values("queue")
        .annotate(n=Count("pk"), e=Count("pk", filter=escalated)),
        {"opened": "n", "escalated": "e"},
    )
    took = ExpressionWrapper(F("resolved_at") - F("created_at"), output_field=DurationField())
    auto = Q(triage_decision="auto_resolve", assignee__isnull=True)
    _merge(
        found,
        tickets.filter(resolved_at__gte=start, resolved_at__lt=end)
        .values("queue")
        .annotate(n=Count("pk"), a=Count("pk", filter=auto), s=Sum(took)),
        {"resolved": "n", "auto_resolved": "a", "resolve_seconds": "s"},
    )
    _merge(
        found,
        tickets.filter(status=Status.CANCELLED, updated_at__gte=start, updated_at__lt=end)
        .values("queue")
        .annotate(n=Count("pk")),
        {"cancelled": "n"},
    )
    late = Q(sla_breached=True) | Q(resolved_at__gt=F("sla_due"))
    _merge(
        found,
        tickets.filter(sla_due__gte=start, sla_due__lt=end)
        .values("queue")
        .annotate(n=Count("pk"), b=Count("pk", filter=late)),
        {"sla_due": "n", "sla_breached": "b"},
    )
    _merge(
        found,
        tickets.filter(csat_at__gte=start, csat_at__lt=end, csat_score__isnull=False)
        .values("queue")
        .annotate(n=Count("pk"), s=Sum("csat_score")),
        {"csat_count": "n", "csat_sum": "s"},
    )
    return found


def open_now(tenant) -> dict[int, int]:
    rows = (
        Ticket.objects.for_tenant(tenant)
        .filter(status__in=sorted(OPEN_STATUSES))
        .values("queue")
        .annotate(n=Count("pk"))
    )
    return {row["queue"] or 0: row["n"] for row in rows}


def agent_counts(tenant, day: dt.date) -> list[DailyAgentStat]:
    """The day's runs per blueprint, with a step latency histogram (two queries)."""
    start, end = day_bounds(day)
    runs = Run.objects.for_tenant(tenant).filter(created_at__gte=start, created_at__lt=end)
    by_agent = {
        row["agent_name"]: row
        for row in runs.values("agent_name").annotate(
            runs=Count("pk"),
            succeeded=Count("pk", filter=Q(status=RunStatus.SUCCEEDED)),
            failed=Count("pk", filter=Q(status=RunStatus.FAILED)),
            escalated=Count("pk", filter=Q(status=RunStatus.ESCALATED)),
            tokens=Sum(F("tokens_prompt") + F("tokens_completion")),
            cost=Sum("total_cost_usd"),
        )
    }
    hist: dict[str, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    steps = (
        Step.objects.for_tenant(tenant)
        .filter(run__in=runs)
        .values_list("run__agent_name", "latency_ms")
    )
    for agent_name, latency in steps.iterator(chunk_size=5000):
        hist[agent_name][bisect_left(LATENCY_BUCKETS_MS, latency or 0)] += 1
    return [
        DailyAgentStat(
            tenant=tenant,
            day=day,
            agent_name=name,
            runs=row["runs"],
            succeeded=row["succeeded"],
            failed=row["failed"],
            escalated=row["escalated"],
            steps=sum(hist[name]),
            latency_hist=hist[name],
            tokens=row["tokens"] or 0,
            cost_usd=row["cost"] or 0,
        )
        for name, row in by_agent.items()
    ]


def approval_counts(tenant, day: dt.date) -> DailyApprovalStat:
    start, end = day_bounds(day)
    took = ExpressionWrapper(F("decided_at") - F("created_at"), output_field=DurationField())
    row = (
        ApprovalRequest.objects.for_tenant(tenant)
        .filter(decided_at__gte=start, decided_at__lt=end)
        .aggregate(
            decided=Count("pk"),
            within=Count(
                "pk",
                filter=Q(decided_at__lte=F("sla_due")) & ~Q(status=ApprovalRequest.Status.EXPIRED),
            ),
            expired=Count("pk", filter=Q(status=ApprovalRequest.Status.EXPIRED)),
            took=Sum(took),
        )
    )
    return DailyApprovalStat(
        tenant=tenant,
        day=day,
        decided=row["decided"],
        within_sla=row["within"],
        expired=row["expired"],
        decide_seconds=int(row["took"].total_seconds()) if row["took"] else 0,
    )


def _save_day(tenant, day, tickets: dict, agents: list, approvals) -> None:
    DailyTicketStat.objects.for_tenant(tenant).filter(day=day).delete()
    DailyTicketStat.objects.bulk_create(
        DailyTicketStat(tenant=tenant, day=day, queue_ref=ref, **counts)
        for ref, counts in tickets.items()
    )
    DailyAgentStat.objects.for_tenant(tenant).filter(day=day).delete()
    DailyAgentStat.objects.bulk_create(agents)
    DailyApprovalStat.objects.for_tenant(tenant).filter(day=day).delete()
    if approvals.decided:
        approvals.save()


def _set_backlog(tenant, days: list[dt.date], tickets_by_day: dict) -> None:
    """Walk back from today's open count: the backlog at the end of each of ``days``."""
    backlog = defaultdict(int, open_now(tenant))
    for day in sorted(days, reverse=True):
        counts = tickets_by_day.get(day, {})
        for ref in set(backlog) | set(counts):
            # Rows exist for every queue with a backlog, even on a quiet day.
            row = counts.setdefault(ref, dict.fromkeys(TICKET_COUNTS, 0))
            row["backlog"] = max(0, backlog[ref])
        for ref, row in counts.items():
            backlog[ref] += -row["opened"] + row["resolved"] + row["cancelled"]


def refresh_days(tenant, days: list[dt.date]) -> None:
    """Recompute ``days`` (which must run up to today, for the backlog walk)."""
    computed = {
        day: (
            dict(ticket_counts(tenant, day)),
            agent_counts(tenant, day),
            approval_counts(tenant, day),
        )
        for day in days
    }
    tickets_by_day = {day: parts[0] for day, parts in computed.items()}
    _set_backlog(tenant, days, tickets_by_day)
    with transaction.atomic():
        _lock(tenant)
        for day, (_, agents, approvals) in computed.items():
            _save_day(tenant, day, tickets_by_day[day], agents, approvals)


def refresh_recent(tenant, *, days: int = 2) -> None:
    """The beat's job: today and the days before it (late resolutions, ratings, decisions)."""
    end = today()
    refresh_days(tenant, [end - dt.timedelta(days=n) for n in range(days)])


def rebuild(tenant, *, since: dt.date) -> int:
    """Backfill every day from ``since`` to today; returns the number of days."""
    end = today()
    days = [since + dt.timedelta(days=n) for n in range((end - since).days + 1)]
    refresh_days(tenant, days)
    return len(days)
