"""Celery tasks for approvals. Thin: call a service."""

from __future__ import annotations

from celery import shared_task

from approvals import services


@shared_task(name="approvals.tasks.check_approval_slas")
def check_approval_slas() -> dict[str, int]:
    """Beat, every minute: expire, flag breaches (notify once) and escalate per policy."""
    return services.check_sla()
