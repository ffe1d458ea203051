"""Ticket endpoints of the JSON API. The tenant and user come from the bearer token."""

from __future__ import annotations

from datetime import datetime

from django.urls import reverse
from ninja import Field, Query, Router, Schema

from incidents import services
from incidents.models import (
    DESCRIPTION_MAX,
    TITLE_MAX,
    Category,
    Kind,
    Priority,
    Severity,
    Source,
    Ticket,
)
from incidents.selectors import QueueFilters, access_ticket, ticket_queue

router = Router(tags=["tickets"])


class TicketIn(Schema):
    title: str = Field(..., min_length=1, max_length=TITLE_MAX)
    description: str = Field("", max_length=DESCRIPTION_MAX)
    kind: Kind = Kind.REQUEST
    requester_email: str | None = Field(None, max_length=254, description="Who the ticket is for.")
    user_email: str | None = Field(None, max_length=254, description="Alias of requester_email.")
    category: Category | None = None
    priority: Priority = Priority.MEDIUM
    severity: Severity | None = None
    affected_services: list[str] = Field(default_factory=list, max_length=50)
    detected_by: str = Field("", max_length=100)
    source: Source = Source.API


class TicketOut(Schema):
    number: str
    kind: str
    title: str
    description: str
    status: str
    priority: str
    severity: str
    category: str
    requester_email: str
    affected_services: list[str]
    detected_by: str
    source: str
    assignee: str | None
    sla_due: datetime | None
    sla_breached: bool
    resolution_notes: str
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None
    url: str

    @staticmethod
    def resolve_assignee(obj: Ticket) -> str | None:
        return obj.assignee.get_username() if obj.assignee_id else None

    @staticmethod
    def resolve_url(obj: Ticket) -> str:
        return reverse("incidents:ticket-detail", args=[obj.number])


class TicketList(Schema):
    count: int
    limit: int
    offset: int
    items: list[TicketOut]


class ListParams(Schema):
    q: str = Field("", max_length=200, description="Full-text search, or a ticket number.")
    status: str = Field("", description="A status, or 'open' for any open status.")
    priority: Priority | None = None
    kind: Kind | None = None
    category: Category | None = None
    sort: str = Field("newest", pattern="^(newest|oldest|priority|sla|updated|number|relevance)$")
    limit: int = Field(25, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


@router.post("", response={201: TicketOut}, summary="Open a ticket or incident")
def create_ticket(request, payload: TicketIn):
    tenant = request.tenant
    email = payload.requester_email or payload.user_email
    requester = services.user_for_email(tenant=tenant, email=email) if email else None
    ticket = services.ticket_create(
        tenant=tenant,
        actor=request.membership.user,
        title=payload.title,
        description=payload.description,
        kind=payload.kind,
        requester_email=email,
        requester=requester,
        category=payload.category or "",
        priority=payload.priority,
        severity=payload.severity or "",
        affected_services=payload.affected_services,
        detected_by=payload.detected_by,
        source=payload.source,
    )
    return 201, ticket


@router.get("", response=TicketList, summary="List tickets the token may see")
def list_tickets(request, params: Query[ListParams]):
    filters = QueueFilters(
        q=params.q,
        status=params.status,
        priority=params.priority or "",
        kind=params.kind or "",
        category=params.category or "",
        sort=params.sort,
    )
    qs = ticket_queue(request.membership, filters)
    items = list(qs[params.offset : params.offset + params.limit])
    return {"count": qs.count(), "limit": params.limit, "offset": params.offset, "items": items}


@router.get("/{number}", response=TicketOut, summary="One ticket by number")
def get_ticket(request, number: str):
    return access_ticket(request.membership, number)
