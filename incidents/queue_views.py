"""Console views for queues and access: the queue pages, a ticket's queue, and the Access
panels (grant / revoke view or work on a queue or one ticket). Each goes through the gates in
incidents.selectors; writes go through incidents.services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from agentops.access import require_capability, tenant_member
from incidents import services, taxonomy
from incidents.forms import AccessForm, QueueCreateForm
from incidents.models import OPEN_STATUSES, Queue, Ticket
from incidents.selectors import (
    access_holders,
    access_queue,
    access_ticket,
    may_see_queues,
    queue_overview,
    queues_visible_to,
    tenant_members,
    tickets_visible_to,
)


def _access_context(obj: Queue | Ticket, post_url: str, members, form=None) -> dict:
    return {
        "holders": access_holders(obj),
        "form": form or AccessForm(members=members),
        "members": members,
        "post_url": post_url,
        "subject": "queue" if isinstance(obj, Queue) else "ticket",
    }


def ticket_access_context(membership, ticket: Ticket, form=None) -> dict:
    """The ticket page's Access panel (admins only: the caller checked access.manage)."""
    members = tenant_members(membership.tenant)
    url = reverse("incidents:ticket-access", args=[ticket.number])
    return _access_context(ticket, url, members, form)


def queue_access_context(membership, queue: Queue, form=None) -> dict:
    members = tenant_members(membership.tenant)
    url = reverse("queues:access", args=[queue.slug])
    return _access_context(queue, url, members, form)


def _require_queues(membership) -> None:
    if not may_see_queues(membership):
        raise PermissionDenied("Your role does not work queues.")


@tenant_member
def queue_list(request, form=None, status=200):
    membership = request.membership
    _require_queues(membership)
    can_manage = membership.can("access.manage")
    queues, unrouted = queue_overview(membership)
    labels = taxonomy.labels_for(membership.tenant) if any(q.categories for q in queues) else {}
    rows = [
        {
            "q": q,
            "url": reverse("queues:detail", args=[q.slug]),
            "tickets_url": reverse("incidents:queue") + f"?queue={q.slug}&status=open",
            "categories": [labels.get(c, c) for c in q.categories],
        }
        for q in queues
    ]
    context = {
        "rows": rows,
        "unrouted": unrouted,
        "unrouted_url": reverse("incidents:queue") + "?queue=none&status=open",
        "can_manage": can_manage,
        "form": (form or _queue_form(membership)) if can_manage else None,
    }
    return render(request, "incidents/queues.html", context, status=status)


@tenant_member
@require_POST
def queue_create(request):
    membership = request.membership
    require_capability(membership, "access.manage")
    form = _queue_form(membership, request.POST)
    if form.is_valid():
        try:
            queue = services.queue_create(
                tenant=membership.tenant, actor=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Queue {queue.name} created.")
            url = reverse("queues:detail", args=[queue.slug])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return queue_list(request, form=form, status=400)


@tenant_member
def queue_detail(request, slug: str):
    membership = request.membership
    queue = access_queue(membership, slug)
    in_queue = tickets_visible_to(membership).filter(queue=queue)
    context = {
        "queue": queue,
        "open_count": in_queue.filter(status__in=sorted(OPEN_STATUSES)).count(),
        "categories": [taxonomy.label_for(membership.tenant, c) for c in queue.categories],
        "tickets_url": reverse("incidents:queue") + f"?queue={queue.slug}",
        "recent": in_queue.select_related("assignee").order_by("-created_at", "-id")[:10],
    }
    if membership.can("access.manage"):
        context["access"] = queue_access_context(membership, queue)
    return render(request, "incidents/queue_detail.html", context)


def _apply_access(request, obj, form) -> int:
    """Grant or revoke per the form; returns the HTTP status (400 when the form or the service
    refused)."""
    if not form.is_valid():
        return 400
    data = form.cleaned_data
    # The choices are the tenant's members; the service checks membership again.
    user = get_user_model().objects.filter(pk=data["user"]).first()
    kwargs = {"actor": request.user, "user": user, "level": data["level"]}
    if isinstance(obj, Queue):
        call = (
            services.grant_queue_access
            if data["action"] == "grant"
            else services.revoke_queue_access
        )
        kwargs["queue"] = obj
    else:
        call = (
            services.grant_ticket_access
            if data["action"] == "grant"
            else services.revoke_ticket_access
        )
        kwargs["ticket"] = obj
    try:
        call(**kwargs)
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return 400
    return 200


def _access_response(request, context: dict, status: int, back: str, trigger: str = ""):
    if request.htmx:
        response = render(request, "incidents/_access.html", {"access": context}, status=status)
        if status < 400 and trigger:
            response["HX-Trigger"] = trigger
        return response
    if status >= 400:
        messages.error(request, " ".join(" ".join(e) for e in context["form"].errors.values()))
    return redirect(back)


@tenant_member
@require_POST
def queue_access(request, slug: str):
    membership = request.membership
    queue = access_queue(membership, slug, manage=True)
    members = tenant_members(membership.tenant)
    form = AccessForm(request.POST, members=members)
    status = _apply_access(request, queue, form)
    context = queue_access_context(membership, queue, form if status >= 400 else None)
    return _access_response(request, context, status, reverse("queues:detail", args=[slug]))


@tenant_member
@require_POST
def ticket_access(request, number: str):
    membership = request.membership
    ticket = access_ticket(membership, number)
    require_capability(membership, "access.manage")
    members = tenant_members(membership.tenant)
    form = AccessForm(request.POST, members=members)
    status = _apply_access(request, ticket, form)
    context = ticket_access_context(membership, ticket, form if status >= 400 else None)
    back = reverse("incidents:ticket-detail", args=[ticket.number])
    return _access_response(request, context, status, back, trigger="ticketChanged")


@tenant_member
@require_POST
def ticket_set_queue(request, number: str):
    """Move a ticket to another queue (staff who may work it)."""
    from incidents.views import _after_write, _detail_context

    membership = request.membership
    ticket = access_ticket(membership, number, write=True)
    if not membership.can("ticket.view_all"):
        raise PermissionDenied("Only the service desk routes tickets.")
    slug = request.POST.get("queue", "")
    queue = queues_visible_to(membership).filter(slug=slug).first() if slug else None
    if slug and queue is None:
        messages.error(request, "No such queue.")
        return _after_write(request, ticket, "sidebar", _detail_context(request, ticket), 400)
    ticket = services.ticket_set_queue(ticket=ticket, actor=request.user, queue=queue)
    ticket = access_ticket(membership, ticket.number)
    return _after_write(request, ticket, "sidebar", _detail_context(request, ticket))


def _queue_form(membership, data=None) -> QueueCreateForm:
    """The new-queue form, offering the tenant's own categories to route."""
    form = QueueCreateForm(data)
    form.fields["categories"].choices = taxonomy.choices_for(membership.tenant)
    return form
