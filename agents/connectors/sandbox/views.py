"""The sandbox console: the current tenant's directory and devices, read-only."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from agentops.access import tenant_member
from agents.connectors.sandbox import selectors
from agents.connectors.sandbox.models import LATEST_VPN_PROFILE_VERSION

SEARCH_MAX = 100


@tenant_member
def index(request):
    membership = request.membership
    # Staff roles only (agent, admin, reviewer, auditor): requesters do not see the directory.
    if not membership.can("ticket.view_all"):
        raise PermissionDenied("Your role may not view the sandbox.")
    q = request.GET.get("q", "").strip()[:SEARCH_MAX]
    users = selectors.directory_users(membership.tenant, q=q)
    devices = selectors.devices(membership.tenant, q=q)
    user_rows = list(users[: selectors.CONSOLE_ROWS])
    device_rows = list(devices[: selectors.CONSOLE_ROWS])
    context = {
        "q": q,
        "users": user_rows,
        "devices": device_rows,
        "users_total": len(user_rows) if len(user_rows) < selectors.CONSOLE_ROWS else users.count(),
        "devices_total": len(device_rows)
        if len(device_rows) < selectors.CONSOLE_ROWS
        else devices.count(),
        "operations": selectors.recent_operations(membership.tenant),
        "latest_vpn_profile": LATEST_VPN_PROFILE_VERSION,
    }
    template = "sandbox/index.html"
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        template += "#results"
    return render(request, template, context)
