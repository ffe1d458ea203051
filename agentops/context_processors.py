from django.conf import settings


def console(request):
    """What the console layout needs on every page: the tenant switcher's choices."""
    membership = getattr(request, "membership", None)
    return {
        # Decided here, not in templates: staff-only navigation (runs, sandbox).
        "nav_staff": bool(membership and membership.can("ticket.view_all")),
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": getattr(request, "membership", None),
        "memberships": getattr(request, "memberships", []),
        "environment": settings.ENVIRONMENT,
    }
