"""Approvals in the JSON API: ``GET /api/v1/approvals`` reads the queue (read-only: decisions
stay with people, in the console or through signed Slack interactions, never bearer tokens),
and ``POST /api/v1/slack/interactions`` takes Slack's signed button presses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from ninja import Status as HttpStatus

from approvals import slack
from approvals.models import ApprovalRequest
from approvals.selectors import access_queue, approvals_for

router = Router(tags=["approvals"])
slack_router = Router(tags=["slack"], auth=None)


class ApprovalOut(Schema):
    id: int
    action: str
    arguments: dict[str, Any]
    status: str
    priority: str
    risk: str
    reason: str
    subject_type: str
    subject_id: str
    subject_repr: str
    requested_by: str
    assigned_to: str | None
    decided_by: str | None
    sla_due: datetime | None
    breached: bool
    created_at: datetime
    decided_at: datetime | None
    url: str

    @staticmethod
    def resolve_requested_by(obj) -> str:
        return obj.requested_by.get_username() if obj.requested_by_id else obj.requested_by_label

    @staticmethod
    def resolve_assigned_to(obj) -> str | None:
        return obj.assigned_to.get_username() if obj.assigned_to_id else None

    @staticmethod
    def resolve_decided_by(obj) -> str | None:
        return obj.decided_by.get_username() if obj.decided_by_id else None

    @staticmethod
    def resolve_breached(obj) -> bool:
        return obj.breached_at is not None or (
            obj.status == "pending" and obj.sla_due is not None and obj.sla_due < timezone.now()
        )

    @staticmethod
    def resolve_url(obj) -> str:
        return reverse("approvals:detail", args=[obj.pk])


class ApprovalList(Schema):
    count: int
    limit: int
    offset: int
    items: list[ApprovalOut]


class ApprovalParams(Schema):
    status: Literal["pending", "approved", "rejected", "expired", "cancelled"] | None = None
    priority: ApprovalRequest.Priority | None = None
    assignee: str = Field(
        "", max_length=150, description="A username, 'me', or 'none' for unassigned requests."
    )
    breached: bool | None = Field(None, description="Only requests past (or once past) their SLA.")
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


def _breached_q(now) -> Q:
    return Q(breached_at__isnull=False) | Q(status="pending", sla_due__lt=now)


@router.get("", response=ApprovalList, summary="The approval queue the token may see (read-only)")
def list_approvals(request, params: Query[ApprovalParams]):
    membership = request.membership
    access_queue(membership)  # 404 for requesters, 403 for staff who decide nothing
    qs = approvals_for(membership).select_related("requested_by", "assigned_to", "decided_by")
    if params.status:
        qs = qs.filter(status=params.status)
    if params.priority:
        qs = qs.filter(priority=params.priority)
    if params.assignee == "none":
        qs = qs.filter(assigned_to__isnull=True)
    elif params.assignee:
        name = membership.user.get_username() if params.assignee == "me" else params.assignee
        user = get_user_model().objects.filter(username=name, memberships__tenant=membership.tenant)
        qs = qs.filter(assigned_to__in=user)
    if params.breached is not None:
        q = _breached_q(timezone.now())
        qs = qs.filter(q) if params.breached else qs.exclude(q)
    count = qs.count()
    order = ("priority_rank", F("sla_due").asc(nulls_last=True), "id")
    items = list(qs.order_by(*order)[params.offset : params.offset + params.limit])
    return {"count": count, "limit": params.limit, "offset": params.offset, "items": items}


class SlackRefusal(Schema):
    error: str
    message: str


@slack_router.post(
    "/interactions",
    response={200: dict, 400: SlackRefusal, 401: SlackRefusal},
    summary="Slack's signed interactions (approval buttons, the reject reason)",
)
def slack_interactions(request):
    try:
        answer = slack.handle_interaction(body=request.body, headers=request.headers)
    except slack.SlackRefused as exc:
        return HttpStatus(401, {"error": "bad_signature", "message": f"Refused: {exc}."})
    except slack.SlackBadRequest as exc:
        return HttpStatus(400, {"error": "bad_request", "message": str(exc)})
    return HttpStatus(200, answer.body)
