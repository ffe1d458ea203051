"""Escalating breaching tickets by the tenant's escalation policy, the one approvals use.

The n-th rule (by order) that matches a ticket is its level-n step, applied once the ticket is
``after_minutes`` past its SLA due: the ticket is reassigned (a named person, the least-loaded
agent, or an admin, who with the other admins is told), its priority raised if the rule says
so, and its status moved to Escalated. Each step is claimed by a conditional UPDATE of the
clock's level, so it applies once however many beats run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Q

from agentops import audit
from agentops.models import Membership, Role
from agentops.notifications import notify
from incidents.models import OPEN_STATUSES, TRANSITIONS, Status, Ticket
from incidents.sla import RAISED_PRIORITY, _link, _staff, matches
from incidents.sla_models import TicketSLA


def _rules(tenant) -> list:
    from approvals.models import EscalationRule

    return list(
        EscalationRule.objects.for_tenant(tenant)
        .filter(policy__is_active=True)
        .select_related("user")
        .order_by("order", "id")
    )


def _least_loaded_agent(tenant, exclude: set[int]):
    agents = [u for u in _staff(tenant, roles=(Role.AGENT,)) if u.pk not in exclude]
    if not agents:
        return None
    load = dict(
        Ticket.objects.for_tenant(tenant)
        .filter(assignee__in=agents, status__in=sorted(OPEN_STATUSES))
        .values_list("assignee")
        .annotate(n=Count("pk"))
    )
    return min(agents, key=lambda u: (load.get(u.pk, 0), u.pk))


def _target(rule, ticket: Ticket):
    """Who the ticket goes to, and who else hears of it."""
    Target = rule.Target
    exclude = {ticket.assignee_id} if ticket.assignee_id else set()
    if rule.target == Target.USER and rule.user_id:
        member = Membership.objects.filter(
            tenant=ticket.tenant,
            user_id=rule.user_id,
            role__in=[Role.AGENT, Role.ADMIN],
            user__is_active=True,
        ).exists()
        if member:
            return rule.user, []
    if rule.target == Target.ADMINS:
        admins = _staff(ticket.tenant, roles=(Role.ADMIN,))
        first = next((u for u in admins if u.pk not in exclude), admins[0] if admins else None)
        return first, [u for u in admins if first is None or u.pk != first.pk]
    return _least_loaded_agent(ticket.tenant, exclude), []


@transaction.atomic
def escalate(clock: TicketSLA, rule, level: int, now: datetime) -> bool:
    from incidents import services

    claimed = (
        TicketSLA.objects.for_tenant(clock.tenant)
        .filter(pk=clock.pk, escalation_level=level, stopped_at__isnull=True)
        .update(escalation_level=level + 1, escalated_at=now)
    )
    if not claimed:
        return False
    ticket = Ticket.objects.for_tenant(clock.tenant).select_for_update().get(pk=clock.ticket_id)
    ticket.tenant = clock.tenant
    before = {"assignee": ticket.assignee_id, "priority": ticket.priority, "status": ticket.status}
    target, also = _target(rule, ticket)
    if target is not None and target.pk != ticket.assignee_id:
        ticket = services.ticket_assign(ticket=ticket, actor=None, assignee=target)
    if rule.raise_priority and ticket.priority in RAISED_PRIORITY:
        ticket = services.ticket_update(
            ticket=ticket, actor=None, row_locked=True, priority=RAISED_PRIORITY[ticket.priority]
        )
    if Status.ESCALATED in TRANSITIONS[ticket.status]:
        ticket = services.ticket_transition(
            ticket=ticket, actor=None, status=Status.ESCALATED, row_locked=True
        )
    audit.record(
        tenant=clock.tenant,
        actor=None,
        action="ticket.sla_escalated",
        target_type="ticket",
        target_id=ticket.number,
        target_repr=ticket.title,
        changes={
            "assignee": [before["assignee"], ticket.assignee_id],
            "priority": [before["priority"], ticket.priority],
            "level": level + 1,
        },
        metadata={"rule": str(rule)},
    )
    for user in [*([target] if target is not None else []), *also]:
        notify(
            tenant=clock.tenant,
            user=user,
            verb="ticket.sla_escalated",
            title=f"Escalated to you: {ticket.number} {ticket.title}",
            body=f"Its SLA is breached; now {ticket.get_priority_display().lower()} priority.",
            link=_link(ticket),
        )
    return True


def escalate_due(tenant, *, now: datetime, batch: int = 500) -> int:
    rules = _rules(tenant)
    if not rules:
        return 0
    breached = (
        TicketSLA.objects.for_tenant(tenant)
        .filter(breached_at__isnull=False, stopped_at__isnull=True)
        .filter(~Q(ticket__status__in=[Status.ON_HOLD]))
        .select_related("ticket")
        .order_by("due_at", "id")[:batch]
    )
    done = 0
    for clock in breached:
        clock.tenant = clock.ticket.tenant = tenant
        matching = [rule for rule in rules if matches(rule, clock.ticket)]
        if clock.escalation_level >= len(matching):
            continue
        rule = matching[clock.escalation_level]
        due = clock.due_at or clock.breached_at
        if due + timedelta(minutes=rule.after_minutes) > now:
            continue
        done += escalate(clock, rule, clock.escalation_level, now)
    return done
