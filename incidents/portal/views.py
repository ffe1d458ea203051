"""Portal views: requesters' home, the catalogue forms and "my requests". Staff may open the
portal too (to see what requesters see); every read goes through the usual gates."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from agentops.access import require_capability, tenant_member
from incidents import services
from incidents.blueprints.onboarding import progress as onboarding_progress
from incidents.blueprints.onboarding import runs_for_tickets
from incidents.blueprints.onboarding import start_for_ticket as start_onboarding
from incidents.models import Comment, Source, Status
from incidents.portal.catalogue import CATALOGUE
from incidents.portal.models import EmailChoice
from incidents.portal.plain import PLAIN_STATUS
from incidents.selectors import tickets_visible_to

SEARCH_MAX = 300
ANSWERS = 5
MY_REQUESTS = 10
MIN_VECTOR = 0.35  # below this, and with no query word in it, a passage is not an answer


def answers(membership, query: str) -> list:
    """Knowledge the member may read that answers ``query``, best first, with citations."""
    from knowledge import retrieval
    from knowledge.embeddings import EmbeddingBackendError
    from knowledge.selectors import kinds_visible_to

    if len(query) < 3:
        return []
    try:
        hits = retrieval.search(
            membership.tenant, query, k=ANSWERS, kinds=kinds_visible_to(membership)
        )
    except EmbeddingBackendError:
        return []
    return [h for h in hits if h.scores.text > 0 or h.scores.vector >= MIN_VECTOR]


def my_requests(membership) -> list[dict]:
    """The member's own requests, newest first, each with its plain status and the latest
        message the service desk wrote to them (never an internal note), and the agent's
        question awaiting their answer, and the checklist of a new starter's onboarding they asked
    for. Four queries, five when one of them has an onboarding run."""
    user = membership.user
    tickets = list(
        tickets_visible_to(membership).filter(requester=user).order_by("-created_at")[:MY_REQUESTS]
    )
    latest: dict[int, Comment] = {}
    replies = (
        Comment.objects.for_tenant(membership.tenant)
        .filter(ticket__in=[t.pk for t in tickets], is_internal=False)
        .exclude(author=user)
        .order_by("ticket_id", "-created_at")
        .distinct("ticket_id")
    )
    for comment in replies:
        latest[comment.ticket_id] = comment
    from incidents.replies import awaiting_by_ticket

    waiting = awaiting_by_ticket(membership.tenant, [t.pk for t in tickets])
    # A new starter's onboarding, where the member asked for one: its checklist in plain words.
    runs = runs_for_tickets(membership.tenant, [t.number for t in tickets]) if tickets else {}
    checklists = onboarding_progress(list(runs.values()))
    return [
        {
            "ticket": t,
            "plain_status": PLAIN_STATUS.get(t.status, t.get_status_display()),
            "reply": latest.get(t.pk),
            "rate": t.status in (Status.RESOLVED, Status.CLOSED) and t.csat_score is None,
            "confirm": waiting.get(t.pk),  # the agent asked "did this solve it?"
            "onboarding": checklists.get(runs[t.number].pk) if t.number in runs else None,
        }
        for t in tickets
    ]


@tenant_member
@require_GET
def portal(request):
    membership = request.membership
    query = " ".join(request.GET.get("q", "").split())[:SEARCH_MAX]
    if "\x00" in query:
        query = ""
    context = {
        "q": query,
        "answers": answers(membership, query) if query else [],
        "catalogue": list(CATALOGUE.values()),
        "requests": my_requests(membership),
        "can_create": membership.can("ticket.create"),
    }
    if request.htmx and request.GET.get("part") == "answers":
        return render(request, "incidents/portal.html#answers", context)
    return render(request, "incidents/portal.html", context)


@tenant_member
@require_http_methods(["GET", "POST"])
def catalogue_request(request, slug: str):
    membership = request.membership
    require_capability(membership, "ticket.create")
    item = CATALOGUE.get(slug)
    if item is None:
        raise Http404("No such request form")
    form = item.form(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        onboarding = getattr(form, "onboarding", lambda: None)()
        try:
            with transaction.atomic():
                ticket = services.ticket_create(
                    tenant=membership.tenant,
                    actor=request.user,
                    requester=request.user,
                    source=Source.PORTAL,
                    audit_metadata={"catalogue": slug},
                    # The onboarding run works a new starter's request, not the service desk.
                    **({"start_agent": False} if onboarding else {}),
                    **form.ticket(),
                )
                if onboarding:
                    start_onboarding(ticket=ticket, actor=request.user, **onboarding)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            messages.success(request, f"Thank you. Your request {ticket.number} is with us.")
            return redirect("incidents:ticket-detail", ticket.number)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "incidents/portal_request.html", {"item": item, "form": form}, status=status
    )


class PreferenceForm(forms.Form):
    email = forms.ChoiceField(
        label="How should updates on your requests reach you?",
        choices=EmailChoice.choices,
        widget=forms.RadioSelect,
    )


@tenant_member
@require_http_methods(["GET", "POST"])
def preferences(request):
    """The person's own notification preference in this workspace (their profile)."""
    from incidents.portal import notify

    membership = request.membership
    current = notify.preference_for(membership.tenant, request.user)
    form = PreferenceForm(
        request.POST if request.method == "POST" else None, initial={"email": current}
    )
    if request.method == "POST" and form.is_valid():
        notify.preference_set(
            tenant=membership.tenant, user=request.user, email=form.cleaned_data["email"]
        )
        messages.success(request, "Saved. This is how we will keep you posted.")
        return redirect("portal:preferences")
    status = 400 if request.method == "POST" else 200
    return render(request, "incidents/portal_preferences.html", {"form": form}, status=status)
