"""What the service-desk agent says to the requester, and their "did this solve it?" (issue 13).

Services (they write; keyword-only, atomic, audited):

- ``reply_post``: a public comment from the agent, in plain words, plus an ``AgentReply`` row
  (kind, citations, team or incident, and for an answer the confirmation it waits for);
- ``reply_confirm``: the requester says yes (the ticket is resolved) or no (it goes back to a
  person); only the requester, only while the reply waits;
- ``close_unanswered``: no reply within the tenant's ``confirm_days`` (service-desk blueprint
  setting, default 3) closes the ticket (the beat task ``incidents.tasks.close_unanswered``);
- ``incident_for``: the incident for people that a wide fault becomes, the ticket linked.

And the words: ``compose_answer`` (offline: the best passages quoted and cited),
``team_for`` (the tenant's directory of non-IT teams, ``NonItTeam``, or the defaults).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from agentops import audit
from incidents.models import (
    AgentReply,
    Kind,
    NonItTeam,
    Priority,
    ReplyKind,
    ReplyState,
    Status,
    Ticket,
)

AGENT_LABEL = "Service-desk agent"
DEFAULT_CONFIRM_DAYS = 3
QUOTE_CHARS = 600


@dataclass(frozen=True)
class Team:
    name: str
    contact: str
    keywords: tuple[str, ...]


# Sensible defaults for a tenant that has not listed its own teams (admin: Non-IT teams).
DEFAULT_TEAMS = (
    Team(
        "Facilities",
        "the Facilities desk (facilities@ your company, or the reception)",
        (
            "desk",
            "chair",
            "heating",
            "air conditioning",
            "aircon",
            "temperature",
            "light",
            "lights",
            "cleaning",
            "parking",
            "badge",
            "key",
            "door",
            "kitchen",
            "toilet",
            "furniture",
            "office move",
            "coffee machine",
            "meeting room booking",
            "leak",
        ),
    ),
    Team(
        "Payroll & HR",
        "People Services (HR and payroll)",
        (
            "payslip",
            "pay slip",
            "salary",
            "payroll",
            "holiday",
            "vacation",
            "annual leave",
            "sick leave",
            "parental leave",
            "contract",
            "pension",
            "benefits",
            "expenses claim",
            "overtime",
            "p60",
            "w-2",
            "tax form",
            "gehalt",
            "urlaub",
            "salaire",
            "congés",
            "nómina",
            "vacaciones",
        ),
    ),
    Team(
        "Finance",
        "the Finance team (accounts payable)",
        (
            "invoice",
            "purchase order",
            "supplier payment",
            "reimbursement",
            "credit card",
            "corporate card",
            "budget",
            "refund",
            "vendor payment",
            "rechnung",
            "facture",
            "factura",
        ),
    ),
)


def confirm_days(tenant) -> int:
    """The tenant's days to wait for a requester's reply (service-desk blueprint setting)."""
    from agents.blueprints import registry

    try:
        value = registry.for_tenant(tenant, "service_desk").config.get("confirm_days")
        return max(1, int(value))
    except (LookupError, TypeError, ValueError):
        return DEFAULT_CONFIRM_DAYS


def teams_for(tenant) -> list[Team]:
    own = NonItTeam.objects.for_tenant(tenant).filter(is_active=True)
    teams = [Team(t.name, t.contact or t.name, tuple(k.lower() for k in t.keywords)) for t in own]
    return teams or list(DEFAULT_TEAMS)


def team_for(tenant, text: str) -> Team | None:
    """The non-IT team whose words appear most in ``text``; None when none does."""
    lowered = (text or "")[:20000].lower()
    best, hits = None, 0
    for team in teams_for(tenant):
        count = sum(1 for k in team.keywords if re.search(rf"\b{re.escape(k)}\b", lowered))
        if count > hits:
            best, hits = team, count
    return best


def compose_answer(passages: list[dict[str, str]], citations: list[dict[str, Any]]) -> str:
    """The offline answer: the best passages quoted, each with its source named [n]."""
    parts = ["Here is what our knowledge base says about this:"]
    for i, passage in enumerate(passages[:2], start=1):
        text = re.sub(r"\s+", " ", passage.get("text") or "").strip()
        if len(text) > QUOTE_CHARS:
            text = text[:QUOTE_CHARS].rsplit(" ", 1)[0] + " …"
        parts.append(f"“{text}” [{i}]")
    parts.append(_sources(citations))
    parts.append(
        "Did this solve it? Answer yes or no on your ticket; with no reply we will close it "
        "in a few days."
    )
    return "\n\n".join(p for p in parts if p)


def _sources(citations: list[dict[str, Any]]) -> str:
    if not citations:
        return ""
    return "Sources: " + "; ".join(
        f"[{i}] {c.get('title', '')}" + (f" — {c['heading']}" if c.get("heading") else "")
        for i, c in enumerate(citations[:3], start=1)
    )


def redirect_text(team: Team) -> str:
    return (
        f"Thank you for your request. This is not something IT can help with: it belongs to "
        f"{team.name}. Please contact {team.contact}; they will take it from here. We have "
        "closed this ticket so it does not wait in the IT queue."
    )


# --------------------------------------------------------------------------- services


def reply_post(
    *,
    ticket: Ticket,
    kind: str,
    body: str,
    awaiting: bool = False,
    citations: list[dict[str, Any]] | None = None,
    team: str = "",
    incident: Ticket | None = None,
    run_id: str = "",
    row_locked: bool = False,
    touch: bool = True,
) -> AgentReply:
    """The agent's public words on the ticket (a comment the requester sees) and its record.
    ``row_locked``: the caller holds the ticket's row lock in its open transaction, which this
    joins without a savepoint. ``touch=False``: that transaction stamps the ticket's
    ``updated_at`` with a status change (``services.ticket_comment``)."""
    if kind not in ReplyKind.values:
        raise ValidationError({"kind": f"Unknown reply kind {kind!r}."})
    body = (body or "").strip()[:9000]
    with transaction.atomic(savepoint=not row_locked):
        return _record_reply(
            ticket=ticket,
            kind=kind,
            body=body,
            awaiting=awaiting,
            citations=citations,
            team=team,
            incident=incident,
            run_id=run_id,
            row_locked=row_locked,
            touch=touch,
        )


def _record_reply(
    *, ticket, kind, body, awaiting, citations, team, incident, run_id, row_locked, touch
) -> AgentReply:
    from incidents import services

    services.ticket_comment(
        ticket=ticket,
        actor=None,
        body=body,
        author_label=AGENT_LABEL,
        row_locked=row_locked,
        touch=touch,
    )
    now = timezone.now()
    reply = AgentReply.objects.create(
        tenant=ticket.tenant,
        ticket=ticket,
        kind=kind,
        state=ReplyState.AWAITING if awaiting else ReplyState.INFO,
        body=body,
        citations=list(citations or [])[:10],
        team=team[:100],
        incident=incident,
        run_id=run_id[:64],
        due_at=now + timedelta(days=confirm_days(ticket.tenant)) if awaiting else None,
        created_at=now,
    )
    audit.record(
        tenant=ticket.tenant,
        actor=None,
        action=f"ticket.agent_{kind}",
        target_type="ticket",
        target_id=ticket.number,
        target_repr=ticket.title,
        metadata={"reply_id": reply.pk, "awaiting": awaiting, "team": team},
    )
    if awaiting:  # the requester hears the question once ("did this solve it?"), not twice
        from incidents.portal import notify

        notify.on_confirmation_needed(ticket=ticket, text=body)
    return reply


def awaiting_reply(ticket: Ticket) -> AgentReply | None:
    """The agent's reply this ticket waits on the requester for, if any (a selector)."""
    return (
        AgentReply.objects.for_tenant(ticket.tenant)
        .filter(ticket=ticket, state=ReplyState.AWAITING)
        .order_by("-created_at")
        .first()
    )


def awaiting_by_ticket(tenant, ticket_ids) -> dict[int, AgentReply]:
    """The replies waiting for their requester, by ticket id, in one query (for lists such as
    the portal's "my requests")."""
    waiting = (
        AgentReply.objects.for_tenant(tenant)
        .filter(ticket_id__in=list(ticket_ids), state=ReplyState.AWAITING)
        .order_by("ticket_id", "-created_at")
        .distinct("ticket_id")
    )
    return {reply.ticket_id: reply for reply in waiting}


@transaction.atomic
def reply_confirm(*, ticket: Ticket, actor, solved: bool) -> AgentReply:
    """The requester's answer to "did this solve it?". Yes resolves the ticket; no hands it
    to a person (escalated), with their answer on the ticket."""
    from incidents import services

    if actor is None or not services._is_requester(ticket, actor):
        raise PermissionDenied("Only the requester can say whether this solved it.")
    locked = services._lock(ticket)
    reply = (
        AgentReply.objects.for_tenant(ticket.tenant)
        .select_for_update()
        .filter(ticket=locked, state=ReplyState.AWAITING)
        .order_by("-created_at")
        .first()
    )
    if reply is None:
        raise ValidationError({"solved": "This ticket is not waiting for your confirmation."})
    reply.state = ReplyState.CONFIRMED if solved else ReplyState.REJECTED
    reply.answered_at = timezone.now()
    reply.answered_by = actor
    reply.save(update_fields=["state", "answered_at", "answered_by"])
    if solved:
        _move(
            locked,
            Status.RESOLVED,
            actor,
            f"The requester confirmed the answer solved it.\n\n{reply.body}",
        )
    else:
        services.ticket_comment(
            ticket=locked,
            actor=None,
            author_label=AGENT_LABEL,
            body="Thank you — you said this did not solve it. A person from the service desk "
            "will take your ticket from here.",
        )
        _move(locked, Status.ESCALATED, actor, "The requester said the answer did not solve it.")
    audit.record(
        tenant=ticket.tenant,
        actor=actor,
        action="ticket.confirmed" if solved else "ticket.not_solved",
        target_type="ticket",
        target_id=ticket.number,
        target_repr=ticket.title,
        metadata={"reply_id": reply.pk},
    )
    return reply


def _move(ticket: Ticket, status: str, actor, note: str) -> Ticket:
    from incidents import services

    if ticket.status == status:
        return ticket
    if (
        status not in ticket.allowed_transitions
        and Status.IN_PROGRESS in ticket.allowed_transitions
    ):
        ticket = services.ticket_transition(
            ticket=ticket, actor=actor, status=Status.IN_PROGRESS, row_locked=True
        )
    return services.ticket_transition(
        ticket=ticket, actor=actor, status=status, note=note[:9000], row_locked=True
    )


def close_unanswered(tenant, *, now=None, batch: int = 200) -> list[str]:
    """Close the tickets whose "did this solve it?" got no reply in time. Safe to run twice:
    each reply is claimed under its row lock and only while it still waits."""
    now = now or timezone.now()
    due = list(
        AgentReply.objects.for_tenant(tenant)
        .filter(state=ReplyState.AWAITING, due_at__lte=now)
        .values_list("pk", flat=True)[:batch]
    )
    closed = []
    for pk in due:
        with transaction.atomic():
            reply = (
                AgentReply.objects.for_tenant(tenant)
                .select_for_update(skip_locked=True)
                .select_related("ticket")
                .filter(pk=pk, state=ReplyState.AWAITING)
                .first()
            )
            if reply is None:
                continue
            reply.state = ReplyState.EXPIRED
            reply.answered_at = now
            reply.save(update_fields=["state", "answered_at"])
            _close_expired(reply)
            closed.append(reply.ticket.number)
    return closed


def _close_expired(reply: AgentReply) -> None:
    from incidents import services

    ticket = reply.ticket
    ticket.tenant = reply.tenant
    locked = services._lock(ticket)
    if locked.status in (Status.CLOSED, Status.CANCELLED):
        return
    services.ticket_comment(
        ticket=locked,
        actor=None,
        author_label=AGENT_LABEL,
        body="We did not hear back, so we have closed this ticket. If the problem is still "
        "there, open a new request and mention this ticket's number.",
    )
    note = f"Closed without a reply from the requester after the agent's answer.\n\n{reply.body}"
    if locked.status != Status.RESOLVED:
        locked = _move(locked, Status.RESOLVED, None, note)
    services.ticket_transition(
        ticket=locked, actor=None, status=Status.CLOSED, note="No reply.", row_locked=True
    )


# --------------------------------------------------------------------------- incidents


INCIDENT_WINDOW = timedelta(hours=4)


def incident_for(*, ticket: Ticket, reasons: list[str], similar: list[str]) -> tuple[Ticket, bool]:
    """The open incident this ticket belongs to: one a sibling ticket was already linked to,
    else a new one for people (no agent starts on it). Returns (incident, created)."""
    from incidents import services

    linked = (
        AgentReply.objects.for_tenant(ticket.tenant)
        .filter(
            kind=ReplyKind.INCIDENT,
            ticket__number__in=similar,
            incident__status__in=[Status.NEW, Status.TRIAGED, Status.IN_PROGRESS, Status.ESCALATED],
            created_at__gte=timezone.now() - INCIDENT_WINDOW,
        )
        .select_related("incident")
        .first()
    )
    if linked is not None and linked.incident is not None:
        return linked.incident, False
    incident = services.ticket_create(
        tenant=ticket.tenant,
        actor=None,
        kind=Kind.INCIDENT,
        title=f"Shared fault: {ticket.title}"[:200],
        description=(
            f"Opened by the service-desk agent from {ticket.number}: "
            + "; ".join(reasons)
            + ".\n\n"
            + ticket.description[:4000]
        ),
        requester_email=ticket.requester_email,
        category=ticket.category,
        priority=Priority.HIGH if ticket.priority != Priority.CRITICAL else Priority.CRITICAL,
        detected_by="service-desk agent",
        source=ticket.source,
        start_agent=False,
    )
    return incident, True
