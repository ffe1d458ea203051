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


# What each capability lets a person do, in the words the 403 page uses (never the code name).
CAPABILITY_WORDS = {
    "ticket.create": "open tickets",
    "ticket.comment": "reply to tickets",
    "ticket.internal_note": "write internal notes",
    "ticket.write": "change tickets",
    "ticket.view_all": "use the service desk's pages",
    "access.manage": "manage who has access",
    "audit.view": "read the audit trail",
    "approval.decide": "decide approvals",
    "knowledge.view_all": "read every knowledge source",
}


def require_capability(membership, capability: str) -> None:
    if membership is None or not membership.can(capability):
        words = CAPABILITY_WORDS.get(capability, "do this")
        role = membership.get_role_display().lower() if membership is not None else "visitor"
        raise PermissionDenied(f"As {_article(role)} {role}, you cannot {words}.")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
