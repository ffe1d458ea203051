"""Resolve the current tenant for every request.

The tenant is the one the user chose in the switcher (kept in the session), or their first
membership. ``request.tenant`` and ``request.membership`` are None for anonymous users and
for users without a membership; console views guard with ``agentops.access.tenant_member``.
"""

from __future__ import annotations

from agentops.audit_context import acting_as

SESSION_KEY = "agentops_tenant_id"


class TenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.memberships = []
        request.membership = None
        request.tenant = None
        user = request.user
        if user.is_authenticated:
            memberships = list(
                user.memberships.select_related("tenant").filter(tenant__is_active=True)
            )
            chosen = request.session.get(SESSION_KEY)
            current = next((m for m in memberships if m.tenant_id == chosen), None)
            if current is None and memberships:
                current = memberships[0]
            request.memberships = memberships
            request.membership = current
            request.tenant = current.tenant if current else None
        # Changes audited by signal receivers (admin, guardian) are attributed to this user.
        with acting_as(user if user.is_authenticated else None):
            return self.get_response(request)
