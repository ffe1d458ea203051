"""Generate an incident from the sandbox page (agents and admins): the scenario is written
into the tenant's sandbox and the incident opens as monitoring would open it."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from agentops.access import tenant_member
from agentops.models import Role
from incidents.incident_scenarios import NAMES, generate_incident

MAY_GENERATE = {Role.AGENT, Role.ADMIN}


@tenant_member
@require_POST
def incident_generate(request):
    membership = request.membership
    if membership.role not in MAY_GENERATE:
        raise PermissionDenied("Only agents and admins generate incidents.")
    scenario = request.POST.get("scenario", "")
    if scenario not in NAMES:
        return HttpResponseBadRequest(f"Unknown scenario. Choose one of: {', '.join(NAMES)}.")
    try:
        ticket = generate_incident(
            tenant=membership.tenant,
            actor=request.user,
            scenario=scenario,
            ineffective=request.POST.get("ineffective") == "on",
        )
    except ValidationError as exc:
        return HttpResponseBadRequest("; ".join(exc.messages))
    return redirect("incidents:ticket-detail", number=ticket.number)
