"""In-console notifications (the bell) and their e-mail twin. Services write, selectors read.

``notify`` stores one notification for one user of one tenant and, after the caller's
transaction commits, e-mails it through Django's mail backend. Only the recipient reads a
notification: every query starts from ``notifications_for(tenant, user)``.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from agentops.models import Notification

log = logging.getLogger(__name__)


def notify(
    *,
    tenant,
    user,
    verb: str,
    title: str,
    body: str = "",
    link: str = "",
    email: bool = True,
) -> Notification | None:
    """One notification for ``user`` in ``tenant``; an e-mail too (after commit) if they have
    an address. Inactive or missing users get nothing."""
    if user is None or not getattr(user, "is_active", False):
        return None
    note = Notification.objects.create(
        tenant=tenant, user=user, verb=verb, title=title[:200], body=body, link=link[:500]
    )
    forget_unread(tenant.pk, user.pk)
    if email and user.email:
        transaction.on_commit(lambda: _send_email(user.email, title, body, link))
    return note


def _send_email(address: str, title: str, body: str, link: str) -> None:
    base = getattr(settings, "CONSOLE_BASE_URL", "")
    text = body + (f"\n\n{base}{link}" if link else "")
    try:
        send_mail(
            subject=f"[AgentOps] {title}"[:200],
            message=text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[address],
        )
    except Exception:  # the in-console notification is stored; a mail outage must not break
        log.exception("Could not e-mail a notification to %s", address)


def notifications_for(tenant, user) -> QuerySet[Notification]:
    """The one queryset of notifications a view may read: this user's, in this tenant."""
    return Notification.objects.for_tenant(tenant).filter(user=user)


# The bell's count is cached per user (every full page shows it); writes forget it.
UNREAD_TTL = 300


def _unread_key(tenant_id, user_id) -> str:
    # Named by database too: test sessions (and staging) may share one Redis and reuse ids.
    return f"notifications:unread:{connection.settings_dict['NAME']}:{tenant_id}:{user_id}"


def unread_count(tenant, user, *, cached: bool = False) -> int:
    key = _unread_key(tenant.pk, user.pk)
    if cached:
        try:
            value = cache.get(key)
        except Exception:  # the cache is an optimisation: count in the database instead
            value = None
        if value is not None:
            return value
    value = notifications_for(tenant, user).filter(read_at__isnull=True).count()
    if cached:
        try:
            cache.set(key, value, UNREAD_TTL)
        except Exception:
            log.warning("Could not cache the unread count", exc_info=True)
    return value


def forget_unread(tenant_id, user_id) -> None:
    """Drop the cached count now and again after commit (a page rendered meanwhile may have
    cached the old number)."""

    def forget():
        try:
            cache.delete(_unread_key(tenant_id, user_id))
        except Exception:
            log.warning("Could not forget the unread count", exc_info=True)

    forget()
    transaction.on_commit(forget)


def access_notification(tenant, user, pk: int) -> Notification:
    """The gate: someone else's notification (or another tenant's) is 404."""
    note = notifications_for(tenant, user).filter(pk=pk).first()
    if note is None:
        raise Http404("No such notification")
    return note


def mark_read(*, tenant, user, pk: int | None = None) -> int:
    """Mark one notification (or all of them) read; returns how many changed."""
    qs = notifications_for(tenant, user).filter(read_at__isnull=True)
    if pk is not None:
        access_notification(tenant, user, pk)
        qs = qs.filter(pk=pk)
    changed = qs.update(read_at=timezone.now())
    forget_unread(tenant.pk, user.pk)
    return changed
