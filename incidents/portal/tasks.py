"""Celery tasks of the portal. Thin: load by id, call a service."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    name="incidents.portal.tasks.send_requester_digest",
    autoretry_for=(ConnectionError, TimeoutError, OSError),
    retry_backoff=2,
    retry_backoff_max=120,
    max_retries=6,
)
def send_requester_digest(tenant_id: int, user_id: int) -> int:
    """One e-mail with every unsent update of this requester (see ``notify.digest_send``)."""
    from django.contrib.auth import get_user_model

    from agentops.models import Tenant
    from incidents.portal import notify

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    user = get_user_model().objects.filter(pk=user_id).first()
    if tenant is None or user is None:
        return 0
    return notify.digest_send(tenant=tenant, user=user)
