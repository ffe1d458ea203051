"""The requester's "did this solve it?" on the console ticket page (issue 13).

One POST, through the ticket gate: 404 when the ticket is not visible, 403 unless the viewer is
its requester, 400 when it waits for no answer or the answer is neither yes nor no. HTMX swaps
the card in place; a plain form post goes back to the ticket (or to a safe ``next`` page, the
portal's list of requests).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from agentops.access import tenant_member
from incidents import replies, services
from incidents.models import Ticket
from incidents.selectors import access_ticket

ANSWERS = {"yes": True, "no": False}


def confirm_context(membership, ticket: Ticket) -> dict:
    """The reply the requester is asked to confirm, shown to the requester only."""
    if not services._is_requester(ticket, membership.user):
        return {"confirm_reply": None}
    return {"confirm_reply": replies.awaiting_reply(ticket)}


@tenant_member
@require_POST
def ticket_confirm(request, number: str):
    ticket = access_ticket(request.membership, number)  # 404 when not visible
    answer = (request.POST.get("solved") or "").strip().lower()
    error, done = "", None
    if answer not in ANSWERS:
        error = "Answer yes or no."
    else:
        try:  # PermissionDenied (403) unless the requester
            done = replies.reply_confirm(ticket=ticket, actor=request.user, solved=ANSWERS[answer])
        except ValidationError as exc:
            error = " ".join(exc.messages)
    status = 400 if error else 200
    nxt = request.POST.get("next") or ""
    if not request.htmx and not error:
        if nxt and url_has_allowed_host_and_scheme(nxt, {request.get_host()}, request.is_secure()):
            return redirect(nxt)
        return redirect("incidents:ticket-detail", number=ticket.number)
    context = {
        "ticket": ticket,
        "confirm_error": error,
        "confirm_done": done,
        **confirm_context(request.membership, ticket),
    }
    response = render(request, "incidents/_confirm.html", context, status=status)
    if not error:
        response["HX-Trigger"] = "ticketChanged"
    return response
