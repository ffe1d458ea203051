"""Reading tickets and queues. Every view, partial, API endpoint and task starts here: this is
the gate.

``tickets_visible_to`` is the one tenant-scoped, permission-filtered queryset;
``access_ticket`` returns one ticket or raises 404 (may not see it: do not reveal it exists)
or 403 (may see it, may not change it). Permissions inherit tenant -> queue -> ticket: the
role's capabilities, then guardian grants on the ticket's queue, then on the ticket itself
(``ticket_grants``). ``access_queue`` is the queues' gate.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Q, QuerySet, Value
from django.http import Http404

from agentops.models import Membership, Role
from incidents.models import (
    OPEN_STATUSES,
    PRIORITY_RANK,
    Comment,
    Queue,
    QueueGroupObjectPermission,
    QueueUserObjectPermission,
    Ticket,
    TicketGroupObjectPermission,
    TicketUserObjectPermission,
)

# Codenames that grant seeing / working, per level of the inheritance tenant -> queue -> ticket.
# Working implies seeing. The role's capabilities (ticket.view_all, ticket.write) come first.
QUEUE_VIEW_PERMS = ("view_queue",)
QUEUE_WORK_PERMS = ("work_queue", "change_queue")
TICKET_VIEW_PERMS = ("view_ticket",)
TICKET_WORK_PERMS = ("change_ticket",)
# A user's tickets with no user attached, only their address (see TicketGrants.addressed), are
# listed by id up to this many; beyond, the queue matches them by address.
ADDRESSED_LISTED = 200


@dataclass(frozen=True)
class TicketGrants:
    """A user's guardian grants inside one tenant: the queues and tickets they may see / work."""

    view_queues: frozenset[int] = frozenset()
    work_queues: frozenset[int] = frozenset()
    view_tickets: frozenset[int] = frozenset()
    work_tickets: frozenset[int] = frozenset()
    # Tickets opened for the user's e-mail address with no user attached (by e-mail or API
    # before the account existed): theirs too. None when there are more than ADDRESSED_LISTED.
    addressed: frozenset[int] | None = frozenset()

    @property
    def queues(self) -> frozenset[int]:
        return self.view_queues | self.work_queues

    @property
    def tickets(self) -> frozenset[int]:
        return self.view_tickets | self.work_tickets

    def may_work(self, ticket: Ticket) -> bool:
        return ticket.pk in self.work_tickets or (
            ticket.queue_id is not None and ticket.queue_id in self.work_queues
        )


def ticket_grants(membership: Membership) -> TicketGrants:
    """The membership's queue and ticket grants, read in one query (a UNION of four tables).

    User grants and grants to the user's groups count, except grants to the role groups:
    those mirror roles of every tenant the user belongs to, and a tenant-wide role is the
    first level of the inheritance already. Memoised on the membership (one per request).
    """
    cached = membership.__dict__.get("_ticket_grants")
    if cached is not None:
        return cached
    user, tenant = membership.user, membership.tenant
    own_groups = Q(group__user=user) & ~Q(group__name__in=Role.values)
    columns = ("content_object_id", "permission__codename")
    ticket_perms = (*TICKET_VIEW_PERMS, *TICKET_WORK_PERMS)
    queue_perms = (*QUEUE_VIEW_PERMS, *QUEUE_WORK_PERMS)
    parts = [
        model.objects.filter(who, content_object__tenant=tenant, permission__codename__in=perms)
        .annotate(level=Value(level))
        .values_list("level", *columns)
        for model, who, level, perms in (
            (TicketUserObjectPermission, Q(user=user), "ticket", ticket_perms),
            (TicketGroupObjectPermission, own_groups, "ticket", ticket_perms),
            (QueueUserObjectPermission, Q(user=user), "queue", queue_perms),
            (QueueGroupObjectPermission, own_groups, "queue", queue_perms),
        )
    ]
    if user.email:
        # The tickets addressed to them (a partial index holds only tickets with no user).
        parts.append(
            Ticket.objects.for_tenant(tenant)
            .filter(requester__isnull=True, requester_email=user.email.lower())
            .order_by()
            .annotate(level=Value("addressed"), codename=Value(""))
            .values_list("level", "pk", "codename")[: ADDRESSED_LISTED + 1]
        )
    found: dict[tuple[str, bool], set[int]] = {
        key: set()
        for key in (("queue", False), ("queue", True), ("ticket", False), ("ticket", True))
    }
    addressed: set[int] = set()
    for level, object_id, codename in parts[0].union(*parts[1:], all=True):
        if level == "addressed":
            addressed.add(object_id)
            continue
        work = codename in (QUEUE_WORK_PERMS if level == "queue" else TICKET_WORK_PERMS)
        found[(level, work)].add(object_id)
    grants = TicketGrants(
        view_queues=frozenset(found[("queue", False)]),
        work_queues=frozenset(found[("queue", True)]),
        view_tickets=frozenset(found[("ticket", False)]),
        work_tickets=frozenset(found[("ticket", True)]),
        addressed=frozenset(addressed) if len(addressed) <= ADDRESSED_LISTED else None,
    )
    membership.__dict__["_ticket_grants"] = grants
    return grants


def tickets_visible_to(membership: Membership) -> QuerySet[Ticket]:
    """All tickets of the membership's tenant that its user may see.

    Inheritance, in order: the role (ticket.view_all: every ticket of the tenant); a guardian
    permission on a queue (view or work: every ticket in it); one on a ticket (that ticket).
    Requesters also see their own tickets.
    """
    tickets = Ticket.objects.for_tenant(membership.tenant)
    if membership.can("ticket.view_all"):
        return tickets
    user = membership.user
    # The granted ids are read first (short lists, one query): "OR id IN (subquery)" would
    # stop PostgreSQL from OR-ing the index bitmaps and scan every ticket of the tenant.
    grants = ticket_grants(membership)
    visible = Q(requester=user)
    ids = set(grants.tickets)
    if grants.addressed is None:
        # A ticket opened by e-mail or API for their address (stored lower-case) is theirs
        # too; past ADDRESSED_LISTED of them they are matched here rather than listed.
        visible |= Q(requester__isnull=True, requester_email=user.email.lower())
    else:
        # Usually none: then a requester's queue is "requester = me" alone, read in order
        # from (tenant, requester, created_at) instead of walking every ticket by date.
        ids |= grants.addressed
    if ids:
        visible |= Q(pk__in=sorted(ids))
    if grants.queues:
        visible |= Q(queue_id__in=sorted(grants.queues))
    return tickets.filter(visible)


def can_write_ticket(membership: Membership, ticket: Ticket) -> bool:
    """Work (change) a ticket the membership can see: the role, or a work grant on the
    ticket's queue or on the ticket itself."""
    if ticket.tenant_id != membership.tenant_id:
        return False
    if membership.can("ticket.write"):
        return True
    return ticket_grants(membership).may_work(ticket)


def access_ticket(membership: Membership | None, number: str, *, write: bool = False) -> Ticket:
    if membership is None:
        raise Http404("No such ticket")
    ticket = (
        tickets_visible_to(membership)
        .select_related("assignee", "requester", "queue", "sla_clock__calendar")
        .filter(number=number.upper())
        .first()
    )
    if ticket is None:
        raise Http404("No such ticket")
    if write and not can_write_ticket(membership, ticket):
        raise PermissionDenied("You may view this ticket but not change it.")
    return ticket


# --- queues -----------------------------------------------------------------------------------


def may_see_queues(membership: Membership | None) -> bool:
    """Staff see every queue of the tenant; others only the queues granted to them."""
    if membership is None:
        return False
    return membership.can("ticket.view_all") or bool(ticket_grants(membership).queues)


def queues_visible_to(membership: Membership) -> QuerySet[Queue]:
    queues = Queue.objects.for_tenant(membership.tenant)
    if membership.can("ticket.view_all"):
        return queues
    return queues.filter(pk__in=sorted(ticket_grants(membership).queues))


def access_queue(membership: Membership | None, slug: str, *, manage: bool = False) -> Queue:
    """The queue gate: 403 for a role that sees no queues (a requester), 404 for a queue the
    membership may not see (or another tenant's), 403 to manage it without access.manage."""
    if membership is None:
        raise Http404("No such queue")
    if not may_see_queues(membership):
        raise PermissionDenied("Your role does not work queues.")
    queue = queues_visible_to(membership).filter(slug=slug).first()
    if queue is None:
        raise Http404("No such queue")
    if manage and not membership.can("access.manage"):
        raise PermissionDenied("Only a tenant admin manages access.")
    return queue


def open_counts_by_queue(membership: Membership) -> dict[int | None, int]:
    """Open tickets the membership sees, per queue id (None: in no queue). One grouped query,
    an index-only scan of (tenant, status, queue)."""
    rows = (
        tickets_visible_to(membership)
        .filter(status__in=sorted(OPEN_STATUSES))
        .order_by()
        .values("queue_id")
        .annotate(n=Count("*"))  # not Count("pk"): the id is not in the index
        .values_list("queue_id", "n")
    )
    return dict(rows)


def queue_overview(membership: Membership) -> tuple[list[Queue], int | None]:
    """The visible queues, each with ``open_count``, and the open tickets in no queue (staff
    only; None for others). Two queries whatever the number of queues and tickets."""
    counts = open_counts_by_queue(membership)
    queues = list(queues_visible_to(membership))
    for queue in queues:
        queue.open_count = counts.get(queue.pk, 0)
    unrouted = counts.get(None, 0) if membership.can("ticket.view_all") else None
    return queues, unrouted


def queue_choices(membership: Membership) -> list[tuple[str, str]]:
    """(slug, name) of the visible queues, for filters and the ticket page."""
    return list(queues_visible_to(membership).values_list("slug", "name"))


@dataclass(frozen=True)
class ListChoices:
    """The ticket list's filter choices, and the queue names its rows show (by queue id)."""

    staff: list[tuple[str, str]]  # (user id, name)
    queues: list[tuple[str, str]]  # (slug, name)
    queue_names: dict[int, str]


def list_choices(membership: Membership) -> ListChoices:
    """Assignee and queue choices in one round trip (UNION ALL): the list page's query count
    is pinned. The rows' queue names come from here too, so the page's ticket query joins no
    queue table. Staff get the tenant's agents/admins and every queue; others no assignees
    and only their granted queues (no query at all when they have none)."""
    from django.db.models import CharField
    from django.db.models.functions import Cast

    text = CharField()
    queues = (
        queues_visible_to(membership)
        .order_by()
        .annotate(
            kind=Value("queue", output_field=text),
            ref=Cast("pk", text),
            blank=Value("", output_field=text),
        )
        .values_list("kind", "slug", "name", "ref", "blank")
    )
    if membership.can("ticket.view_all"):
        users = (
            tenant_staff(membership.tenant)
            .order_by()
            .annotate(kind=Value("user", output_field=text), key=Cast("pk", text))
            .values_list("kind", "key", "username", "first_name", "last_name")
        )
        rows = users.union(queues, all=True)
    elif ticket_grants(membership).queues:
        rows = queues
    else:
        return ListChoices([], [], {})
    staff, queue_rows = [], []
    for kind, key, name, first, last in rows:
        if kind == "user":
            staff.append((name, key, f"{first} {last}".strip() or name))
        else:
            queue_rows.append((name, key, int(first)))
    return ListChoices(
        staff=[(key, label) for _, key, label in sorted(staff)],
        queues=[(slug, name) for name, slug, _ in sorted(queue_rows)],
        queue_names={pk: name for name, _, pk in queue_rows},
    )


@dataclass(frozen=True)
class AccessHolder:
    """One user's direct grant on a queue or ticket, for the Access panel."""

    user_id: int
    username: str
    level: str  # "view" | "work"


def access_holders(obj: Queue | Ticket) -> list[AccessHolder]:
    """Users holding a direct guardian grant on ``obj`` (the gate already admitted ``obj``)."""
    if isinstance(obj, Queue):
        model, work = QueueUserObjectPermission, QUEUE_WORK_PERMS
    else:
        model, work = TicketUserObjectPermission, TICKET_WORK_PERMS
    levels: dict[tuple[int, str], str] = {}
    rows = model.objects.filter(content_object=obj).values_list(
        "user_id", "user__username", "permission__codename"
    )
    for user_id, username, codename in rows:
        key = (user_id, username)
        if codename in work or levels.get(key) == "work":
            levels[key] = "work"
        else:
            levels[key] = "view"
    return [
        AccessHolder(user_id, username, level)
        for (user_id, username), level in sorted(levels.items(), key=lambda kv: kv[0][1])
    ]


def tenant_members(tenant) -> list[tuple[int, str, str]]:
    """(user id, username, role) of every member: who may be granted access."""
    return list(
        Membership.objects.filter(tenant=tenant)
        .order_by("user__username")
        .values_list("user_id", "user__username", "role")
    )


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
    queue: str = ""  # "", "none" (unrouted) or a queue's slug
    sort: str = "newest"


def ticket_queue(membership: Membership, filters: QueueFilters) -> QuerySet[Ticket]:
    """The queue: visible tickets, filtered, searched and sorted. Paginated through
    ``queue_page``: a COUNT and the page, plus the matches' ids when they are few."""
    # Queue names come from ``list_choices`` (no join here: a search's relevance sort would
    # join every match before the LIMIT).
    # Each row's contract SLA clock (incidents.sla) comes in the same query (a join).
    qs = tickets_visible_to(membership).select_related("assignee", "sla_clock__calendar")
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
    if filters.queue == "none":
        qs = qs.filter(queue__isnull=True)
    elif filters.queue:
        qs = qs.filter(queue__slug=filters.queue)
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
# The queue counts matches up to this many and shows "10,000+" beyond: an exact COUNT(*) of a
# million tickets reads the whole index (~100 ms), a capped one stops after 10,001 entries.
COUNT_CAP = 10_000
# A search counts up to 1,000 ("1,000+"): its matches are checked in the heap (GIN has no
# index-only scan), so each counted match costs a page read.
SEARCH_COUNT_CAP = 1_000
# A relevance sort over many matches ranks the newest this many of them only: ranking reads
# every candidate's search vector, and "vpn" matches ~1 ticket in 8 (125k of 1M).
RELEVANCE_CANDIDATES = 1000


def queue_count(tickets: QuerySet[Ticket], cap: int) -> int:
    """The matches, counted up to ``cap + 1``: ``SELECT COUNT(*) FROM (... LIMIT cap + 1)``.
    A result above ``cap`` means "more than cap"; up to it, it is exact."""
    return tickets.order_by().values("pk")[: cap + 1].count()  # no rank computed to count


def is_ranked(tickets: QuerySet[Ticket]) -> bool:
    """Is this queue sorted by search relevance (``ticket_queue`` with sort=relevance)?"""
    return "rank" in tickets.query.annotations


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
    elif is_ranked(tickets):
        # More than FEW_MATCHES match: the newest candidates are found as relevance_candidates
        # finds them (a walk that stops once it has them), ranked in one query.
        ranked = count_matches(tickets, SEARCH_COUNT_CAP, in_order=True).ids or []
        return rows_by_ids(tickets, ranked, start, stop)
    elif start >= DEEP_OFFSET:
        # A deep page: skip the first rows as ids only (an index-only scan for the date
        # sorts), then read and join just the page's rows, not the skipped thousands.
        ids = list(tickets.values_list("pk", flat=True)[start:stop])
        position = {pk: i for i, pk in enumerate(ids)}
        return sorted(tickets.filter(pk__in=ids), key=lambda t: position[t.pk])
    return list(tickets[start:stop])


# From this offset on a page reads its ids first (see queue_page).
DEEP_OFFSET = 500


def relevance_candidates(tickets: QuerySet[Ticket]) -> QuerySet[Ticket]:
    """A relevance-sorted queue cut to its newest ``RELEVANCE_CANDIDATES`` matches, which alone
    are ranked: the candidates come from walking the date index (or the GIN index when the
    word is rare) and stop at the limit, instead of ranking every match before the LIMIT.
    ``count_matches`` and ``rows_by_ids`` read it with the ranking done in Python: the same
    rows, in the same order."""
    newest = tickets.order_by("-created_at", "-id").values("pk")[:RELEVANCE_CANDIDATES]
    return tickets.filter(pk__in=newest)


@dataclass(frozen=True)
class Counted:
    """A queue's matches counted up to a cap (``found``: cap + 1 means more); for a search,
    also the matches' ids in page order (``ids``, best first when ``ranked``)."""

    found: int
    ids: list[int] | None = None
    ranked: bool = False


def count_matches(tickets: QuerySet[Ticket], cap: int, *, in_order: bool = False) -> Counted:
    """``queue_count``; with ``in_order`` (a search) the matches are counted by reading their
    ids in the page's order.

    A search's matches cannot be counted from an index alone (GIN has no index-only scan),
    and a COUNT capped with LIMIT let PostgreSQL build whole bitmaps: 125k GIN entries for
    "vpn" AND'ed with 130k open high-priority tickets, 47-110 ms at 1M. Read in the sort's
    order instead, the query stops after cap + 1 matches (the date or filter index walked,
    or the GIN index and a sort when the word is rare), and the ids it returns are every
    page up to the cap: a page then reads just its rows (``rows_by_ids``).

    A relevance sort reads each of those matches' rank too, newest first, and orders its
    candidates (all matches up to FEW_MATCHES, else the newest RELEVANCE_CANDIDATES) by it
    here: the same rows and order as ``relevance_candidates``.

    Neither way is quick when a frequent word and a filter never meet (at 1M: "vpn" in the
    security category, none): the walk reads every ticket the filter matches (286 ms), and the
    capped COUNT ANDs bitmaps too large for work_mem that turn lossy and are rechecked in the
    heap (265 ms)."""
    if not in_order:
        return Counted(queue_count(tickets, cap))
    if is_ranked(tickets):
        reach = max(RELEVANCE_CANDIDATES, FEW_MATCHES, cap) + 1
        newest = tickets.order_by("-created_at", "-id").values_list("pk", "rank")
        rows = list(newest[:reach])
        keep = rows if len(rows) <= FEW_MATCHES else rows[:RELEVANCE_CANDIDATES]
        # relevance_candidates' SQL order: rank, then newest, then highest id. The rows come
        # newest first, and a stable sort on the rank alone keeps that order among equals
        # (no created_at read back: decoding 1,000 timestamps cost more than the query).
        keep.sort(key=lambda row: row[1], reverse=True)
        return Counted(min(len(rows), cap + 1), [pk for pk, _ in keep], ranked=True)
    ids = list(tickets.values_list("pk", flat=True)[: cap + 1])
    return Counted(len(ids), ids)


def rows_by_ids(tickets: QuerySet[Ticket], ids: list[int], start: int, stop: int) -> list:
    """Rows ``start:stop`` of a queue whose ids ``count_matches`` read in page order: one
    query for the page's rows, put in that order."""
    page = ids[start:stop]
    if not page:
        return []
    position = {pk: i for i, pk in enumerate(page)}
    return sorted(tickets.order_by().filter(pk__in=page), key=lambda t: position[t.pk])


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
