from django.conf import settings


def console(request):
    """What the console layout needs on every page: the tenant switcher's choices."""
    return {
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": getattr(request, "membership", None),
        "memberships": getattr(request, "memberships", []),
        "environment": settings.ENVIRONMENT,
    }
