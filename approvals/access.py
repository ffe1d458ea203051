"""Who may see and decide which approval requests. The gate (``approvals.selectors``) reads this.

Two ways in:
- the tenant-wide capability ``approval.decide`` (reviewers, admins): every request;
- the capability ``approval.decide_granted`` (service-desk agents): only requests whose
  ``scope`` holds something granted to the user. approvals knows nothing of queues or tickets:
  whoever owns them registers a resolver, ``fn(user, tenant) -> set[str] | Q``, naming the
  scopes ("queue:12", "ticket:REQ0000042") granted to the user (or a Q over ApprovalRequest).

A request's scope is a path from broad to narrow ("queue:12/ticket:REQ0000042"); a grant on
any element covers it, so permissions inherit tenant → queue → ticket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from django.db.models import Q

from agentops.models import ROLE_CAPABILITIES, Membership

log = logging.getLogger(__name__)
DECIDE_ALL = "approval.decide"
DECIDE_GRANTED = "approval.decide_granted"
SEPARATOR = "/"

ScopeResolver = Callable[[object, object], "set[str] | Q | None"]
_RESOLVERS: list[ScopeResolver] = []


def register_scope_resolver(fn: ScopeResolver) -> ScopeResolver:
    """Register ``fn(user, tenant)``; idempotent (ready() may run twice in tests)."""
    if fn not in _RESOLVERS:
        _RESOLVERS.append(fn)
    return fn


def roles_with(capability: str) -> frozenset[str]:
    return frozenset(role for role, caps in ROLE_CAPABILITIES.items() if capability in caps)


def scope_path(*parts: str) -> str:
    """Join scope elements into a request's scope: scope_path("queue:3", "ticket:REQ1")."""
    return SEPARATOR.join(p for p in parts if p)[:200]


def scope_elements(scope: str) -> set[str]:
    return {p for p in (scope or "").split(SEPARATOR) if p}


def _resolved(user, tenant) -> tuple[set[str], list[Q]]:
    scopes: set[str] = set()
    filters: list[Q] = []
    for resolver in _RESOLVERS:
        result = resolver(user, tenant)
        if isinstance(result, Q):
            filters.append(result)
        elif result:
            scopes.update(str(s) for s in result)
    return scopes, filters


def _scope_q(scopes: Iterable[str]) -> Q:
    """Requests whose scope path contains one of ``scopes`` as a whole element."""
    q = Q(pk__in=[])
    for s in sorted(scopes):
        q |= (
            Q(scope=s)
            | Q(scope__startswith=s + SEPARATOR)
            | Q(scope__endswith=SEPARATOR + s)
            | Q(scope__contains=SEPARATOR + s + SEPARATOR)
        )
    return q


def granted_filter(user, tenant) -> Q | None:
    """A Q over ApprovalRequest for the scoped requests granted to ``user``; None: nothing."""
    scopes, filters = _resolved(user, tenant)
    if not scopes and not filters:
        return None
    q = _scope_q(scopes) if scopes else Q(pk__in=[])
    for extra in filters:
        q |= extra
    return q & ~Q(scope="")


def visibility_filter(membership) -> Q | None:
    """What ``membership`` may see of its tenant's requests: Q() = all, None = nothing."""
    if membership is None:
        return None
    if membership.can(DECIDE_ALL):
        return Q()
    if membership.can(DECIDE_GRANTED):
        return granted_filter(membership.user, membership.tenant)
    return None


def may_decide(user, request) -> bool:
    """The service's own check (views pass the gate first): tenant-wide, or the scope granted."""
    membership = Membership.objects.filter(user=user, tenant_id=request.tenant_id).first()
    if membership is None:
        return False
    if membership.can(DECIDE_ALL):
        return True
    if not membership.can(DECIDE_GRANTED) or not request.scope:
        return False
    scopes, filters = _resolved(user, request.tenant)
    if scope_elements(request.scope) & scopes:
        return True
    if filters:
        from approvals.models import ApprovalRequest

        q = Q(pk__in=[])
        for extra in filters:
            q |= extra
        return ApprovalRequest.objects.for_tenant(request.tenant).filter(q, pk=request.pk).exists()
    return False


def granted_cache_key(tenant_id, user_id) -> str:
    """Where the console nav caches "has any grant" (approvals.context_processors)."""
    from django.db import connection

    # Named by database too: test sessions (and staging) may share one Redis and reuse ids.
    return f"approvals:nav-granted:{connection.settings_dict['NAME']}:{tenant_id}:{user_id}"


def forget_grants(tenant_id, user_id) -> None:
    """Call when a grant changes, so the nav link shows (or hides) at once."""
    from django.core.cache import cache

    try:
        cache.delete(granted_cache_key(tenant_id, user_id))
    except Exception:  # the cache only saves a query; it expires within a minute anyway
        log.warning("Could not forget the cached approval grants", exc_info=True)
