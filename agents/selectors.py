"""Reading runs: the one gate (access_run) and the timeline queries."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from agents.models import GuardrailEvent, Run, Step, ToolCall


def runs_visible_to(membership) -> QuerySet[Run]:
    """Staff see every run of their tenant; requesters see none (agent internals are staff-only)."""
    if membership is None or not membership.can("ticket.view_all"):
        return Run.objects.none()
    return Run.objects.for_tenant(membership.tenant)


def access_run(membership, run_id: str) -> Run:
    run = runs_visible_to(membership).filter(run_id=run_id).select_related("started_by").first()
    if run is None:
        raise Http404("No such run")
    return run


def latest_run_for(membership, subject_type: str, subject_id: str) -> Run | None:
    return (
        runs_visible_to(membership)
        .filter(subject_type=subject_type, subject_id=subject_id)
        .order_by("-created_at", "-id")
        .first()
    )


def timeline_steps(run: Run, *, since=None) -> list[Step]:
    """Steps with their tool calls and guardrail events; only those changed after ``since``."""
    steps = Step.objects.for_tenant(run.tenant).filter(run=run)
    if since is not None:
        steps = steps.filter(updated_at__gt=since)
    return list(
        steps.order_by("seq").prefetch_related(
            Prefetch("tool_calls", queryset=ToolCall.objects.for_tenant(run.tenant).order_by("id")),
            Prefetch(
                "guardrail_events",
                queryset=GuardrailEvent.objects.for_tenant(run.tenant).order_by("id"),
            ),
        )
    )


def pending_approvals(run: Run) -> list:
    from agents.engine import APPROVAL_HANDLER
    from approvals.models import ApprovalRequest
    from approvals.selectors import requests_for

    return list(
        requests_for(
            run.tenant,
            handler=APPROVAL_HANDLER,
            subject_type="run",
            subject_id=str(run.pk),
            statuses=[ApprovalRequest.Status.PENDING],
        )
    )
