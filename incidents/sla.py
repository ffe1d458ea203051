"""Contract-grade ticket SLAs: the clock runs in business time, pauses while the ticket waits
on the requester, warns at 75 %, alerts at breach and escalates by the tenant's escalation
policy (the same rules approvals use: ``approvals.models.EscalationRule``).

Services (called by ``incidents.services`` where a ticket is created, moves, changes priority
or queue) keep one ``TicketSLA`` row per ticket and mirror its due time into ``Ticket.sla_due``
(None while paused), so queues, "My work" and analytics read one column. ``check_tenant`` is
the beat task's pass: every step is claimed by a conditional UPDATE, so two beats at once
notify, breach and escalate each ticket once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from agentops import audit
from agentops.models import Membership, Role
from agentops.notifications import notify
from agentops.prepared import prepared
from incidents.models import Status, Ticket
from incidents.sla_models import BusinessCalendar, TicketSLA
from incidents.sla_time import CalendarError, add_business_seconds, business_seconds

WARN_FRACTION = 0.75
# "Waiting on the requester": the clock does not run (contract SLAs measure the desk's time).
PAUSE_STATUSES = frozenset({Status.ON_HOLD})
STOP_STATUSES = frozenset({Status.RESOLVED, Status.CLOSED, Status.CANCELLED})
RAISED_PRIORITY = {"low": "medium", "medium": "high", "high": "critical"}


# --------------------------------------------------------------------------- the clock's arithmetic


def calendar_for(ticket: Ticket) -> BusinessCalendar | None:
    """The queue's calendar, else the tenant's default, else None (wall-clock time)."""
    if ticket.queue_id:
        own = _queue_calendar.first(ticket.tenant_id, ticket.queue_id)
        if own is not None:
            return own
    return _default_calendar.first(ticket.tenant_id)


# Compiled once per process (agentops.prepared): every ticket opened asks.
@prepared
def _queue_calendar(tenant_id: int, queue_id: int):
    return (
        BusinessCalendar.objects.for_tenant(tenant_id).filter(queue_id=queue_id).order_by("pk")[:1]
    )


@prepared
def _default_calendar(tenant_id: int):
    return (
        BusinessCalendar.objects.for_tenant(tenant_id).filter(queue__isnull=True).order_by("pk")[:1]
    )


def _hours(calendar: BusinessCalendar | None):
    if calendar is None:
        return None
    try:
        return calendar.hours()
    except CalendarError:  # a broken calendar must not stop tickets: wall-clock time instead
        return None


def elapsed(calendar, start: datetime, end: datetime) -> float:
    hours = _hours(calendar)
    if hours is None:
        return max(0.0, (end - start).total_seconds())
    return business_seconds(hours, start, end)


def after(calendar, start: datetime, seconds: float) -> datetime:
    hours = _hours(calendar)
    if hours is None:
        return start + timedelta(seconds=max(0.0, seconds))
    return add_business_seconds(hours, start, seconds)


def target_seconds(ticket: Ticket, calendar) -> float | None:
    table = (calendar.sla_hours if calendar is not None else None) or ticket.tenant.sla_hours or {}
    try:
        hours = float(table[ticket.priority])
    except (KeyError, TypeError, ValueError):
        return None
    return hours * 3600 if hours > 0 else None


def used_seconds(clock: TicketSLA, now: datetime) -> float:
    running = elapsed(clock.calendar, clock.running_since, now) if clock.running_since else 0.0
    return clock.consumed_seconds + running


def _schedule(clock: TicketSLA) -> None:
    """Due and warning instants from the running stretch (None while paused or stopped)."""
    if clock.running_since is None:
        clock.due_at = clock.warn_at = None
        return
    left = clock.target_seconds - clock.consumed_seconds
    warn_left = WARN_FRACTION * clock.target_seconds - clock.consumed_seconds
    clock.due_at = after(clock.calendar, clock.running_since, max(0.0, left))
    clock.warn_at = after(clock.calendar, clock.running_since, max(0.0, warn_left))


def _mirror(clock: TicketSLA, ticket: Ticket, now: datetime, *, write: bool = True) -> None:
    """Ticket.sla_due / sla_breached follow the clock (one UPDATE, no signals). ``write=False``:
    only set them on ``ticket``, whose caller saves it with its own change."""
    ticket.sla_due = clock.due_at if clock.stopped_at is None else ticket.sla_due
    ticket.sla_breached = clock.breached_at is not None or bool(
        clock.due_at and clock.due_at <= now and clock.stopped_at is None
    )
    if write:
        Ticket.objects.for_tenant(ticket.tenant).filter(pk=ticket.pk).update(
            sla_due=ticket.sla_due, sla_breached=ticket.sla_breached
        )


# --------------------------------------------------------------------------- services


def start(ticket: Ticket, *, now: datetime | None = None) -> TicketSLA | None:
    """Start a new ticket's clock (incidents.services.ticket_create)."""
    ticket.__dict__.pop(_LOCKED, None)
    now = now or ticket.created_at or timezone.now()
    calendar = calendar_for(ticket)
    target = target_seconds(ticket, calendar)
    if target is None:
        return None
    clock = TicketSLA(tenant=ticket.tenant, ticket=ticket, calendar=calendar, target_seconds=target)
    if ticket.status in PAUSE_STATUSES:
        clock.paused = True
    elif ticket.status not in STOP_STATUSES:
        clock.running_since = now
    _schedule(clock)
    _mirror(clock, ticket, now, write=False)
    # The clock's INSERT and the ticket's copy of its due time in one round trip.
    from agents.engine import sql

    (clock.pk,) = sql.execute_together(
        sql.insert_sql(clock),
        sql.update_sql(ticket, ["sla_due", "sla_breached"]),
        returning="id",
    )
    clock._state.adding, clock._state.db = False, "default"
    return clock


# The clock read and locked with its ticket (``locked_with_clock``), kept on the instance for
# the one status change its transaction makes; any other SLA write on the ticket drops it.
_LOCKED = "_sla_clock_locked_with_ticket"


def locked_with_clock(tenant, *, number: str) -> Ticket:
    """The ticket under its row lock and its SLA clock (with its calendar) locked and read in
    the same statement: the ticket first, then the clock, the order every writer takes them.

    The clock rides on the instance for ``on_status_change`` in the same transaction, which
    then needs no query of its own."""
    from agents.engine import sql

    t, c = Ticket._meta.db_table, TicketSLA._meta.db_table
    query = (
        f'WITH t AS (SELECT * FROM "{t}" WHERE tenant_id = %s AND number = %s FOR UPDATE), '  # noqa: S608
        f'c AS (SELECT * FROM "{c}" WHERE tenant_id = %s '
        "AND ticket_id = (SELECT id FROM t) FOR UPDATE) "
        f"SELECT {sql.columns(Ticket, 't')}, {sql.columns(TicketSLA, 'c')}, "
        f"{sql.columns(BusinessCalendar, 'cal')} FROM t LEFT JOIN c ON true "
        f'LEFT JOIN "{BusinessCalendar._meta.db_table}" cal ON cal.id = c.calendar_id'
    )
    with connection.cursor() as cursor:
        cursor.execute(query, [tenant.pk, number, tenant.pk])
        row = cursor.fetchone()
    if row is None:
        raise Ticket.DoesNotExist(f"No ticket {number} in {tenant.slug}.")
    ticket, clock, calendar = sql.instances(row, Ticket, TicketSLA, BusinessCalendar)
    ticket.tenant = tenant
    if clock is not None:
        clock.tenant = tenant
        clock.ticket = ticket
        clock.calendar = calendar
    ticket.__dict__[_LOCKED] = clock
    return ticket


@prepared
def _locked_clock(tenant_id: int, ticket_id: int):
    return (
        TicketSLA.objects.for_tenant(tenant_id)
        .select_for_update(of=("self",))
        .select_related("calendar")
        .filter(ticket_id=ticket_id)
        .order_by("pk")[:1]
    )


def _clock(ticket: Ticket) -> TicketSLA | None:
    if _LOCKED in ticket.__dict__:
        return ticket.__dict__.pop(_LOCKED)
    return _locked_clock.first(ticket.tenant_id, ticket.pk)


def _bank(clock: TicketSLA, now: datetime) -> None:
    """Move the running stretch into consumed_seconds."""
    if clock.running_since is not None:
        clock.consumed_seconds = used_seconds(clock, now)
        clock.running_since = None


# No savepoint: the callers' transaction holds the ticket's row lock, and a failure here
# fails their change too (a savepoint would cost two round trips per status change).
@transaction.atomic(savepoint=False)
def on_status_change(
    ticket: Ticket,
    old: str,
    new: str,
    *,
    now: datetime | None = None,
    mirror: bool = True,
    writes: list | None = None,
) -> bool:
    """Pause while waiting on the requester, stop when done, run again when work resumes.
    ``mirror=False``: set ``ticket.sla_due`` / ``sla_breached`` without writing them (the
    caller saves the ticket once, with them). ``writes``: the clock's UPDATE is appended
    there instead of sent (the caller sends it with its own, one round trip). Returns whether
    the ticket has a clock."""
    now = now or timezone.now()
    clock = _clock(ticket)
    if clock is None:
        return False
    if new in STOP_STATUSES:
        _bank(clock, now)
        clock.stopped_at = now
    elif new in PAUSE_STATUSES:
        _bank(clock, now)
        clock.paused = True
    elif clock.running_since is None:  # resumed, or reopened
        clock.paused = False
        clock.stopped_at = None
        clock.running_since = now
    stopped_due = clock.due_at
    _schedule(clock)
    if clock.stopped_at is not None:
        clock.due_at = stopped_due  # kept for the record of a finished ticket
    fields = ["consumed_seconds", "running_since", "paused", "stopped_at", "due_at", "warn_at"]
    if writes is None:
        clock.save(update_fields=fields)
    else:
        from agents.engine import sql

        writes.append(sql.update_sql(clock, fields))
    _mirror(clock, ticket, now, write=mirror)
    return True


# No savepoint, as on_status_change: the callers (a priority or queue change) hold the ticket's
# row lock in their transaction, and a failure here fails their change too.
@transaction.atomic(savepoint=False)
def recompute(ticket: Ticket, *, now: datetime | None = None) -> None:
    """The priority or the queue changed: a new target or calendar from now on."""
    now = now or timezone.now()
    clock = _clock(ticket)
    if clock is None:
        start(ticket, now=now)
        return
    running = clock.running_since is not None
    _bank(clock, now)
    clock.calendar = calendar_for(ticket)
    clock.target_seconds = target_seconds(ticket, clock.calendar) or clock.target_seconds
    if running:
        clock.running_since = now
    _schedule(clock)
    clock.save()
    _mirror(clock, ticket, now)


def state(ticket: Ticket, *, now: datetime | None = None) -> dict | None:
    """What the ticket page and queue show: business time used and left, paused or not."""
    try:
        clock = ticket.sla_clock  # loaded with the ticket by the gate (select_related)
    except TicketSLA.DoesNotExist:
        return None
    if clock is None or clock.tenant_id != ticket.tenant_id:
        return None
    return describe(clock, now=now)


def describe(clock: TicketSLA, *, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    used = used_seconds(clock, now)
    percent = round(100 * used / clock.target_seconds) if clock.target_seconds else 0
    if clock.stopped_at is not None:
        label = "breached" if clock.breached_at or used > clock.target_seconds else "met"
    elif clock.paused:
        label = "paused"
    elif used >= clock.target_seconds:
        label = "breached"
    elif used >= WARN_FRACTION * clock.target_seconds:
        label = "at_risk"
    else:
        label = "ok"
    return {
        "state": label,
        "percent": percent,
        "used_hours": round(used / 3600, 1),
        "target_hours": round(clock.target_seconds / 3600, 1),
        "left_hours": round(max(0.0, clock.target_seconds - used) / 3600, 1),
        "due_at": clock.due_at,
        "business_hours": clock.calendar is not None,
        "calendar": str(clock.calendar) if clock.calendar else "",
    }


# --------------------------------------------------------------------------- the beat's pass


def _staff(tenant, roles=(Role.AGENT, Role.ADMIN)):
    return [
        m.user
        for m in Membership.objects.filter(tenant=tenant, role__in=roles, user__is_active=True)
        .select_related("user")
        .order_by("user_id")
    ]


def _recipients(ticket: Ticket) -> list:
    return [ticket.assignee] if ticket.assignee_id else _staff(ticket.tenant)


def _link(ticket: Ticket) -> str:
    return reverse("incidents:ticket-detail", args=[ticket.number])


def _claim(clock: TicketSLA, **changes) -> bool:
    """Set a once-only field (warned_at, breached_at) if nobody else did: one UPDATE."""
    field = next(iter(changes))
    return bool(
        TicketSLA.objects.for_tenant(clock.tenant)
        .filter(pk=clock.pk, **{f"{field}__isnull": True})
        .update(**changes)
    )


def _warn(clock: TicketSLA, now: datetime) -> bool:
    if not _claim(clock, warned_at=now):
        return False
    ticket = clock.ticket
    audit.record(
        tenant=clock.tenant,
        actor=None,
        action="ticket.sla_warning",
        target_type="ticket",
        target_id=ticket.number,
        target_repr=ticket.title,
        metadata={"due_at": clock.due_at.isoformat() if clock.due_at else None},
    )
    for user in _recipients(ticket):
        notify(
            tenant=clock.tenant,
            user=user,
            verb="ticket.sla_warning",
            title=f"SLA at 75 %: {ticket.number} {ticket.title}",
            body=f"Due {clock.due_at:%Y-%m-%d %H:%M} UTC (business hours).",
            link=_link(ticket),
        )
    return True


def _breach(clock: TicketSLA, now: datetime) -> bool:
    if not _claim(clock, breached_at=now):
        return False
    ticket = clock.ticket
    Ticket.objects.for_tenant(clock.tenant).filter(pk=ticket.pk).update(sla_breached=True)
    audit.record(
        tenant=clock.tenant,
        actor=None,
        action="ticket.sla_breached",
        target_type="ticket",
        target_id=ticket.number,
        target_repr=ticket.title,
        metadata={"due_at": clock.due_at.isoformat() if clock.due_at else None},
    )
    for user in _recipients(ticket):
        notify(
            tenant=clock.tenant,
            user=user,
            verb="ticket.sla_breached",
            title=f"SLA breached: {ticket.number} {ticket.title}",
            body=f"It was due {clock.due_at:%Y-%m-%d %H:%M} UTC and is still open.",
            link=_link(ticket),
        )
    return True


def check_tenant(tenant, *, now: datetime | None = None, batch: int = 500) -> dict[str, int]:
    """Warn, breach and escalate the tenant's running clocks (beat, every minute)."""
    from incidents.sla_escalation import escalate_due

    now = now or timezone.now()
    done = {"warned": 0, "breached": 0, "escalated": 0}
    running = (
        TicketSLA.objects.for_tenant(tenant)
        .filter(running_since__isnull=False, stopped_at__isnull=True)
        .select_related("ticket", "ticket__assignee", "calendar")
    )
    # 1. Past 75 % and not yet due (a clock already due is alerted once, below, not twice).
    warn = running.filter(warn_at__lte=now, due_at__gt=now, warned_at__isnull=True)
    for clock in warn[:batch]:
        clock.tenant = clock.ticket.tenant = tenant
        with transaction.atomic():
            done["warned"] += _warn(clock, now)
    # 2. Due: breached, alerted once. 3. Breached long enough: the escalation policy's next step.
    for clock in running.filter(due_at__lte=now, breached_at__isnull=True)[:batch]:
        clock.tenant = clock.ticket.tenant = tenant
        with transaction.atomic():
            done["breached"] += _breach(clock, now)
    done["escalated"] = escalate_due(tenant, now=now, batch=batch)
    return done


def matches(rule, ticket: Ticket) -> bool:
    """An escalation rule (approvals' policy) applies to a ticket: its priority, and its
    action pattern against ``ticket.<category>`` ('*' matches all)."""
    if rule.priority and rule.priority != ticket.priority:
        return False
    return fnmatchcase(f"ticket.{ticket.category or 'other'}", rule.action_pattern or "*")
