"""The access gate's shared parts: who is a member of the current tenant, and with which role.

Per-model gates (``incidents.selectors.access_ticket`` …) build on these. The rule of the
house: 404 when the user may not see an object (never reveal that it exists), 403 when they
may see it but not change it.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied


def tenant_member(view):
    """Login required, and a membership in the current tenant; else login page or 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if request.membership is None:
            raise PermissionDenied("You are not a member of any active workspace.")
        return view(request, *args, **kwargs)

    return wrapper


def require_capability(membership, capability: str) -> None:
    if membership is None or not membership.can(capability):
        raise PermissionDenied(f"Your role may not do this ({capability}).")
