from django.conf import settings

from agentops.models import Role


def console(request):
    """What the console layout needs on every page: the tenant switcher's choices."""
    membership = getattr(request, "membership", None)
    return {
        # Decided here, not in templates: staff-only navigation (runs, sandbox).
        "nav_staff": bool(membership and membership.can("ticket.view_all")),
        # The approvals queue is for the roles that decide (approvals.services.DECIDER_ROLES).
        "nav_approvals": bool(membership and membership.role in (Role.REVIEWER, Role.ADMIN)),
        # The audit page: auditors and tenant admins.
        "nav_audit": bool(membership and membership.can("audit.view")),
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": getattr(request, "membership", None),
        "memberships": getattr(request, "memberships", []),
        "environment": settings.ENVIRONMENT,
    }
