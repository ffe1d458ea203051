"""Celery tasks for tickets. Thin: load by id, call a service."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from agentops import audit
from agentops.models import Tenant
from incidents.models import OPEN_STATUSES, Ticket


@shared_task(name="incidents.tasks.mark_sla_breaches")
def mark_sla_breaches() -> int:
    """Beat, every minute: flag open tickets whose SLA due time has passed, and audit each."""
    now = timezone.now()
    flagged = 0
    for tenant in Tenant.objects.filter(is_active=True):
        due = Ticket.objects.for_tenant(tenant).filter(
            status__in=sorted(OPEN_STATUSES), sla_due__lte=now, sla_breached=False
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
