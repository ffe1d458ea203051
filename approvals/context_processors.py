"""The console nav's approvals link: for tenant-wide deciders, and for those granted a queue or
a ticket (``approvals.access`` decides; the answer for the latter is cached for a minute, as
it costs a query on every page and only shows or hides a link — the gate never caches)."""

from __future__ import annotations

import functools
import logging

from django.core.cache import cache

from approvals import access

log = logging.getLogger(__name__)
NAV_TTL = 60


def _granted(membership) -> bool:
    key = access.granted_cache_key(membership.tenant_id, membership.user_id)
    try:
        value = cache.get(key)
    except Exception:
        value = None
    if value is None:
        value = access.visibility_filter(membership) is not None
        try:
            cache.set(key, value, NAV_TTL)
        except Exception:
            log.warning("Could not cache the approvals nav", exc_info=True)
    return value


def nav(request):
    membership = getattr(request, "membership", None)
    if membership is None or not membership.can("ticket.view_all"):
        return {"nav_approvals": False}
    if membership.can(access.DECIDE_ALL):
        return {"nav_approvals": True}
    if not membership.can(access.DECIDE_GRANTED):
        return {"nav_approvals": False}
    return {"nav_approvals": functools.cache(lambda: _granted(membership))}
