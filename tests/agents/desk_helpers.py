"""Shared pieces of the issue-13 service-desk behaviour tests."""

from __future__ import annotations

from agents import engine
from incidents.models import Comment
from incidents.services import ticket_create, ticket_start_agent


def drive(run, limit=20):
    outcomes = []
    for _ in range(limit):
        outcome = engine.advance(run.pk)
        outcomes.append(outcome)
        if outcome not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    return outcomes


def open_ticket(personas, title, description="", *, requester=None, tenant=None, **kw):
    requester = requester or personas.requester
    ticket = ticket_create(
        tenant=tenant or personas.tenant,
        actor=requester,
        title=title,
        description=description,
        start_agent=False,
        **kw,
    )
    return ticket, ticket_start_agent(ticket=ticket, actor=requester)


def public_words(ticket) -> str:
    """Everything the requester can read on the ticket (public comments)."""
    return "\n".join(
        Comment.objects.for_tenant(ticket.tenant)
        .filter(ticket=ticket, is_internal=False)
        .values_list("body", flat=True)
    )
