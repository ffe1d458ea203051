"""The sandbox console: the current tenant's directory, devices, logs and the operations tools
applied, read-only, one tab at a time, each searched and paginated."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import render

from agentops.access import tenant_member
from agents.connectors.sandbox import selectors
from agents.connectors.sandbox.models import LATEST_VPN_PROFILE_VERSION
from agents.connectors.sandbox.scenarios import SCENARIOS

SEARCH_MAX = 100
PER_PAGE = 25
# (key, label, selector): recent operations first, the part people come for.
TABS = (
    ("operations", "Recent operations", selectors.operations),
    ("services", "Services", selectors.monitored_services),
    ("directory", "Directory", selectors.directory_users),
    ("devices", "Devices", selectors.devices),
    ("logs", "Logs", selectors.log_lines),
)


def _tab(request) -> str:
    wanted = request.GET.get("tab", "")
    return wanted if wanted in {key for key, _, _ in TABS} else TABS[0][0]


@tenant_member
def index(request):
    membership = request.membership
    # Staff roles only (agent, admin, reviewer, auditor): requesters do not see the directory.
    if not membership.can("ticket.view_all"):
        raise PermissionDenied("Your role may not view the sandbox.")
    q = request.GET.get("q", "").strip()[:SEARCH_MAX]
    current = _tab(request)
    tabs, page = [], None
    for key, label, select in TABS:
        found = select(membership.tenant, q=q)
        if key == current:
            paginator = Paginator(found, PER_PAGE)
            page = paginator.get_page(request.GET.get("page"))
            count = paginator.count
        else:
            count = found.count()
        tabs.append({"key": key, "label": label, "count": count, "active": key == current})
    context = {
        "q": q,
        "tab": current,
        "tabs": tabs,
        "page": page,
        "rows": list(page.object_list),
        "latest_vpn_profile": LATEST_VPN_PROFILE_VERSION,
        # Agents and admins may generate a fault scenario (the form posts to incidents).
        "scenarios": list(SCENARIOS) if membership.role in ("agent", "admin") else [],
    }
    template = "sandbox/index.html"
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        template += "#results"
    return render(request, template, context)
