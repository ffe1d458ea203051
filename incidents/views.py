"""Console views for tickets. Each one goes through the gate in incidents.selectors."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from agentops.access import require_capability, tenant_member
from agentops.audit_words import describe
from agentops.models import AuditEvent
from agentops.snapshot import snapshot_view
from incidents import oncall, selectors, services, taxonomy
from incidents import sla as sla_clock
from incidents.forms import (
    AssignForm,
    BulkForm,
    CommentForm,
    QueueFilterForm,
    TicketForm,
    TransitionForm,
)
from incidents.models import Category, Priority, Status, Ticket
from incidents.selectors import (
    QueueFilters,
    access_ticket,
    can_write_ticket,
    comments_visible_to,
    count_matches,
    is_ranked,
    list_choices,
    queue_page,
    rows_by_ids,
    tenant_staff,
    ticket_queue,
    tickets_visible_to,
)


class QueuePaginator(Paginator):
    """Django's Paginator over a capped count, whose page rows are read by
    ``selectors.queue_page``: a search with few matches does not walk the whole queue.

    The count stops at ``COUNT_CAP`` (``matches`` then reads "10,000+") and the pages reach
    that far. A relevance sort over more than ``FEW_MATCHES`` ranks only the newest
    ``RELEVANCE_CANDIDATES`` matches, so its pages end there (``ranked_only`` says so)."""

    matches = ""  # the count as shown: exact, or "10,000+"
    found = 0  # the capped count (cap + 1 means more)
    capped = False  # more than the cap match: pages stop there
    ranked_only = False

    def __init__(self, object_list, per_page, *, search: bool = False):
        super().__init__(object_list, per_page)
        self.search = search
        self.cap = selectors.SEARCH_COUNT_CAP if search else selectors.COUNT_CAP

    ids: list[int] | None = None  # a search's matches in page order (count_matches)

    @cached_property
    def count(self) -> int:
        # A search is counted by reading its matches' ids in page order (ranked for
        # relevance); other queues by a capped COUNT.
        counted = count_matches(self.object_list, self.cap, in_order=self.search)
        self.found = found = counted.found
        self.ids = counted.ids
        self.capped = found > self.cap
        self.matches = f"{self.cap:,}+" if self.capped else str(found)
        found = min(found, self.cap)
        if found > selectors.FEW_MATCHES and is_ranked(self.object_list):
            self.ranked_only = True
            return min(found, selectors.RELEVANCE_CANDIDATES)
        return found

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        if self.ids is not None:
            rows = rows_by_ids(self.object_list, self.ids, bottom, top)
        else:
            # queue_page decides "few matches" on what matched, not on how far pages go.
            rows = queue_page(self.object_list, self.found, bottom, top)
        return self._get_page(rows, number, self)


STATUS_LABELS = dict(Status.choices)
PRIORITY_LABELS = dict(Priority.choices)
CATEGORY_LABELS = dict(Category.choices)


def _short_delta(seconds: float) -> str:
    """'3 d', '5 h', '12 min', or '' under a minute: the queue shows many of these; Django's
    timesince is slow. Callers say the sub-minute case in words ("just now", "due now")."""
    seconds = abs(int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return ""


SLA_WORDS = {
    "met": "met",
    "breached": "missed",
    "none": "—",
    "ok": "on track",
    "at_risk": "at risk",
}


def _sla_text(t, now) -> str:
    """'due in 5 h', 'due now', '2 h overdue'; a closed ticket's SLA as 'met' / 'missed'."""
    if not (t.sla_due and t.is_open):
        return SLA_WORDS.get(t.sla_state, t.sla_state)
    delta = (t.sla_due - now).total_seconds()
    span = _short_delta(delta)
    if not span:
        return "due now"
    return f"due in {span}" if delta > 0 else f"{span} overdue"


def _business_sla(t, now) -> tuple[str, str]:
    """The row's SLA from the ticket's contract clock (business hours, paused while waiting on
    the requester), when it has one and it was loaded with the page (select_related)."""
    try:
        clock = t.sla_clock if t.is_open else None
    except ObjectDoesNotExist:  # a ticket from before contract SLAs: wall-clock time
        clock = None
    if clock is None:
        return t.sla_state, _sla_text(t, now)
    described = sla_clock.describe(clock, now=now)
    if described["state"] == "paused":
        return "paused", f"paused, {described['left_hours']:g} h left"
    return described["state"], _sla_text(t, now)


def queue_rows(tickets, queue_names: dict[int, str] | None = None, tenant=None) -> list[dict]:
    """What each queue row shows, computed once in Python (the page renders 25 at a time).
    ``tenant``: name categories by the tenant's own taxonomy (else the built-in names)."""
    queue_names = queue_names or {}
    tickets = list(tickets)
    categories = CATEGORY_LABELS
    if tenant is not None and any(t.category for t in tickets):
        categories = taxonomy.labels_for(tenant)
    now = timezone.now()
    rows = []
    for t in tickets:
        sla, sla_text = _business_sla(t, now)
        created_span = _short_delta((now - t.created_at).total_seconds())
        rows.append(
            {
                "t": t,
                "url": reverse("incidents:ticket-detail", args=[t.number]),
                "status": STATUS_LABELS.get(t.status, t.status),
                "priority": PRIORITY_LABELS.get(t.priority, t.priority),
                "category": categories.get(t.category, t.category) if t.category else "—",
                "sla": sla,
                "sla_text": sla_text,
                "sla_due": timezone.localtime(t.sla_due).strftime("%Y-%m-%d %H:%M")
                if t.sla_due
                else "",
                "created": timezone.localtime(t.created_at).strftime("%Y-%m-%d %H:%M"),
                "created_ago": f"{created_span} ago" if created_span else "just now",
                "assignee": t.assignee.username if t.assignee_id else "—",
                "queue": queue_names.get(t.queue_id, "—"),
            }
        )
    return rows


def _staff_choices(membership) -> list[tuple[str, str]]:
    if not membership.can("ticket.view_all"):
        return []
    return [(str(u.pk), u.get_full_name() or u.username) for u in tenant_staff(membership.tenant)]


def _apply_errors(form, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@tenant_member
def queue(request):
    # The tenant's categories are read once: the filter's choices and the rows' names.
    with taxonomy.memoised():
        return _queue(request)


def _queue(request):
    membership = request.membership
    choices = list_choices(membership)
    form = QueueFilterForm(
        request.GET or None,
        tenant=membership.tenant,
        staff_choices=choices.staff,
        queue_choices=choices.queues,
    )
    filters = QueueFilters()
    if form.is_bound and form.is_valid():
        filters = QueueFilters(**{k: v or "" for k, v in form.cleaned_data.items()})
    tickets = ticket_queue(membership, filters)
    paginator = QueuePaginator(tickets, settings.TICKETS_PER_PAGE, search=bool(filters.q))
    page = paginator.get_page(request.GET.get("page"))
    rows = queue_rows(page.object_list, choices.queue_names, membership.tenant)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "filters": filters,
        "querystring": query.urlencode(),
        "is_staff": membership.can("ticket.view_all"),
        "show_queue": bool(choices.queues),
        "can_bulk": membership.can("ticket.write"),
        "bulk_actions": BulkForm.ACTIONS,
    }
    template = "incidents/queue.html"
    # A history restore (Back after a pushed search; historyCacheSize is 0) needs the whole page.
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        template += "#results"
    return render(request, template, context)


@tenant_member
@require_http_methods(["GET", "POST"])
def ticket_create(request):
    membership = request.membership
    require_capability(membership, "ticket.create")
    staff = membership.can("ticket.view_all")
    staff_choices = _staff_choices(membership) if staff else []
    form = TicketForm(request.POST or None, staff=staff, staff_choices=staff_choices)
    # The tenant's own taxonomy (incidents.taxonomy), not only the nine built-in categories.
    form.fields["category"].choices = taxonomy.choices_for(
        membership.tenant, blank=form.fields["category"].choices[0][1]
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        kwargs = {
            "title": data["title"],
            "description": data["description"],
            "category": data["category"],
            "priority": data["priority"],
        }
        if staff:
            assignee = None
            if data.get("assignee"):
                assignee = tenant_staff(membership.tenant).filter(pk=data["assignee"]).first()
            email = data.get("requester_email") or None
            kwargs.update(
                kind=data["kind"],
                severity=data["severity"],
                affected_services=data["affected_services"],
                detected_by=data["detected_by"],
                requester_email=email,
                requester=(
                    services.user_for_email(tenant=membership.tenant, email=email)
                    if email
                    else request.user
                ),
                assignee=assignee,
            )
        try:
            ticket = services.ticket_create(
                tenant=membership.tenant, actor=request.user, source="console", **kwargs
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, f"{ticket.number} created.")
            url = reverse("incidents:ticket-detail", args=[ticket.number])
            if request.htmx:
                return HttpResponseClientRedirect(url)
            return redirect(url)
    template = "incidents/ticket_form.html"
    if request.htmx and not request.htmx.boosted:
        template += "#form"
    status = 400 if form.is_bound and form.errors else 200
    return render(request, template, {"form": form, "is_staff": staff}, status=status)


def _detail_context(request, ticket: Ticket, **forms) -> dict:
    membership = request.membership
    can_write = can_write_ticket(membership, ticket)
    # Assignees and queues for the sidebar's pickers in one query (list_choices' UNION).
    choices = list_choices(membership) if can_write else None
    staff_choices = choices.staff if choices else []
    context = {
        "ticket": ticket,
        "comments": comments_visible_to(membership, ticket),
        "history": _history(membership, ticket),
        "can_write": can_write,
        "can_comment": membership.can("ticket.comment"),
        "can_internal": membership.can("ticket.internal_note"),
        "comment_form": forms.get("comment_form") or CommentForm(),
        "transition_form": forms.get("transition_form") or TransitionForm(),
        "assign_form": forms.get("assign_form")
        or AssignForm(initial={"assignee": ticket.assignee_id}, staff_choices=staff_choices),
        "transitions": [(s, Status(s).label) for s in ticket.allowed_transitions],
    }
    context.update(_queue_context(membership, ticket, choices))
    context.update(_csat_context(membership, ticket, forms.get("csat_form")))
    context.update(_confirm_context(membership, ticket))
    context.update(_agent_context(request, ticket, can_write))
    staff = membership.can("ticket.view_all")
    context["pages"] = list(oncall.pages_for(ticket)) if staff and ticket.kind == "incident" else []
    context["sla"] = sla_clock.state(ticket)  # business-hours SLA (incidents.sla)
    return context


# What a requester's history shows: their ticket's life in plain words, and which changes of
# each event (no queue moves, triage, assignment, internal notes, agents or staff accounts).
PUBLIC_HISTORY: dict[str, tuple[str, ...]] = {
    "ticket.created": (),
    "ticket.status_changed": ("status",),
    "ticket.rated": ("csat",),
    "ticket.rerated": ("csat",),
}


def _history(membership, ticket: Ticket) -> list[dict]:
    """The ticket's audit events as sentences, newest first (50)."""
    events = AuditEvent.objects.for_tenant(membership.tenant).filter(
        target_type="ticket", target_id=ticket.number
    )
    public = not membership.can("ticket.view_all")
    if public:
        events = events.filter(action__in=PUBLIC_HISTORY)
    elif not membership.can("ticket.internal_note"):
        events = events.exclude(action="ticket.internal_note")
    rows = []
    for event in events.order_by("-created_at", "-id")[:50]:
        if public:
            event.is_viewer = event.actor_id == membership.user_id
            kept = PUBLIC_HISTORY[event.action]
            event.changes = {k: v for k, v in (event.changes or {}).items() if k in kept}
        said = describe(event, public=public)
        rows.append({"at": event.created_at, "said": said})
    return rows


def _csat_context(membership, ticket: Ticket, form=None) -> dict:
    from incidents.learning_views import csat_context

    return csat_context(membership, ticket, form)


def _confirm_context(membership, ticket: Ticket) -> dict:
    from incidents.confirm_views import confirm_context

    return confirm_context(membership, ticket)


def _queue_context(membership, ticket: Ticket, choices) -> dict:
    """The queue picker (staff who may work the ticket: ``choices`` is their list_choices)
    and the Access panel (admins)."""
    from incidents.queue_views import ticket_access_context

    context = {"can_set_queue": choices is not None and membership.can("ticket.view_all")}
    if context["can_set_queue"]:
        context["queue_choices"] = choices.queues
    if membership.can("access.manage"):
        context["access"] = ticket_access_context(membership, ticket)
    return context


def _agent_context(request, ticket: Ticket, can_write: bool) -> dict:
    """The ticket's latest agent run (staff only) and whether a new one may be started."""
    from agents.selectors import latest_run_for
    from agents.views import timeline_context

    run = latest_run_for(request.membership, "ticket", ticket.number)
    context = {
        "agent_run": run,
        "can_start_agent": can_write and ticket.is_open and (run is None or not run.is_active),
    }
    if run is not None:
        context.update({f"tl_{k}": v for k, v in timeline_context(request, run).items()})
    return context


@tenant_member
@snapshot_view
def ticket_detail(request, number: str):
    ticket = access_ticket(request.membership, number)
    return render(request, "incidents/ticket_detail.html", _detail_context(request, ticket))


def _after_write(request, ticket: Ticket, partial: str, context: dict, status: int = 200):
    """HTMX: re-render the changed parts of the page; plain POST: back to the ticket."""
    if request.htmx:
        response = render(
            request, f"incidents/ticket_detail.html#{partial}", context, status=status
        )
        if status < 400:  # a refused write changed nothing (and its refresh would race the next)
            response["HX-Trigger"] = "ticketChanged"
        return response
    if status >= 400:
        return render(request, "incidents/ticket_detail.html", context, status=status)
    return redirect("incidents:ticket-detail", number=ticket.number)


@tenant_member
@require_POST
def ticket_comment(request, number: str):
    membership = request.membership
    ticket = access_ticket(membership, number)
    require_capability(membership, "ticket.comment")
    form = CommentForm(request.POST)
    if form.is_valid():
        internal = form.cleaned_data["is_internal"]
        if internal and not membership.can("ticket.internal_note"):
            raise PermissionDenied("Only staff can write internal notes.")
        try:
            services.ticket_comment(
                ticket=ticket,
                actor=request.user,
                body=form.cleaned_data["body"],
                is_internal=internal,
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            return _after_write(request, ticket, "conversation", _detail_context(request, ticket))
    context = _detail_context(request, ticket, comment_form=form)
    return _after_write(request, ticket, "conversation", context, status=400)


@tenant_member
@require_POST
def ticket_transition(request, number: str):
    ticket = access_ticket(request.membership, number, write=True)
    form = TransitionForm(request.POST)
    if form.is_valid():
        try:
            ticket = services.ticket_transition(
                ticket=ticket,
                actor=request.user,
                status=form.cleaned_data["status"],
                note=form.cleaned_data["note"],
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(
                request, f"{ticket.number} is now {ticket.get_status_display().lower()}."
            )
            return _after_write(request, ticket, "sidebar", _detail_context(request, ticket))
    context = _detail_context(request, ticket, transition_form=form)
    return _after_write(request, ticket, "sidebar", context, status=400)


@tenant_member
@require_POST
def ticket_assign(request, number: str):
    membership = request.membership
    ticket = access_ticket(membership, number, write=True)
    form = AssignForm(request.POST, staff_choices=_staff_choices(membership))
    if form.is_valid():
        assignee = None
        if form.cleaned_data["assignee"]:
            assignee = (
                tenant_staff(membership.tenant).filter(pk=form.cleaned_data["assignee"]).first()
            )
        try:
            ticket = services.ticket_assign(ticket=ticket, actor=request.user, assignee=assignee)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            return _after_write(request, ticket, "sidebar", _detail_context(request, ticket))
    context = _detail_context(request, ticket, assign_form=form)
    return _after_write(request, ticket, "sidebar", context, status=400)


@tenant_member
@require_POST
def ticket_resolve(request, number: str):
    """ "Resolve with agent": hand the ticket to the service-desk agent."""
    ticket = access_ticket(request.membership, number, write=True)
    try:
        run = services.ticket_start_agent(ticket=ticket, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"The service-desk agent is on {ticket.number} ({run.run_id}).")
    return redirect("incidents:ticket-detail", number=ticket.number)


@tenant_member
@require_POST
def bulk(request):
    """Apply one action to many tickets; each goes through the same services, all or nothing."""
    membership = request.membership
    require_capability(membership, "ticket.write")
    form = BulkForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return _bulk_done(request)
    numbers = [n.upper() for n in form.cleaned_data["numbers"]]
    tickets = list(
        tickets_visible_to(membership).filter(number__in=numbers).select_related("assignee")
    )
    action = form.cleaned_data["action"]
    try:
        with transaction.atomic():
            for ticket in tickets:
                if action == "assign_me":
                    services.ticket_assign(ticket=ticket, actor=request.user, assignee=request.user)
                elif action == "unassign":
                    services.ticket_assign(ticket=ticket, actor=request.user, assignee=None)
                elif ticket.status != action:
                    services.ticket_transition(ticket=ticket, actor=request.user, status=action)
    except ValidationError as exc:
        messages.error(request, f"Nothing changed: {'; '.join(exc.messages)}")
    else:
        messages.success(request, f"{len(tickets)} ticket(s) updated.")
    return _bulk_done(request)


def _bulk_done(request):
    url = reverse("incidents:queue") + (
        "?" + request.POST["return_query"] if request.POST.get("return_query") else ""
    )
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@tenant_member
@require_POST
def page_acknowledge(request, number: str, page_id: int):
    """Acknowledge an on-call page from the incident page (audited)."""
    ticket = access_ticket(request.membership, number, write=True)
    page = get_object_or_404(oncall.pages_for(ticket), pk=page_id)
    oncall.acknowledge(page=page, actor=request.user)
    return _after_write(request, ticket, "pages", _detail_context(request, ticket))
