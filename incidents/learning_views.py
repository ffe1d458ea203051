"""Console views of the learning loop on the ticket page: the requester's rating (CSAT) and
the similar past tickets with a playbook suggestion. Each goes through the ticket gate."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from agentops.access import tenant_member
from incidents import learning, services
from incidents.forms import CsatForm
from incidents.models import Status, Ticket
from incidents.selectors import access_ticket


def csat_context(membership, ticket: Ticket, form: CsatForm | None = None) -> dict:
    """Only the requester rates, once the ticket is resolved; staff see the rating."""
    can_rate = ticket.status in (Status.RESOLVED, Status.CLOSED) and services._is_requester(
        ticket, membership.user
    )
    initial = {"score": ticket.csat_score, "comment": ticket.csat_comment}
    return {
        "can_rate": can_rate,
        "show_csat": can_rate
        or (ticket.csat_score is not None and membership.can("ticket.view_all")),
        "csat_form": form or (CsatForm(initial=initial) if can_rate else None),
    }


@tenant_member
@require_POST
def ticket_rate(request, number: str):
    membership = request.membership
    ticket = access_ticket(membership, number)  # 404 when not visible
    form = CsatForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            ticket = services.ticket_rate(  # PermissionDenied (403) unless the requester
                ticket=ticket,
                actor=request.user,
                score=form.cleaned_data["score"],
                comment=form.cleaned_data["comment"],
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            status, form = 200, None
    if not request.htmx and status == 200:
        return redirect("incidents:ticket-detail", number=ticket.number)
    context = {
        "ticket": ticket,
        "csat_saved": status == 200,
        **csat_context(membership, ticket, form),
    }
    return render(request, "incidents/ticket_detail.html#csat", context, status=status)


@tenant_member
@require_GET
def ticket_similar(request, number: str):
    """The lazily loaded 'Similar past tickets' part (embedding the text takes a moment)."""
    membership = request.membership
    ticket = access_ticket(membership, number)
    rows, playbook = learning.similar_for_viewer(membership, ticket)
    context = {"ticket": ticket, "similar": rows, "playbook": playbook}
    return render(request, "incidents/ticket_detail.html#similar", context)
