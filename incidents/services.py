"""Writing tickets. Views, the API, tasks, admin actions and commands all come through here.

Every function is keyword-only, validates before it writes, runs in one transaction and
records an audit event. Validation problems raise ``django.core.exceptions.ValidationError``
with a message per field, which forms and the API show next to the field.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from agentops import audit, quotas
from agentops.models import Membership, Role, Tenant
from agentops.prepared import prepared
from agentops.services import sequence_next
from incidents import sla
from incidents.models import (
    KIND_PREFIX,
    OPEN_STATUSES,
    TRANSITIONS,
    Comment,
    Kind,
    Priority,
    Queue,
    QueueUserObjectPermission,
    Source,
    Status,
    Ticket,
    TicketUserObjectPermission,
)

NUMBER_DIGITS = 7
# Fields a person may change with ticket_update (status and assignee have their own services).
UPDATABLE_FIELDS = (
    "title",
    "description",
    "category",
    "priority",
    "severity",
    "affected_services",
    "detected_by",
    "resolution_notes",
)


def _atomic_refusing_before_writes(func):
    """``@transaction.atomic`` for a call in autocommit. Inside the caller's transaction, no
    block (and no savepoint, two round trips) of its own: the function refuses (raises) before
    it writes anything, so a caller that catches the refusal keeps a usable transaction, and a
    failure while writing fails the caller's change too."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if transaction.get_connection().in_atomic_block:
            return func(*args, **kwargs)
        with transaction.atomic():
            return func(*args, **kwargs)

    return wrapper


def _validate(ticket: Ticket, *, exclude: Iterable[str] = ()) -> None:
    # tenant/number are set by the service; search_vector belongs to the database trigger;
    # the CSAT score has its own service (ticket_rate), which checks its range, and checking
    # its CHECK constraint here cost a savepoint and a query on every ticket written.
    # With tenant and csat_score excluded, no constraint of Ticket is left to check (the
    # unique number involves the tenant), but Django still built a query to try the CSAT one
    # (1 ms per ticket): constraints are not validated here at all, the database holds them.
    # A relation given as an instance (the requester, the queue) needs no query to prove it
    # exists: the database's foreign key refuses one that vanished meanwhile.
    given = [
        f.name
        for f in Ticket._meta.concrete_fields
        if f.is_relation and f.is_cached(ticket) and getattr(ticket, f.name) is not None
    ]
    ticket.full_clean(
        exclude=["tenant", "search_vector", "csat_score", *given, *exclude],
        validate_unique=False,
        validate_constraints=False,
    )
    if ticket.category and "category" not in exclude:
        from incidents.taxonomy import check_category

        check_category(ticket.tenant_id, ticket.category)  # the tenant's own taxonomy


def sla_due_for(*, tenant: Tenant, priority: str, start=None):
    hours = (tenant.sla_hours or {}).get(priority)
    if hours is None:
        return None
    try:
        return (start or timezone.now()) + timedelta(hours=float(hours))
    except (TypeError, ValueError):
        return None


def _clean_services(services) -> list[str]:
    if services is None:
        return []
    if isinstance(services, str):
        services = services.split(",")
    return [s.strip() for s in services if s and s.strip()]


def _check_assignee(tenant: Tenant, assignee) -> None:
    if assignee is None:
        return
    if not Membership.objects.filter(
        tenant=tenant, user=assignee, role__in=[Role.AGENT, Role.ADMIN]
    ).exists():
        raise ValidationError(
            {"assignee": "The assignee must be an agent or admin of this tenant."}
        )


@_atomic_refusing_before_writes
def ticket_create(
    *,
    tenant: Tenant,
    actor,
    title: str,
    description: str = "",
    kind: str = Kind.REQUEST,
    requester_email: str | None = None,
    requester=None,
    category: str = "",
    priority: str = Priority.MEDIUM,
    severity: str = "",
    affected_services: Iterable[str] | str | None = None,
    detected_by: str = "",
    source: str = Source.CONSOLE,
    assignee=None,
    start_agent: bool | None = None,
    audit_metadata: dict | None = None,
) -> Ticket:
    """Open a ticket: validate, number it, start its SLA clock, audit it, start the agent.

    Every refusal (a field, the assignee, the category) comes before the first write: in a
    caller's transaction (an import, a batch) a ticket costs no savepoint of its own.

    ``start_agent`` None follows the tenant's setting (AgentConfig.auto_resolve_on_create).
    """
    if requester is None and requester_email is None and actor is not None:
        requester = actor
    email = (requester_email or (requester.email if requester is not None else "") or "").strip()
    now = timezone.now()
    ticket = Ticket(
        tenant=tenant,
        kind=kind,
        number="PENDING",
        title=(title or "").strip(),
        description=(description or "").strip(),
        requester_email=email.lower(),
        requester=requester,
        category=category or "",
        priority=priority or Priority.MEDIUM,
        severity=severity or "",
        affected_services=_clean_services(affected_services),
        detected_by=(detected_by or "").strip(),
        source=source,
        assignee=assignee,
        created_at=now,
        updated_at=now,
    )
    _validate(ticket)
    _check_assignee(tenant, assignee)
    ticket.sla_due = sla_due_for(tenant=tenant, priority=ticket.priority, start=now)
    seq = sequence_next(tenant=tenant, name=f"ticket:{kind}")
    ticket.number = f"{KIND_PREFIX[kind]}{seq:0{NUMBER_DIGITS}d}"
    ticket.save(force_insert=True)
    audit.record(
        tenant=tenant,
        actor=actor,
        action="ticket.created",
        target_type="ticket",
        target_id=ticket.number,
        target_repr=ticket.title,
        changes={
            "kind": kind,
            "priority": ticket.priority,
            "category": ticket.category,
            "source": source,
            "requester_email": ticket.requester_email,
        },
        metadata=audit_metadata or {},
    )
    sla.start(ticket, now=now)  # the SLA clock, in the tenant's business hours (incidents.sla)
    config = None
    if start_agent is None:
        from agents.engine import agent_config

        config = agent_config(tenant)
        start_agent = config.auto_resolve_on_create
    if start_agent:
        from agents.engine import BlueprintDisabled

        # The agent works for the requester, not for whoever typed the ticket in.
        try:
            ticket_start_agent(
                ticket=ticket,
                actor=actor,
                identity_verified=_identity_verified(ticket, actor),
                config=config,
                opened_now=True,
            )
        except BlueprintDisabled:
            pass  # the tenant switched the service-desk agent off: people take the ticket
        except quotas.QuotaExceeded as exc:  # the ticket stands; people take it
            audit.record(
                tenant=tenant,
                actor=actor,
                action="quota.run_refused",
                target_type="ticket",
                target_id=ticket.number,
                target_repr=ticket.title,
                metadata=exc.as_dict(),
            )
    return ticket


def atomic_unless_row_locked(func):
    """``@transaction.atomic``, without a savepoint when the caller passes ``row_locked=True``:
    such a caller holds the ticket's row lock, so it holds an open transaction too, and an
    error rolls that whole transaction back (a savepoint per service call was two round trips
    each in the agent pipeline)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with transaction.atomic(savepoint=not kwargs.get("row_locked", False)):
            return func(*args, **kwargs)

    return wrapper


def _lock(ticket: Ticket, *, row_locked: bool = False) -> Ticket:
    """Re-read the ticket under a row lock, so concurrent writers serialise.

    ``row_locked=True``: the caller read ``ticket`` with ``select_for_update`` in the
    transaction that is still open (the agent pipeline does), so it is fresh and locked
    already; reading it again would only cost a round trip.
    """
    if row_locked:
        return ticket
    locked = Ticket.objects.for_tenant(ticket.tenant).select_for_update().get(pk=ticket.pk)
    locked.tenant = ticket.tenant  # the same tenant (scoped above): no query to load it again
    return locked


@atomic_unless_row_locked
def ticket_update(*, ticket: Ticket, actor, row_locked: bool = False, **fields) -> Ticket:
    unknown = set(fields) - set(UPDATABLE_FIELDS)
    if unknown:
        raise ValidationError({name: "This field cannot be changed here." for name in unknown})
    locked = _lock(ticket, row_locked=row_locked)
    changes = {}
    for name, value in fields.items():
        if name == "affected_services":
            value = _clean_services(value)
        elif isinstance(value, str):
            value = value.strip()
        old = getattr(locked, name)
        if old != value:
            changes[name] = {"from": old, "to": value}
            setattr(locked, name, value)
    if not changes:
        return locked
    # Only the fields above changed: no foreign key to re-check, and the table's constraints
    # (unique number, CSAT range) are not touched by them (the database enforces both anyway).
    _validate(locked, exclude=["requester", "assignee", "queue"])
    if "priority" in changes and locked.is_open:
        locked.sla_due = sla_due_for(
            tenant=locked.tenant, priority=locked.priority, start=locked.created_at
        )
        locked.sla_breached = bool(locked.sla_due and locked.sla_due <= timezone.now())
    locked.updated_at = timezone.now()
    locked.save(update_fields=[*changes, "sla_due", "sla_breached", "updated_at"])
    if "priority" in changes:
        sla.recompute(locked)  # a new target from now on, in business hours
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="ticket.updated",
        target_type="ticket",
        target_id=locked.number,
        target_repr=locked.title,
        changes=changes,
    )
    return locked


@transaction.atomic
def ticket_assign(*, ticket: Ticket, actor, assignee) -> Ticket:
    locked = _lock(ticket)
    _check_assignee(locked.tenant, assignee)
    if locked.assignee_id == (assignee.pk if assignee else None):
        return locked
    old = locked.assignee.get_username() if locked.assignee else None
    locked.assignee = assignee
    locked.updated_at = timezone.now()
    locked.save(update_fields=["assignee", "updated_at"])
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="ticket.assigned",
        target_type="ticket",
        target_id=locked.number,
        target_repr=locked.title,
        changes={"assignee": {"from": old, "to": assignee.get_username() if assignee else None}},
    )
    return locked


@atomic_unless_row_locked
def ticket_transition(
    *,
    ticket: Ticket,
    actor,
    status: str,
    note: str = "",
    row_locked: bool = False,
    through: str | None = None,
    also: list[str] | tuple[str, ...] = (),
) -> Ticket:
    """Move a ticket along its lifecycle; resolving needs resolution notes.

    ``through``: pass through that status on the way (the agent resolves a triaged ticket
    *through* in progress): each hop must be allowed and is audited, but the row, the SLA
    clock and the requester see one change, to the final status. ``also``: fields the
    caller changed on the row-locked ``ticket``, written with the status."""
    if status not in Status.values or (through is not None and through not in Status.values):
        raise ValidationError({"status": f"Unknown status {status!r}."})
    locked = _lock(ticket, row_locked=row_locked)
    hops = [status] if through in (None, locked.status) else [through, status]
    at = locked.status
    for hop in hops:
        if hop not in TRANSITIONS[at]:
            raise ValidationError(
                {
                    "status": f"A {Status(at).label.lower()} ticket cannot become "
                    f"{Status(hop).label.lower()}."
                }
            )
        at = hop
    note = (note or "").strip()
    now = timezone.now()
    fields = ["status", "updated_at", *(f for f in also if f not in ("status", "updated_at"))]
    if status == Status.RESOLVED:
        notes = note or locked.resolution_notes
        if not notes:
            raise ValidationError({"note": "Say how it was resolved (resolution notes)."})
        locked.resolution_notes = notes
        locked.resolved_at = now
        fields += ["resolution_notes", "resolved_at"]
    elif status == Status.CLOSED:
        locked.closed_at = now
        fields.append("closed_at")
    elif locked.status == Status.RESOLVED:  # reopened
        locked.resolved_at = None
        fields.append("resolved_at")
    old = locked.status
    locked.status = status
    locked.updated_at = now
    # Pause, stop or resume the SLA clock; the ticket's copy of it is saved with the status,
    # and the clock's own UPDATE goes in the same statement.
    clock_writes: list = []
    if sla.on_status_change(locked, old, status, now=now, mirror=False, writes=clock_writes):
        fields += ["sla_due", "sla_breached"]
    if clock_writes:  # the ticket has no save() hooks or signals: its UPDATE, as save sends it
        from agents.engine import sql

        sql.execute_together(sql.update_sql(locked, fields), *clock_writes)
    else:
        locked.save(update_fields=fields)
    for before, after in zip([old, *hops], hops, strict=False):
        audit.record(
            tenant=locked.tenant,
            actor=actor,
            action="ticket.status_changed",
            target_type="ticket",
            target_id=locked.number,
            target_repr=locked.title,
            changes={"status": {"from": before, "to": after}},
            metadata={"note": note} if note and after == status else {},
        )
    from incidents.portal import notify  # the requester hears of it (bell, grouped e-mail)

    notify.on_status_changed(ticket=locked, old=old, new=status, actor=actor)
    if old in (Status.RESOLVED, Status.CLOSED) and status in OPEN_STATUSES:
        from incidents.blueprints import sentiment_monitor  # reopened: is someone frustrated?

        sentiment_monitor.watch(ticket=locked, reason="reopened")
    if status == Status.RESOLVED:
        _learn_after_commit("learn_from_resolution", locked)  # a past ticket to learn from
    return locked


def _learn_after_commit(task_name: str, ticket: Ticket) -> None:
    """Queue a learning task (incidents.tasks) once the ticket's change is committed."""
    from incidents import tasks

    task = getattr(tasks, task_name)
    tenant_id, number = ticket.tenant_id, ticket.number
    # robust: a broker outage logs the lost learning task instead of failing the agent's step
    # (or request) whose change is already committed.
    transaction.on_commit(lambda: task.delay(tenant_id, number), robust=True)


CSAT_COMMENT_MAX = 1000


@transaction.atomic
def ticket_rate(*, ticket: Ticket, actor, score: int, comment: str = "") -> Ticket:
    """The requester rates a resolved (or closed) ticket 1-5, with an optional comment.

    Only the requester rates; rating again updates the rating. A 4 or 5 makes the resolution
    a golden path (incidents.learning, after commit).
    """
    if actor is None or not _is_requester(ticket, actor):
        raise PermissionDenied("Only the requester can rate this ticket.")
    try:
        score = int(score)
    except (TypeError, ValueError):
        raise ValidationError({"score": "Give a rating from 1 to 5."}) from None
    if not 1 <= score <= 5:
        raise ValidationError({"score": "Give a rating from 1 to 5."})
    comment = (comment or "").strip()
    if len(comment) > CSAT_COMMENT_MAX:
        raise ValidationError({"comment": f"Keep the comment under {CSAT_COMMENT_MAX} characters."})
    locked = _lock(ticket)
    if locked.status not in (Status.RESOLVED, Status.CLOSED):
        raise ValidationError({"score": "Only a resolved ticket can be rated."})
    old = {"score": locked.csat_score, "comment": locked.csat_comment}
    if old == {"score": score, "comment": comment}:
        return locked
    locked.csat_score = score
    locked.csat_comment = comment
    locked.csat_at = timezone.now()
    locked.save(update_fields=["csat_score", "csat_comment", "csat_at"])
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="ticket.rated" if old["score"] is None else "ticket.rerated",
        target_type="ticket",
        target_id=locked.number,
        target_repr=locked.title,
        changes={"csat": {"from": old["score"], "to": score}},
        metadata={"comment": comment} if comment else {},
    )
    _learn_after_commit("learn_from_rating", locked)
    return locked


def _is_requester(ticket: Ticket, user) -> bool:
    """The ticket's requester: the linked account, or (unlinked) the account of its address."""
    if ticket.requester_id is not None:
        return ticket.requester_id == getattr(user, "pk", None)
    email = (getattr(user, "email", "") or "").lower()
    return bool(email) and email == ticket.requester_email


@atomic_unless_row_locked
def ticket_comment(
    *,
    ticket: Ticket,
    actor,
    body: str,
    is_internal: bool = False,
    author_label: str = "",
    row_locked: bool = False,
    touch: bool = True,
) -> Comment:
    """``author_label`` names a writer with no account here (a webhook: "Jane (jira)").
    ``row_locked``: the caller holds the ticket's row lock (no savepoint needed).
    ``touch=False``: the caller's transaction saves the ticket's ``updated_at`` itself (a
    status change with the comment), so the comment's own touch would be a second write."""
    comment = Comment(
        tenant=ticket.tenant,
        ticket=ticket,
        author=actor,
        author_label=(author_label or audit.actor_label(actor))[:150],
        body=(body or "").strip(),
        is_internal=is_internal,
    )
    comment.full_clean(exclude=["tenant", "ticket", "author"])
    comment.save(force_insert=True)
    if touch:
        Ticket.objects.for_tenant(ticket.tenant).filter(pk=ticket.pk).update(
            updated_at=comment.created_at
        )
    audit.record(
        tenant=ticket.tenant,
        actor=actor,
        action="ticket.internal_note" if is_internal else "ticket.commented",
        target_type="ticket",
        target_id=ticket.number,
        target_repr=ticket.title,
        metadata={"comment_id": comment.pk},
    )
    from incidents.portal import notify  # a public reply reaches the requester

    notify.on_public_reply(comment=comment)
    if not is_internal and _is_requester(ticket, actor):
        from incidents.blueprints import sentiment_monitor  # their words may show frustration

        sentiment_monitor.watch(ticket=ticket, reason="comment")
    return comment


@atomic_unless_row_locked
def ticket_record_triage(
    *,
    ticket: Ticket,
    decision: str,
    confidence: float,
    suggested_path: str,
    row_locked: bool = False,
    then_status: str | None = None,
) -> Ticket:
    """The triage agent's verdict on the ticket (category/priority go through ticket_update).

    ``then_status``: move the ticket on to that status as well (triaged), in the same write:
    the verdict is saved with the status change (``ticket_transition(also=…)``)."""
    locked = _lock(ticket, row_locked=row_locked)
    locked.triage_decision = decision
    locked.triage_confidence = round(float(confidence), 3)
    locked.suggested_path = (suggested_path or "")[:500]
    locked.updated_at = timezone.now()
    routed_to = _route_by_category(locked)
    fields = [
        "triage_decision",
        "triage_confidence",
        "suggested_path",
        "updated_at",
        *(["queue"] if routed_to else []),
    ]
    moves = then_status is not None and then_status != locked.status
    if not moves:
        locked.save(update_fields=fields)
    audit.record(
        tenant=locked.tenant,
        actor=None,
        action="ticket.triaged",
        target_type="ticket",
        target_id=locked.number,
        target_repr=locked.title,
        changes={
            "decision": decision,
            "confidence": locked.triage_confidence,
            "suggested_path": locked.suggested_path,
            **({"queue": {"from": None, "to": routed_to.name}} if routed_to else {}),
        },
    )
    if moves:
        locked = ticket_transition(
            ticket=locked, actor=None, status=then_status, row_locked=True, also=fields
        )
    return locked


@prepared
def _queues_by_name(tenant_id: int):
    return Queue.objects.for_tenant(tenant_id).order_by("name", "id")


def _route_by_category(ticket: Ticket) -> Queue | None:
    """Routing: a ticket without a queue goes to the queue whose categories hold its category
    (the first by name if several do). Sets ``ticket.queue``; the caller saves."""
    if ticket.queue_id is not None or not ticket.category:
        return None
    # All the tenant's queues (a handful), compiled once per process: a category contained in
    # a queue's list is checked here rather than with an array parameter the query could not
    # keep compiled.
    queue = next(
        (q for q in _queues_by_name(ticket.tenant_id) if ticket.category in q.categories), None
    )
    if queue is not None:
        ticket.queue = queue
    return queue


def _identity_verified(ticket: Ticket, actor) -> bool:
    """The requester opened the ticket themselves in an authenticated session."""
    return (
        ticket.requester_id is not None
        and actor is not None
        and getattr(actor, "pk", None) == ticket.requester_id
        and ticket.source in (Source.CONSOLE, Source.PORTAL, Source.CHAT)
    )


@_atomic_refusing_before_writes
def ticket_start_agent(
    *,
    ticket: Ticket,
    actor,
    identity_verified: bool | None = None,
    config=None,
    opened_now: bool = False,
):
    """Hand the ticket to its agent: incidents to incident response, requests to the
    service desk. Refuses while another run is active. ``opened_now``: the ticket was created
    in this transaction, so no run can be on it yet (nobody else can see its number) and the
    check is skipped; ``config``: the tenant's agent config when the caller has it.

    Every refusal (a run already on it, a closed ticket, the quota, the blueprint switched
    off) comes before the first write: ``ticket_create`` carries on without the run."""
    from agents.engine import start_run
    from agents.models import ACTIVE_RUN_STATUSES, Run
    from incidents.blueprints.incident_response import NAME as INCIDENT_RESPONSE
    from incidents.pipeline import NAME as SERVICE_DESK

    blueprint = INCIDENT_RESPONSE if ticket.kind == Kind.INCIDENT else SERVICE_DESK

    active = Run.objects.for_tenant(ticket.tenant).filter(
        subject_type="ticket", subject_id=ticket.number, status__in=sorted(ACTIVE_RUN_STATUSES)
    )
    if not opened_now and active.exists():
        raise ValidationError({"__all__": "An agent is already working on this ticket."})
    if not ticket.is_open:
        raise ValidationError({"__all__": f"The ticket is {ticket.get_status_display().lower()}."})
    staff = (
        actor is not None
        and Membership.objects.filter(
            user=actor, tenant=ticket.tenant, role__in=[Role.AGENT, Role.ADMIN, Role.REVIEWER]
        ).exists()
    )
    quotas.check_run(ticket.tenant, blueprint=blueprint)  # before any cost: refused, not queued
    if identity_verified is None:
        identity_verified = _identity_verified(ticket, actor)
    return start_run(
        tenant=ticket.tenant,
        blueprint=blueprint,
        subject_type="ticket",
        subject_id=ticket.number,
        subject_repr=f"{ticket.number} {ticket.title}"[:200],
        actor=actor,
        started_by_staff=staff,
        input={"identity_verified": identity_verified},
        config=config,
    )


def user_for_email(*, tenant: Tenant, email: str):
    """The tenant member with this e-mail address, if any (links API tickets to accounts)."""
    if not email:
        return None
    return (
        get_user_model()
        .objects.filter(memberships__tenant=tenant, email__iexact=email.strip())
        .first()
    )


# --- queues and access -------------------------------------------------------------------------
# Permissions inherit tenant -> queue -> ticket (incidents.selectors). These services grant and
# revoke the guardian permissions of the last two levels; each grant or revoke is one audit
# event, written here (the signal receivers in incidents.signals skip what is claimed here).

ACCESS_LEVELS = ("view", "work")
QUEUE_LEVEL_PERMS = {"view": ("view_queue",), "work": ("view_queue", "work_queue")}
TICKET_LEVEL_PERMS = {"view": ("view_ticket",), "work": ("view_ticket", "change_ticket")}
# Revoking "work" leaves seeing; revoking "view" takes everything (working implies seeing).
QUEUE_REVOKE_PERMS = {
    "view": ("view_queue", "work_queue", "change_queue"),
    "work": ("work_queue", "change_queue"),
}
TICKET_REVOKE_PERMS = {"view": ("view_ticket", "change_ticket"), "work": ("change_ticket",)}


def _clean_categories(categories, tenant) -> list[str]:
    from incidents.taxonomy import categories_for

    known = {c.value for c in categories_for(tenant, include_inactive=True)}
    if isinstance(categories, str):
        categories = categories.split(",")
    cleaned = []
    for value in categories or ():
        value = str(value).strip()
        if not value:
            continue
        if value not in known:
            raise ValidationError({"categories": f"Unknown category {value!r}."})
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


@transaction.atomic
def queue_create(
    *,
    tenant: Tenant,
    actor,
    name: str,
    slug: str = "",
    description: str = "",
    categories: Iterable[str] | str = (),
) -> Queue:
    """Open a queue (an assignment group) in a tenant; its slug is unique in the tenant."""
    from django.utils.text import slugify

    name = (name or "").strip()
    queue = Queue(
        tenant=tenant,
        name=name,
        slug=(slug or "").strip() or slugify(name)[:100],
        description=(description or "").strip(),
        categories=_clean_categories(categories, tenant),
    )
    queue.full_clean(exclude=["tenant"], validate_unique=False)
    if Queue.objects.for_tenant(tenant).filter(slug=queue.slug).exists():
        raise ValidationError({"slug": f"A queue {queue.slug!r} already exists."})
    queue.save(force_insert=True)
    audit.record(
        tenant=tenant,
        actor=actor,
        action="queue.created",
        target_type="queue",
        target_id=queue.slug,
        target_repr=queue.name,
        changes={"name": queue.name, "categories": queue.categories},
    )
    return queue


@transaction.atomic
def queue_update(*, queue: Queue, actor, **fields) -> Queue:
    """Rename a queue, or change its description or categories (the slug stays)."""
    unknown = set(fields) - {"name", "description", "categories"}
    if unknown:
        raise ValidationError({name: "This field cannot be changed here." for name in unknown})
    if "categories" in fields:
        fields["categories"] = _clean_categories(fields["categories"], queue.tenant_id)
    changes = {}
    for name, value in fields.items():
        value = value.strip() if isinstance(value, str) else value
        if getattr(queue, name) != value:
            changes[name] = {"from": getattr(queue, name), "to": value}
            setattr(queue, name, value)
    if not changes:
        return queue
    queue.full_clean(exclude=["tenant"], validate_unique=False)
    queue.save(update_fields=list(changes))
    audit.record(
        tenant=queue.tenant,
        actor=actor,
        action="queue.updated",
        target_type="queue",
        target_id=queue.slug,
        target_repr=queue.name,
        changes=changes,
    )
    return queue


@atomic_unless_row_locked
def ticket_set_queue(
    *, ticket: Ticket, actor, queue: Queue | None, row_locked: bool = False
) -> Ticket:
    """Move a ticket to a queue of its tenant (or out of every queue with None)."""
    if queue is not None and queue.tenant_id != ticket.tenant_id:
        raise ValidationError({"queue": "No such queue."})
    locked = _lock(ticket, row_locked=row_locked)
    if locked.queue_id == (queue.pk if queue else None):
        return locked
    old = (
        Queue.objects.for_tenant(locked.tenant).filter(pk=locked.queue_id).first()
        if locked.queue_id
        else None
    )
    locked.queue = queue
    locked.updated_at = timezone.now()
    locked.save(update_fields=["queue", "updated_at"])
    sla.recompute(locked)  # the queue's own business calendar, if it has one
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="ticket.queue_changed",
        target_type="ticket",
        target_id=locked.number,
        target_repr=locked.title,
        changes={"queue": {"from": old.name if old else None, "to": queue.name if queue else None}},
    )
    return locked


def _check_grantee(tenant: Tenant, user) -> None:
    if user is None or not Membership.objects.filter(tenant=tenant, user=user).exists():
        raise ValidationError({"user": "Access can only be granted to a member of this tenant."})


def _check_level(level: str) -> None:
    if level not in ACCESS_LEVELS:
        raise ValidationError({"level": f"Choose one of {', '.join(ACCESS_LEVELS)}."})


def _grant(*, obj, target_type: str, target_id: str, actor, user, level: str, perms) -> list[str]:
    from guardian.shortcuts import assign_perm

    from agentops.audit_context import PERMISSION, recorded_by_caller

    _check_level(level)
    _check_grantee(obj.tenant, user)
    model = QueueUserObjectPermission if isinstance(obj, Queue) else TicketUserObjectPermission
    held = set(
        model.objects.filter(content_object=obj, user=user).values_list(
            "permission__codename", flat=True
        )
    )
    added = [codename for codename in perms[level] if codename not in held]
    if not added:
        return []
    with recorded_by_caller(PERMISSION):  # the event below is the one for these rows
        for codename in added:
            assign_perm(f"incidents.{codename}", user, obj)
    audit.record(
        tenant=obj.tenant,
        actor=actor,
        action="permission.granted",
        target_type=target_type,
        target_id=target_id,
        target_repr=str(obj) if isinstance(obj, Queue) else obj.title,
        changes={
            "user": user.get_username(),
            "user_id": user.pk,
            "level": level,
            "permissions": added,
        },
    )
    return added


def _revoke(*, obj, target_type: str, target_id: str, actor, user, level: str, perms) -> list[str]:
    from agentops.audit_context import PERMISSION, recorded_by_caller

    _check_level(level)
    if user is None:
        raise ValidationError({"user": "Whose access?"})
    model = QueueUserObjectPermission if isinstance(obj, Queue) else TicketUserObjectPermission
    rows = model.objects.filter(
        content_object=obj, user=user, permission__codename__in=perms[level]
    )
    removed = sorted(rows.values_list("permission__codename", flat=True))
    if not removed:
        return []
    with recorded_by_caller(PERMISSION):
        rows.delete()
    audit.record(
        tenant=obj.tenant,
        actor=actor,
        action="permission.revoked",
        target_type=target_type,
        target_id=target_id,
        target_repr=str(obj) if isinstance(obj, Queue) else obj.title,
        changes={
            "user": user.get_username(),
            "user_id": user.pk,
            "level": level,
            "permissions": removed,
        },
    )
    return removed


@transaction.atomic
def grant_queue_access(*, queue: Queue, actor, user, level: str = "view") -> list[str]:
    """Let ``user`` see ("view") or work ("work") every ticket in ``queue``. Returns the
    permissions added (none if they held them already: nothing written, nothing audited)."""
    return _grant(
        obj=queue,
        target_type="queue",
        target_id=queue.slug,
        actor=actor,
        user=user,
        level=level,
        perms=QUEUE_LEVEL_PERMS,
    )


@transaction.atomic
def revoke_queue_access(*, queue: Queue, actor, user, level: str = "view") -> list[str]:
    """Take back working ("work") or all access ("view") to ``queue``; returns what was removed."""
    return _revoke(
        obj=queue,
        target_type="queue",
        target_id=queue.slug,
        actor=actor,
        user=user,
        level=level,
        perms=QUEUE_REVOKE_PERMS,
    )


@transaction.atomic
def grant_ticket_access(*, ticket: Ticket, actor, user, level: str = "view") -> list[str]:
    """Share one ticket with ``user``: to see it ("view") or work it ("work")."""
    return _grant(
        obj=ticket,
        target_type="ticket",
        target_id=ticket.number,
        actor=actor,
        user=user,
        level=level,
        perms=TICKET_LEVEL_PERMS,
    )


@transaction.atomic
def revoke_ticket_access(*, ticket: Ticket, actor, user, level: str = "view") -> list[str]:
    return _revoke(
        obj=ticket,
        target_type="ticket",
        target_id=ticket.number,
        actor=actor,
        user=user,
        level=level,
        perms=TICKET_REVOKE_PERMS,
    )
