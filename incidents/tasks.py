"""Celery tasks for tickets. Thin: load by id, call a service."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from agentops import audit
from agentops.models import Tenant
from agentops.prepared import prepared
from incidents.models import OPEN_STATUSES, Ticket


@shared_task(name="incidents.tasks.mark_sla_breaches")
def mark_sla_breaches() -> int:
    """Beat, every minute: the contract SLA pass (incidents.sla: warn at 75 %, breach with
    alerts, escalate by policy) over tickets with a clock, and the wall-clock flag for older
    tickets without one; each audited once."""
    from incidents import sla

    now = timezone.now()
    flagged = 0
    for tenant in Tenant.objects.filter(is_active=True):
        flagged += sla.check_tenant(tenant, now=now)["breached"]
        due = Ticket.objects.for_tenant(tenant).filter(
            status__in=sorted(OPEN_STATUSES),
            sla_due__lte=now,
            sla_breached=False,
            sla_clock__isnull=True,
        )
        numbers = list(due.values_list("number", flat=True)[:1000])
        if not numbers:
            continue
        Ticket.objects.for_tenant(tenant).filter(number__in=numbers).update(sla_breached=True)
        for number in numbers:
            audit.record(
                tenant=tenant,
                actor=None,
                action="ticket.sla_breached",
                target_type="ticket",
                target_id=number,
            )
        flagged += len(numbers)
    return flagged


@prepared
def _ticket_with_tenant(tenant_id: int, number: str):
    return (
        Ticket.objects.for_tenant(tenant_id).select_related("tenant", "queue").filter(number=number)
    )


def _ticket(tenant_id: int, number: str) -> Ticket | None:
    """The ticket with its tenant and queue, in one statement compiled once per process (every
    resolved ticket's learning task starts here); None when either is gone."""
    return _ticket_with_tenant.first(tenant_id, number)


@shared_task(
    name="incidents.tasks.learn_from_resolution",
    ignore_result=True,
    acks_late=True,
    autoretry_for=(ConnectionError, TimeoutError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def learn_from_resolution(tenant_id: int, number: str) -> bool:
    """After a ticket is resolved: index it as a past ticket (and a golden path if approved)."""
    from incidents import learning

    ticket = _ticket(tenant_id, number)
    if ticket is None:
        return False
    learning.learn_from_resolution(ticket)
    return True


@shared_task(
    name="incidents.tasks.learn_from_rating",
    ignore_result=True,
    acks_late=True,
    autoretry_for=(ConnectionError, TimeoutError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def learn_from_rating(tenant_id: int, number: str) -> bool:
    """After a CSAT rating: a 4 or 5 makes the resolution a golden path."""
    from incidents import learning

    ticket = _ticket(tenant_id, number)
    if ticket is None:
        return False
    learning.learn_from_rating(ticket)
    return True


@shared_task(name="incidents.tasks.purge_webhook_deliveries")
def purge_webhook_deliveries() -> int:
    """Beat, daily: stored webhook deliveries past their tenant's retention are deleted."""
    from incidents.intake.webhooks import purge_expired_deliveries

    return purge_expired_deliveries()


# The analytics rollups' beat task lives in its package; imported here so workers register it.
from incidents.analytics import tasks as analytics_tasks  # noqa: E402, F401


@shared_task(name="incidents.tasks.close_unanswered")
def close_unanswered() -> int:
    """Beat, hourly: close tickets whose "did this solve it?" went unanswered for the tenant's
    ``confirm_days`` (issue 13). Safe to run twice (each reply is claimed under its lock)."""
    from incidents import replies

    closed = 0
    for tenant in Tenant.objects.filter(is_active=True):
        closed += len(replies.close_unanswered(tenant))
    return closed
