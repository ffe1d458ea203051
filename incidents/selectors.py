"""Reading tickets. Every view, partial, API endpoint and task starts here: this is the gate.

``tickets_visible_to`` is the one tenant-scoped, permission-filtered queryset;
``access_ticket`` returns one ticket or raises 404 (may not see it: do not reveal it exists)
or 403 (may see it, may not change it).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.exceptions import PermissionDenied
from django.db.models import F, Q, QuerySet
from django.http import Http404

from agentops.models import Membership, Role
from incidents.models import (
    OPEN_STATUSES,
    PRIORITY_RANK,
    Comment,
    Ticket,
    TicketUserObjectPermission,
)


def tickets_visible_to(membership: Membership) -> QuerySet[Ticket]:
    """All tickets of the membership's tenant that its user may see."""
    tickets = Ticket.objects.for_tenant(membership.tenant)
    if membership.can("ticket.view_all"):
        return tickets
    user = membership.user
    # Requesters see their own tickets and those shared with them one by one (guardian).
    # The shared ids are read first (a short list): "OR id IN (subquery)" would stop
    # PostgreSQL from OR-ing the index bitmaps and scan every ticket of the tenant.
    shared = list(
        TicketUserObjectPermission.objects.filter(
            user=user, permission__codename="view_ticket"
        ).values_list("content_object_id", flat=True)
    )
    visible = Q(requester=user)
    if user.email:
        # A ticket opened by e-mail or API for their address (stored lower-case) is theirs too.
        visible |= Q(requester__isnull=True, requester_email=user.email.lower())
    if shared:
        visible |= Q(pk__in=shared)
    return tickets.filter(visible)


def can_write_ticket(membership: Membership, ticket: Ticket) -> bool:
    if membership.can("ticket.write"):
        return True
    return membership.user.has_perm("incidents.change_ticket", ticket)


def access_ticket(membership: Membership | None, number: str, *, write: bool = False) -> Ticket:
    if membership is None:
        raise Http404("No such ticket")
    ticket = (
        tickets_visible_to(membership)
        .select_related("assignee", "requester")
        .filter(number=number.upper())
        .first()
    )
    if ticket is None:
        raise Http404("No such ticket")
    if write and not can_write_ticket(membership, ticket):
        raise PermissionDenied("You may view this ticket but not change it.")
    return ticket


def comments_visible_to(membership: Membership, ticket: Ticket) -> QuerySet[Comment]:
    comments = ticket.comments.select_related("author")
    if not membership.can("ticket.internal_note"):
        comments = comments.filter(is_internal=False)
    return comments


SORTS = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "priority": ("priority_rank", "-created_at", "-id"),
    "sla": (F("sla_due").asc(nulls_last=True), "-id"),
    "updated": ("-updated_at", "-id"),
    "number": ("number",),
}


@dataclass(frozen=True)
class QueueFilters:
    q: str = ""
    status: str = ""
    priority: str = ""
    kind: str = ""
    category: str = ""
    assignee: str = ""  # "", "me", "none" or a user id
    sort: str = "newest"


def ticket_queue(membership: Membership, filters: QueueFilters) -> QuerySet[Ticket]:
    """The queue: visible tickets, filtered, searched and sorted. Paginated through
    ``queue_page``: a COUNT and the page, plus the matches' ids when they are few."""
    qs = tickets_visible_to(membership).select_related("assignee")
    if filters.status == "open":
        qs = qs.filter(status__in=sorted(OPEN_STATUSES))
    elif filters.status:
        qs = qs.filter(status=filters.status)
    if filters.priority:
        # priority_rank is generated from priority one to one, and indexed (priority is not).
        rank = PRIORITY_RANK.get(filters.priority)
        qs = qs.filter(priority_rank=rank) if rank else qs.filter(priority=filters.priority)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.category:
        qs = qs.filter(category=filters.category)
    if filters.assignee == "me":
        qs = qs.filter(assignee=membership.user)
    elif filters.assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif filters.assignee.isdigit():
        qs = qs.filter(assignee_id=int(filters.assignee))
    order = SORTS.get(filters.sort, SORTS["newest"])
    if filters.q:
        if _looks_like_number(filters.q):
            return qs.filter(number=filters.q.strip().upper()).order_by(*order)
        query = SearchQuery(filters.q, search_type="websearch", config="english")
        qs = qs.filter(search_vector=query)
        if filters.sort == "relevance" or filters.sort not in SORTS:
            return qs.annotate(rank=SearchRank(F("search_vector"), query)).order_by(
                "-rank", "-created_at", "-id"
            )
    return qs.order_by(*order)


# At most this many matches: read a page from the matches' ids (see queue_page). Around the
# break-even at 100k tickets: walking the index finds 25 of 1,000 evenly spread matches in
# ~2,500 rows, about what reading 1,000 matches twice costs.
FEW_MATCHES = 1000


def queue_page(tickets: QuerySet[Ticket], total: int, start: int, stop: int) -> list[Ticket]:
    """Rows ``start:stop`` of a queue whose COUNT is already known (``total``).

    PostgreSQL reads a sorted page by walking the sort's index and testing each row against
    the filters: quick while matches are frequent, but a search for a rare word (or filters
    that rarely meet) walks every ticket of the tenant to find a handful (100k tickets:
    ~120 ms). When the count says the matches are few, their ids come first, through the
    indexes that find them (GIN, filters), and only those rows are sorted.
    """
    if start >= total:
        return []
    if total <= FEW_MATCHES:
        # No cap on the ids: a ticket opened since the count must not push one off the page.
        ids = list(tickets.order_by().values_list("pk", flat=True))
        tickets = tickets.filter(pk__in=ids)
    return list(tickets[start:stop])


def _looks_like_number(q: str) -> bool:
    q = q.strip().upper()
    return len(q) >= 4 and q[:3] in {"REQ", "INC"} and q[3:].isdigit()


def tenant_staff(tenant) -> QuerySet:
    """Users who can be assigned tickets in a tenant (agents and admins)."""
    from django.contrib.auth import get_user_model

    return (
        get_user_model()
        .objects.filter(memberships__tenant=tenant, memberships__role__in=[Role.AGENT, Role.ADMIN])
        .order_by("username")
    )
