"""Celery tasks of the portal. Thin: load by id, call a service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

# An unsent update older than the digest delay plus this lost its digest task: the broker was
# down when the burst's first update committed (later updates of the burst never schedule one
# of their own), or the task gave up its retries while the mail server was down.
DIGEST_GRACE = timedelta(minutes=10)


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


@shared_task(name="incidents.portal.tasks.send_overdue_digests", ignore_result=True)
def send_overdue_digests() -> int:
    """Beat: queue the digest of every requester with an update that waited past the digest
    delay and ``DIGEST_GRACE`` (its task was lost or gave up), while they can still receive
    one (active, with an address). Safe to run twice: the digest claims its rows under lock."""
    from incidents.portal.models import RequesterUpdate

    cutoff = timezone.now() - timedelta(seconds=settings.REQUESTER_DIGEST_SECONDS) - DIGEST_GRACE
    overdue = list(
        RequesterUpdate.objects.unscoped("maintenance: every tenant's overdue digests")
        .filter(emailed_at__isnull=True, created_at__lt=cutoff, user__is_active=True)
        .exclude(user__email="")
        .values_list("tenant_id", "user_id")
        .distinct()
        .order_by("tenant_id", "user_id")[:1000]
    )
    for tenant_id, user_id in overdue:
        send_requester_digest.delay(tenant_id, user_id)
    return len(overdue)
