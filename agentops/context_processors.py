import functools

from django.conf import settings


def _unread(request, membership):
    if membership is None:
        return 0

    @functools.cache
    def count() -> int:
        from agentops.notifications import unread_count

        return unread_count(membership.tenant, request.user, cached=True)

    return count


def console(request):
    """What the console layout needs on every page: the tenant switcher's choices."""
    membership = getattr(request, "membership", None)
    return {
        # Decided here, not in templates: staff-only navigation (runs, sandbox).
        "nav_staff": bool(membership and membership.can("ticket.view_all")),
        # The bell's unread count, counted only when a full page renders it.
        "notifications_unread": _unread(request, membership),
        # The dashboard and "my work": staff roles.
        "nav_dashboard": bool(membership and membership.can("ticket.view_all")),
        # Only what the role may use: auditors and reviewers open no tickets.
        "nav_create": bool(membership and membership.can("ticket.create")),
        # The audit page: auditors and tenant admins.
        "nav_audit": bool(membership and membership.can("audit.view")),
        # The usage page (tiers, quotas): tenant admins and auditors.
        "nav_usage": bool(membership and membership.can("usage.view")),
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": getattr(request, "membership", None),
        "memberships": getattr(request, "memberships", []),
        "environment": settings.ENVIRONMENT,
        "queue_poll_seconds": settings.CONSOLE_QUEUE_POLL_SECONDS,
        "bell_poll_seconds": settings.CONSOLE_BELL_POLL_SECONDS,
    }
