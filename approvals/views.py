"""Deciding approval requests from the console (the reviewer queue page comes with the approvals issue)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from agentops.access import tenant_member
from approvals import services
from approvals.models import ApprovalRequest


def access_approval(membership, pk: int) -> ApprovalRequest:
    """The gate: 404 outside the tenant (or for requesters), 403 for roles that cannot decide."""
    if membership is None or not membership.can("ticket.view_all"):
        raise Http404("No such approval")
    request = ApprovalRequest.objects.for_tenant(membership.tenant).filter(pk=pk).first()
    if request is None:
        raise Http404("No such approval")
    return request


@tenant_member
@require_POST
def decide(request, pk: int):
    approval = access_approval(request.membership, pk)
    if request.membership.role not in services.DECIDER_ROLES:
        raise PermissionDenied("Only reviewers and admins decide approvals.")
    decision = request.POST.get("decision")
    if decision not in ("approve", "reject"):
        messages.error(request, "Choose approve or reject.")
    else:
        try:
            services.decide(
                request=approval,
                actor=request.user,
                approve=decision == "approve",
                comment=request.POST.get("comment", ""),
            )
        except services.DecisionConflict as exc:
            messages.error(request, str(exc))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                f"{approval.action}: {'approved' if decision == 'approve' else 'rejected'}.",
            )
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("incidents:queue")
