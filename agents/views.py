"""Console views of the agent runtime: runs list, run page, live timeline partial, cancel."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from agentops.access import require_capability, tenant_member
from agentops.snapshot import snapshot_view
from agents import blueprints, engine
from agents.models import FINISHED_RUN_STATUSES, RunStatus
from agents.rca.views import panel_context as rca_panel_context
from agents.selectors import access_run, pending_approvals, runs_visible_to, timeline_steps
from agents.telemetry import replay

STOP_POLLING = 286  # htmx: stop polling this element


@tenant_member
def run_list(request):
    require_capability(request.membership, "ticket.view_all")
    runs = runs_visible_to(request.membership).select_related("started_by")
    status = request.GET.get("status", "")
    agent = request.GET.get("agent", "")
    origin = request.GET.get("origin", "")
    if status in RunStatus.values:
        runs = runs.filter(status=status)
    if agent:
        runs = runs.filter(agent_name=agent)
    if origin in ORIGINS:
        runs = runs.filter(origin=origin)
    page = Paginator(runs.order_by("-created_at", "-id"), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "agents/run_list.html",
        {
            "page": page,
            "statuses": RunStatus.choices,
            "agents": _agent_names(request.membership),
            "origins": ORIGINS.items(),
            "status": status,
            "agent": agent,
            "origin": origin,
            "breakers": _breakers(request.membership.tenant_id),
            "outcomes": _outcomes(request.membership),
        },
    )


ORIGINS = {"internal": "AgentOps", "ingested": "Ingested"}


def _agent_names(membership) -> list[str]:
    """Our blueprints and the agents whose runs were ingested (one DISTINCT query)."""
    ingested = (
        runs_visible_to(membership)
        .filter(origin="ingested")
        .order_by("agent_name")
        .values_list("agent_name", flat=True)
        .distinct()
    )
    return sorted({b.name for b in blueprints.all_blueprints()} | set(ingested[:200]))


def _outcomes(membership) -> list[dict]:
    """Runs by status, as shares of the whole, for the stacked bar on the runs page."""
    from django.db.models import Count

    counts = dict(
        runs_visible_to(membership).values_list("status").annotate(n=Count("id")).order_by()
    )
    total = sum(counts.values()) or 1
    return [
        {
            "status": value,
            "label": label,
            "count": counts.get(value, 0),
            "pct": round(100 * counts.get(value, 0) / total, 1),
        }
        for value, label in RunStatus.choices
        if counts.get(value)
    ]


def _breakers(tenant_id: int):
    """Circuit breakers of the model and the connectors (shared state in Redis): the shared
    ones and this tenant's own, never another tenant's."""
    from agents.resilience import breakers_for_tenant

    try:
        return breakers_for_tenant(tenant_id)
    except Exception as exc:  # Redis down: say so instead of failing the page
        return [{"name": "redis", "state": "unknown", "failures": 0, "last_error": str(exc)}]


# How far back each poll looks again. A step's ``updated_at`` is stamped before its
# transaction commits, so a change can become visible after a poll whose cursor is already
# later than its stamp; looking back this far sends such a change on the next poll. Steps the
# page already shows are replaced by id, so a change sent twice does no harm.
CURSOR_LAG = timedelta(seconds=15)


def timeline_context(request, run, *, since=None, seen_seq: int = 0) -> dict:
    # The cursor is taken before reading (and lagged), so a change landing during the read or
    # committing late is sent again next time rather than lost.
    cursor = (timezone.now() - CURSOR_LAG).isoformat()
    steps = timeline_steps(run, since=since)
    can_decide = request.membership.role in ("reviewer", "admin")
    return {
        "run": run,
        "steps": steps,
        "since": since,
        "cursor": cursor,
        # Steps up to this sequence number are on the page already: replaced, not appended.
        "seen_seq": seen_seq,
        "last_seq": max([seen_seq, *(step.seq for step in steps)]),
        "approvals": pending_approvals(run) if run.status == RunStatus.WAITING_APPROVAL else [],
        "can_decide": can_decide,
        "can_cancel": request.membership.can("ticket.write") and run.is_active,
        "blueprint": (bp := _blueprint(run)),
        "report_url": bp.report_url(run) if bp is not None and run.result.get("report") else None,
    }


def _blueprint(run):
    try:
        return blueprints.get(run.agent_name)
    except LookupError:
        return None


@tenant_member
@snapshot_view
def run_detail(request, run_id: str):
    run = access_run(request.membership, run_id)
    context = timeline_context(request, run)
    context["waterfall"] = replay.waterfall(run, context["steps"])
    context["orphans"] = replay.orphans(run)
    context.update(rca_panel_context(request, run))
    return render(request, "agents/run_detail.html", context)


@tenant_member
@snapshot_view
def run_timeline(request, run_id: str):
    """The polled partial: only what changed since the cursor; 286 once the run has finished."""
    run = access_run(request.membership, run_id)
    since = parse_datetime(request.GET.get("cursor", "") or "")
    seen = request.GET.get("seq", "")
    seen_seq = int(seen) if seen.isdigit() and len(seen) < 10 else 0
    context = timeline_context(request, run, since=since, seen_seq=seen_seq)
    # A decision made in a polled approval card returns to the page it was shown on.
    context["return_to"] = request.htmx.current_url_abs_path if request.htmx else None
    if run.status not in FINISHED_RUN_STATUSES:
        return render(request, "agents/run_detail.html#timeline-update", context)
    response = render(
        request, "agents/run_detail.html#timeline-update", context, status=STOP_POLLING
    )
    # The run changed the page around the timeline too (ticket status, notes): reload it once.
    response["HX-Refresh"] = "true"
    return response


@tenant_member
@require_POST
def run_cancel(request, run_id: str):
    run = access_run(request.membership, run_id)
    require_capability(request.membership, "ticket.write")
    engine.request_cancel(run=run, actor=request.user)
    messages.success(request, f"Cancellation of {run.run_id} requested.")
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("agents:run-detail", run_id=run.run_id)


@tenant_member
def run_metrics(request):
    """Runs, failures, categories, cost, p95 latency and failing tools over a window, charted."""
    from agents.telemetry import charts, metrics

    require_capability(request.membership, "ticket.view_all")
    hours = request.GET.get("hours", "24")
    hours = int(hours) if hours in METRIC_WINDOWS else 24
    origin = request.GET.get("origin", "")
    origin = origin if origin in ORIGINS else ""
    data = metrics.overview(tenant=request.membership.tenant, hours=hours, origin=origin)
    hourly = data["per_hour"]

    def hour_label(p):
        return p["hour"].strftime("%d %b %H:00")

    return render(
        request,
        "agents/run_metrics.html",
        {
            "m": data,
            "hours": hours,
            "origin": origin,
            "windows": [int(w) for w in METRIC_WINDOWS],
            "origins": ORIGINS.items(),
            "runs_chart": charts.columns(hourly, "runs", stack="failed", label=hour_label),
            "cost_chart": charts.columns(hourly, "total_cost_usd", label=hour_label),
            "latency_chart": charts.columns(hourly, "p95_step_latency_ms", label=hour_label),
            "categories": charts.rows(data["failure_categories"], "count", label="category"),
            "tools": charts.rows(data["top_failing_tools"], "count", label="tool"),
        },
    )


METRIC_WINDOWS = ("6", "24", "72", "168")
