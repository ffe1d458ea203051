"""The landing page per role, "my work", the lead dashboard and its CSV downloads."""

from __future__ import annotations

import csv
import datetime as dt

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from agentops.access import tenant_member
from agentops.models import Role
from incidents.analytics import figures as fig
from incidents.models import OPEN_STATUSES, Status
from incidents.selectors import COUNT_CAP, queue_count, queues_visible_to, tickets_visible_to

AT_RISK_HOURS = 4
MY_WORK_ROWS = 15
# How each chart is drawn (static/js/dashboard.js): series from the chart's table columns.
CHART_SERIES: dict[str, list[tuple[str, str, str]]] = {
    # key: [(column, label, "bar" | "line"), ...]
    "volume": [
        ("opened", "Opened", "bar"),
        ("resolved", "Resolved", "bar"),
        ("backlog", "Backlog", "line"),
    ],
    "sla": [("due", "Due", "bar"), ("breached", "Breached", "bar")],
    "mttr": [("mttr_hours", "MTTR (hours)", "line")],
    "rates": [
        ("auto_resolution_pct", "Auto-resolved %", "line"),
        ("escalation_pct", "Escalated %", "line"),
    ],
    "approvals": [("attainment_pct", "Decided within SLA %", "line")],
    "agents": [("runs", "Runs", "bar"), ("succeeded", "Succeeded", "bar")],
    "csat": [("average", "Average rating", "line")],
}


COLUMN_WORDS = {
    "day": "Day",
    "opened": "Opened",
    "resolved": "Resolved",
    "backlog": "Backlog",
    "due": "Due",
    "breached": "Breached",
    "attainment_pct": "Met (%)",
    "mttr_hours": "MTTR (h)",
    "auto_resolution_pct": "Auto-resolved (%)",
    "escalation_pct": "Escalated (%)",
    "decided": "Decided",
    "within_sla": "Within SLA",
    "blueprint": "Blueprint",
    "runs": "Runs",
    "succeeded": "Succeeded",
    "success_pct": "Success (%)",
    "p95_step_ms": "p95 step (ms)",
    "tokens": "Tokens",
    "cost_usd": "Cost ($)",
    "ratings": "Ratings",
    "average": "Average",
}


def _dashboard_allowed(membership) -> None:
    if not membership.can("ticket.view_all"):
        raise PermissionDenied("The dashboards are for the service desk's staff.")


@tenant_member
@require_GET
def home(request):
    """The landing page per role: leads and auditors the dashboard, agents and reviewers their
    work, requesters the portal ("How can we help?")."""
    role = request.membership.role
    if role in (Role.ADMIN, Role.AUDITOR):
        return redirect("analytics:dashboard")
    if role in (Role.AGENT, Role.REVIEWER):
        return redirect("my-work")
    return redirect("portal:home")


class BadFilter(ValueError):
    pass


def resolve_filters(membership, params) -> tuple[str, int | None, str]:
    """(period key, queue_ref or None for all, queue slug) from ?period=&queue=; BadFilter
    names the problem. ``queue=none`` is the tickets in no queue."""
    period = params.get("period") or fig.DEFAULT_PERIOD
    if period not in fig.PERIODS:
        raise BadFilter(f"period must be one of {', '.join(fig.PERIODS)} (days).")
    slug = (params.get("queue") or "").strip()
    if not slug:
        return period, None, ""
    if slug == "none":
        return period, 0, slug
    queue = queues_visible_to(membership).filter(slug=slug).first()
    if queue is None:
        raise BadFilter(f"There is no queue {slug[:60]!r} in this workspace.")
    return period, queue.pk, slug


def _charts(figures) -> list[dict]:
    charts = []
    for key, (title, columns) in fig.CHARTS.items():
        rows = figures.tables[key]
        label_col = columns[0]
        spec = {
            "type": "bar" if key == "agents" else "line",
            "labels": [row[label_col] for row in rows],
            "series": [
                {"label": label, "kind": kind, "data": [row[col] for row in rows]}
                for col, label, kind in CHART_SERIES[key]
            ],
            "percent": key in ("rates", "approvals"),
        }
        charts.append(
            {
                "key": key,
                "title": title,
                "data_id": f"chart-data-{key}",
                "spec": spec,
                "headers": [COLUMN_WORDS.get(c, c) for c in columns],
                "cells": [["—" if row[c] is None else row[c] for c in columns] for row in rows],
            }
        )
    return charts


@tenant_member
@require_GET
def dashboard(request):
    membership = request.membership
    _dashboard_allowed(membership)
    error, status = "", 200
    try:
        period, queue_ref, slug = resolve_filters(membership, request.GET)
    except BadFilter as exc:
        error, status = str(exc), 400
        period, queue_ref, slug = fig.DEFAULT_PERIOD, None, ""
    figures = fig.figures(membership.tenant, period=period, queue_ref=queue_ref)
    context = {
        "figures": figures,
        "kpis": figures.kpis,
        "charts": _charts(figures),
        "period": period,
        "periods": list(fig.PERIODS),
        "queue_slug": slug,
        "queues": list(queues_visible_to(membership).order_by("name").values_list("slug", "name")),
        "filter_error": error,
        "querystring": request.GET.urlencode(),
    }
    return render(request, "incidents/dashboard.html", context, status=status)


@tenant_member
@require_GET
def chart_csv(request, chart: str):
    membership = request.membership
    _dashboard_allowed(membership)
    if chart not in fig.CHARTS:
        raise Http404("No such chart")
    try:
        period, queue_ref, slug = resolve_filters(membership, request.GET)
    except BadFilter as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    figures = fig.figures(membership.tenant, period=period, queue_ref=queue_ref)
    columns = fig.CHARTS[chart][1]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"{chart}-{figures.start}-{figures.end}{'-' + slug if slug else ''}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(columns)
    for row in figures.tables[chart]:
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return response


@tenant_member
@require_GET
def my_work(request):
    """An agent's or reviewer's morning: assigned to me, SLA at risk, waiting on me."""
    membership = request.membership
    _dashboard_allowed(membership)
    now = timezone.now()
    tickets = tickets_visible_to(membership).filter(status__in=sorted(OPEN_STATUSES))
    mine = tickets.filter(assignee=request.user).select_related("queue")
    at_risk = (
        tickets.filter(sla_due__lte=now + dt.timedelta(hours=AT_RISK_HOURS))
        .exclude(sla_due__isnull=True)
        .select_related("queue", "assignee")
        .order_by("sla_due")
    )
    context = {
        "assigned": list(mine.order_by("sla_due", "-created_at")[:MY_WORK_ROWS]),
        "assigned_total": _capped(queue_count(mine, COUNT_CAP)),
        "at_risk": list(at_risk[:MY_WORK_ROWS]),
        "at_risk_hours": AT_RISK_HOURS,
        "waiting_tickets": list(
            mine.filter(status=Status.ESCALATED).order_by("sla_due")[:MY_WORK_ROWS]
        ),
        "waiting_approvals": _my_approvals(membership),
        "queue_url": reverse("incidents:queue"),
    }
    return render(request, "incidents/my_work.html", context)


def _capped(found: int) -> str:
    """A count from ``queue_count``: exact, or "10,000+" past the cap."""
    return f"{COUNT_CAP:,}+" if found > COUNT_CAP else str(found)


def _my_approvals(membership) -> list:
    from approvals import selectors as approval_selectors

    if approval_selectors.access.visibility_filter(membership) is None:
        return []
    return list(approval_selectors.approval_queue(membership, "mine")[:MY_WORK_ROWS])
