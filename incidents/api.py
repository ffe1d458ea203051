"""Ticket endpoints of the JSON API. The tenant and user come from the bearer token."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import prefetch_related_objects
from django.urls import reverse
from ninja import Field, Query, Router, Schema
from ninja import Status as HttpStatus
from pydantic import field_validator

from agentops import quotas
from agentops.access import require_capability
from agentops.api import StrictIn
from agents.api import RunOut, StepOut, ToolCallOut
from incidents import selectors, services
from incidents.models import (
    CATEGORY_MAX,
    DESCRIPTION_MAX,
    TITLE_MAX,
    Kind,
    Priority,
    Queue,
    Severity,
    Source,
    Status,
    Ticket,
)
from incidents.selectors import (
    QueueFilters,
    access_ticket,
    count_matches,
    is_ranked,
    may_see_queues,
    queue_page,
    queues_visible_to,
    rows_by_ids,
    ticket_queue,
)
from incidents.taxonomy import check_category

router = Router(tags=["tickets"])

# What ``status`` may filter on: one status, or "open" for any open one ("" = no filter).
STATUS_FILTERS = ("open", *Status.values)


class TicketIn(StrictIn):
    title: str = Field(..., min_length=1, max_length=TITLE_MAX)
    description: str = Field("", max_length=DESCRIPTION_MAX)
    kind: Kind = Kind.REQUEST
    requester_email: str | None = Field(None, max_length=254, description="Who the ticket is for.")
    user_email: str | None = Field(None, max_length=254, description="Alias of requester_email.")
    # One of the tenant's categories (incidents.taxonomy; the service checks it).
    category: str | None = Field(None, max_length=CATEGORY_MAX)
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
    queue: str | None = Field(None, description="The slug of the ticket's queue, if routed.")
    url: str

    @staticmethod
    def resolve_assignee(obj: Ticket) -> str | None:
        return obj.assignee.get_username() if obj.assignee_id else None

    @staticmethod
    def resolve_queue(obj: Ticket) -> str | None:
        return obj.queue.slug if obj.queue_id else None

    @staticmethod
    def resolve_url(obj: Ticket) -> str:
        return reverse("incidents:ticket-detail", args=[obj.number])


class TicketList(Schema):
    count: int = Field(
        ...,
        description=(
            "How many tickets match. Exact when count_is_exact; otherwise a lower bound: "
            "counting stops one past max(10,000 (1,000 for a full-text search), offset + "
            "limit), so while more tickets follow this page, count stays above offset + limit."
        ),
    )
    count_is_exact: bool = Field(
        True, description="False when more tickets match than were counted (see count)."
    )
    limit: int
    offset: int
    items: list[TicketOut]


class ListParams(Schema):
    q: str = Field("", max_length=200, description="Full-text search, or a ticket number.")
    status: str = Field(
        "",
        description="A status, or 'open' for any open status.",
        json_schema_extra={"enum": ["", *STATUS_FILTERS]},
    )
    priority: Priority | None = None
    kind: Kind | None = None
    category: str | None = Field(None, max_length=CATEGORY_MAX)
    queue: str = Field(
        "",
        max_length=100,
        pattern=r"^[-a-z0-9_]*$",
        description="A queue's slug (GET /api/v1/queues), or 'none' for tickets in no queue.",
    )
    sort: str = Field(
        "newest",
        pattern="^(newest|oldest|priority|sla|updated|number|relevance)$",
        description=(
            "relevance (with q): when more than 1,000 tickets match, the newest 1,000 are "
            "ranked and the list ends with them."
        ),
    )
    limit: int = Field(25, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: str) -> str:
        # An unknown status used to filter silently down to nothing.
        if value and value not in STATUS_FILTERS:
            raise ValueError(f"Unknown status {value!r}; use one of: {', '.join(STATUS_FILTERS)}.")
        return value


@router.post("", response={201: TicketOut}, summary="Open a ticket or incident")
def create_ticket(request, payload: TicketIn):
    membership = request.membership
    require_capability(membership, "ticket.create")
    tenant = membership.tenant
    user = membership.user
    email_field = "requester_email" if payload.requester_email else "user_email"
    email = payload.requester_email or payload.user_email
    if email and not membership.can("ticket.view_all"):
        # Like the console: only staff open tickets in someone else's name.
        if email.strip().lower() != (user.email or "").lower():
            raise ValidationError(
                {email_field: "Your role may only open tickets for your own address."}
            )
        email = None
    requester = services.user_for_email(tenant=tenant, email=email) if email else None
    try:
        ticket = services.ticket_create(
            tenant=tenant,
            actor=user,
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
    except ValidationError as exc:
        # The service names the model field; answer with the name the client sent.
        if email_field != "requester_email" and hasattr(exc, "error_dict"):
            errors = exc.message_dict
            if "requester_email" in errors:
                errors[email_field] = errors.pop("requester_email")
                raise ValidationError(errors) from exc
        raise
    return HttpStatus(201, ticket)


@router.get("", response={200: TicketList, 400: dict}, summary="List tickets the token may see")
def list_tickets(request, params: Query[ListParams]):
    filters = QueueFilters(
        q=params.q,
        status=params.status,
        priority=params.priority or "",
        kind=params.kind or "",
        category=params.category or "",
        queue=params.queue,
        sort=params.sort,
    )
    if params.queue not in ("", "none") and not (
        queues_visible_to(request.membership).filter(slug=params.queue).exists()
    ):
        # The same answer for another tenant's queue and one the token may not see.
        return HttpStatus(
            400,
            {
                "error": "validation_error",
                "fields": {"queue": f"Unknown queue {params.queue!r}; see GET /api/v1/queues."},
            },
        )
    if params.category:
        try:  # one of the tenant's categories (incidents.taxonomy), retired ones too
            check_category(request.membership.tenant, params.category)
        except ValidationError as exc:
            fields = {"category": f"{exc.message_dict['category'][0]} See the tenant's categories."}
            return HttpStatus(400, {"error": "validation_error", "fields": fields})
    qs = ticket_queue(request.membership, filters)
    stop = params.offset + params.limit
    # An exact COUNT(*) of a million tickets reads a whole index (a search: every match's
    # row); the count stops past the cap, or past this page when it lies deeper (not for a
    # relevance sort, whose list ends with its ranked candidates).
    cap = selectors.SEARCH_COUNT_CAP if params.q else selectors.COUNT_CAP
    if not is_ranked(qs):
        cap = max(cap, stop)
    counted = count_matches(qs, cap, in_order=bool(params.q))
    found = counted.found
    if counted.ids is not None:
        items = rows_by_ids(qs, counted.ids, params.offset, stop)
    else:
        items = queue_page(qs, found, params.offset, stop)
    prefetch_related_objects(items, "queue")  # one query for the page's queue slugs
    return {
        "count": found,
        "count_is_exact": found <= cap,
        "limit": params.limit,
        "offset": params.offset,
        "items": items,
    }


@router.get("/{number}", response=TicketOut, summary="One ticket by number")
def get_ticket(request, number: str):
    return access_ticket(request.membership, number)


class TicketStatusOut(Schema):
    number: str
    status: str
    category: str
    priority: str
    triage_decision: str
    triage_confidence: float | None
    resolution_notes: str
    run: RunOut | None
    steps: list[StepOut]
    tool_calls: list[ToolCallOut]


class ResolveOut(Schema):
    number: str
    run_id: str
    status: str
    status_url: str


@router.post(
    "/{number}/resolve",
    response={202: ResolveOut, 409: dict},
    summary="Hand the ticket to the service-desk agent",
)
def resolve_ticket(request, number: str):
    ticket = access_ticket(request.membership, number, write=True)
    try:
        run = services.ticket_start_agent(ticket=ticket, actor=request.membership.user)
    except quotas.QuotaExceeded:
        raise  # 403 quota_exceeded with the limit (agentops.api)
    except ValidationError as exc:
        return HttpStatus(409, {"error": "conflict", "message": " ".join(exc.messages)})
    return HttpStatus(
        202,
        {
            "number": ticket.number,
            "run_id": run.run_id,
            "status": run.status,
            "status_url": reverse("api:get_ticket_status", args=[ticket.number]),
        },
    )


@router.get(
    "/{number}/status",
    response=TicketStatusOut,
    summary="The ticket and its latest agent run: steps and tool calls",
    url_name="get_ticket_status",
)
def get_ticket_status(request, number: str):
    from agents.models import Run

    ticket = access_ticket(request.membership, number)
    run = (
        Run.objects.for_tenant(ticket.tenant)
        .filter(subject_type="ticket", subject_id=ticket.number)
        .order_by("-created_at", "-id")
        .first()
    )
    staff = request.membership.can("ticket.view_all")
    return {
        "number": ticket.number,
        "status": ticket.status,
        "category": ticket.category,
        "priority": ticket.priority,
        "triage_decision": ticket.triage_decision,
        "triage_confidence": ticket.triage_confidence,
        "resolution_notes": ticket.resolution_notes,
        "run": run,
        # Agent internals (arguments, policy reasons) are for staff tokens only.
        "steps": list(run.steps.all()) if run and staff else [],
        "tool_calls": list(run.tool_calls.all()) if run and staff else [],
    }


class CsatIn(StrictIn):
    score: int = Field(..., ge=1, le=5, description="1 = very dissatisfied … 5 = very satisfied.")
    comment: str = Field("", max_length=1000)


class CsatOut(Schema):
    number: str
    csat_score: int
    csat_comment: str
    csat_at: datetime


@router.post(
    "/{number}/csat",
    response=CsatOut,
    summary="Rate a resolved ticket 1-5 (its requester only; rating again updates it)",
)
def rate_ticket(request, number: str, payload: CsatIn):
    ticket = access_ticket(request.membership, number)  # 404 when the token may not see it
    return services.ticket_rate(  # 403 unless the requester, 400 unless resolved
        ticket=ticket, actor=request.membership.user, score=payload.score, comment=payload.comment
    )


class ConfirmIn(StrictIn):
    solved: bool = Field(..., description="Did the agent's answer solve it?")


class ConfirmOut(Schema):
    number: str
    status: str
    answer: str


@router.post(
    "/{number}/confirm",
    response=ConfirmOut,
    summary="The requester says whether the agent's answer solved it (yes resolves, no hands "
    "it to a person)",
)
def confirm_ticket(request, number: str, payload: ConfirmIn):
    from incidents import replies

    ticket = access_ticket(request.membership, number)  # 404 when the token may not see it
    reply = replies.reply_confirm(  # 403 unless the requester, 400 unless waiting
        ticket=ticket, actor=request.membership.user, solved=payload.solved
    )
    ticket.refresh_from_db(fields=["status"])
    return {"number": ticket.number, "status": ticket.status, "answer": reply.state}


# --------------------------------------------------------------------------- queues

queues_router = Router(tags=["queues"])


class QueueOut(Schema):
    slug: str
    name: str
    description: str
    categories: list[str]
    url: str

    @staticmethod
    def resolve_url(obj: Queue) -> str:
        return reverse("queues:detail", args=[obj.slug])


@queues_router.get(
    "",
    response={200: list[QueueOut], 403: dict},
    summary="The queues the token may see (staff: all of the tenant's; others: those granted)",
)
def list_queues(request):
    if not may_see_queues(request.membership):
        return HttpStatus(403, {"error": "forbidden", "message": "Your role does not work queues."})
    return list(queues_visible_to(request.membership).order_by("name"))
