"""On-call: who is on call now (a rota of shifts per tenant), paging them by e-mail and in
the console, and acknowledging a page from the incident page. Every write is audited."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from agentops import audit
from agentops.notifications import notify
from incidents.models import OnCallShift, Page, Ticket


def on_call_now(tenant, *, at=None):
    """The person on call at ``at`` (default now): the latest-started covering shift."""
    at = at or timezone.now()
    shift = (
        OnCallShift.objects.for_tenant(tenant)
        .filter(starts_at__lte=at, ends_at__gt=at, user__is_active=True)
        .select_related("user")
        .order_by("-starts_at", "-id")
        .first()
    )
    return shift.user if shift else None


def pages_for(ticket: Ticket):
    return (
        Page.objects.for_tenant(ticket.tenant_id)  # the id: no query for the tenant row
        .filter(ticket=ticket)
        .select_related("user", "acknowledged_by")
        .order_by("created_at", "id")
    )


@transaction.atomic
def page_for_incident(*, ticket: Ticket, reason: str) -> Page | None:
    """Page whoever is on call about ``ticket`` (once per person and ticket), e-mail and
    in-console, and assign the ticket to them if it has no assignee. None: nobody on call."""
    user = on_call_now(ticket.tenant)
    if user is None:
        audit.record(
            tenant=ticket.tenant, actor=None, action="incident.page_unanswered",
            target_type="ticket", target_id=ticket.number, target_repr=ticket.title,
            metadata={"reason": reason[:300]},
        )  # fmt: skip
        return None
    existing = pages_for(ticket).filter(user=user).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            page = Page.objects.create(
                tenant=ticket.tenant, ticket=ticket, user=user, reason=reason[:300]
            )
    except IntegrityError:  # paged concurrently: the first page stands
        return pages_for(ticket).get(user=user)
    link = reverse("incidents:ticket-detail", args=[ticket.number])
    notify(
        tenant=ticket.tenant,
        user=user,
        verb="incident.paged",
        title=f"Paged: {ticket.number} {ticket.title}"[:200],
        body=f"{reason}\nAcknowledge on the incident page.",
        link=link,
    )
    if ticket.assignee_id is None:  # the incident goes to the person paged
        from incidents import services

        services.ticket_assign(ticket=ticket, actor=None, assignee=user)
    audit.record(
        tenant=ticket.tenant, actor=None, action="incident.paged", target_type="ticket",
        target_id=ticket.number, target_repr=ticket.title,
        metadata={"user": user.get_username(), "reason": reason[:300]},
    )  # fmt: skip
    return page


@transaction.atomic
def acknowledge(*, page: Page, actor) -> Page:
    """The paged person (or any staff member who may change the incident) acknowledges.
    Acknowledging twice keeps the first acknowledgement."""
    locked = Page.objects.for_tenant(page.tenant).select_for_update().get(pk=page.pk)
    if locked.acknowledged_at is not None:
        return locked
    locked.acknowledged_at = timezone.now()
    locked.acknowledged_by = actor
    locked.save(update_fields=["acknowledged_at", "acknowledged_by"])
    audit.record(
        tenant=locked.tenant, actor=actor, action="incident.page_acknowledged",
        target_type="ticket", target_id=locked.ticket.number, target_repr=locked.ticket.title,
        metadata={"paged": locked.user.get_username()},
    )  # fmt: skip
    return locked
