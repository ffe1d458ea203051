"""Contract SLAs on tickets (incidents.sla): business-hours due times per tenant and queue, the
clock paused while waiting on the requester, warnings at 75 %, alerts at breach and escalation
by the tenant's escalation policy; two tenants throughout."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from agentops.models import AuditEvent, Notification
from approvals.models import EscalationPolicy, EscalationRule
from incidents import sla
from incidents.models import BusinessCalendar, Queue, Ticket, TicketSLA
from incidents.services import ticket_assign, ticket_set_queue, ticket_transition, ticket_update
from incidents.sla_time import add_business_seconds
from incidents.tasks import mark_sla_breaches

HOUR = 3600
ALL_DAY = {str(d): [["00:00", "24:00"]] for d in range(7)}


@pytest.fixture
def calendar(personas):
    return BusinessCalendar.objects.create(
        tenant=personas.tenant, timezone="America/New_York", holiday_country="US"
    )


def clock_of(ticket) -> TicketSLA:
    return TicketSLA.objects.for_tenant(ticket.tenant).select_related("calendar").get(ticket=ticket)


def shift(clock: TicketSLA, hours: float) -> None:
    """As if the clock had started running ``hours`` earlier (time passing, without sleeping)."""
    TicketSLA.objects.for_tenant(clock.tenant).filter(pk=clock.pk).update(
        running_since=clock.running_since - timedelta(hours=hours)
    )
    clock.refresh_from_db()


def test_a_new_ticket_is_due_in_its_tenants_business_hours(personas, make_ticket, calendar):
    ticket = make_ticket(personas.tenant, personas.requester, priority="high")  # 8 h
    clock = clock_of(ticket)
    assert clock.calendar == calendar and clock.target_seconds == 8 * HOUR
    expected = add_business_seconds(calendar.hours(), ticket.created_at, 8 * HOUR)
    ticket.refresh_from_db()
    assert ticket.sla_due == clock.due_at == expected
    assert clock.warn_at == add_business_seconds(calendar.hours(), ticket.created_at, 6 * HOUR)
    # The other tenant has no calendar: its tickets keep wall-clock SLAs.
    other = make_ticket(personas.other_tenant, personas.outsider, priority="high")
    assert clock_of(other).calendar is None
    assert other.sla_due == other.created_at + timedelta(hours=8)


def test_a_queue_calendar_overrides_the_tenant_default(personas, make_ticket, calendar):
    queue = Queue.objects.create(tenant=personas.tenant, name="Tokyo desk", slug="tokyo")
    tokyo = BusinessCalendar.objects.create(
        tenant=personas.tenant, queue=queue, timezone="Asia/Tokyo", sla_hours={"medium": 2}
    )
    ticket = make_ticket(personas.tenant, personas.requester, priority="medium")
    ticket = ticket_set_queue(ticket=ticket, actor=personas.agent, queue=queue)
    clock = clock_of(ticket)
    assert clock.calendar == tokyo and clock.target_seconds == 2 * HOUR
    assert ticket.sla_due == clock.due_at
    assert clock.due_at == add_business_seconds(
        tokyo.hours(), clock.running_since, 2 * HOUR - clock.consumed_seconds
    )


def test_the_clock_pauses_while_waiting_on_the_requester(personas, make_ticket):
    BusinessCalendar.objects.create(tenant=personas.tenant, working_hours=ALL_DAY)
    ticket = make_ticket(personas.tenant, personas.requester, priority="high")  # 8 h
    shift(clock_of(ticket), 3)  # three hours of work
    ticket = ticket_transition(ticket=ticket, actor=personas.agent, status="in_progress")
    ticket = ticket_transition(ticket=ticket, actor=personas.agent, status="on_hold")
    clock = clock_of(ticket)
    assert clock.paused and clock.running_since is None and clock.due_at is None
    assert clock.consumed_seconds == pytest.approx(3 * HOUR, abs=5)
    ticket.refresh_from_db()
    assert ticket.sla_due is None and sla.state(ticket)["state"] == "paused"
    # Days later the requester answers: 5 h are left, from now.
    ticket = ticket_transition(ticket=ticket, actor=personas.agent, status="in_progress")
    clock = clock_of(ticket)
    assert not clock.paused
    left = clock.due_at - timezone.now()
    assert timedelta(hours=5) - timedelta(seconds=10) < left <= timedelta(hours=5)
    # Resolved: the clock stops, and the ticket met its SLA.
    ticket = ticket_transition(ticket=ticket, actor=personas.agent, status="resolved", note="ok")
    clock = clock_of(ticket)
    assert clock.stopped_at is not None and sla.describe(clock)["state"] == "met"


def test_a_paused_ticket_is_not_breached_by_the_beat(personas, make_ticket):
    ticket = make_ticket(personas.tenant, personas.requester, priority="critical")  # 4 h
    shift(clock_of(ticket), 3.9)
    ticket = ticket_transition(ticket=ticket, actor=personas.agent, status="on_hold")
    Ticket.objects.for_tenant(personas.tenant).filter(pk=ticket.pk).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    mark_sla_breaches()
    ticket.refresh_from_db()
    assert not ticket.sla_breached and clock_of(ticket).breached_at is None


def test_warning_at_75_percent_then_alert_at_breach_each_once(
    personas, make_ticket, calendar, django_capture_on_commit_callbacks
):
    ticket = make_ticket(personas.tenant, personas.requester, priority="high")
    ticket = ticket_assign(ticket=ticket, actor=personas.admin, assignee=personas.agent)
    clock = clock_of(ticket)
    mail.outbox.clear()
    assert sla.check_tenant(personas.tenant, now=clock.warn_at - timedelta(seconds=1)) == {
        "warned": 0,
        "breached": 0,
        "escalated": 0,
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert sla.check_tenant(personas.tenant, now=clock.warn_at)["warned"] == 1
        assert sla.check_tenant(personas.tenant, now=clock.warn_at)["warned"] == 0  # once
        assert sla.check_tenant(personas.tenant, now=clock.due_at)["breached"] == 1
        assert sla.check_tenant(personas.tenant, now=clock.due_at)["breached"] == 0
    [warning] = Notification.objects.for_tenant(personas.tenant).filter(verb="ticket.sla_warning")
    assert warning.user == personas.agent and ticket.number in warning.title
    [alert] = Notification.objects.for_tenant(personas.tenant).filter(verb="ticket.sla_breached")
    assert alert.user == personas.agent
    ticket.refresh_from_db()
    assert ticket.sla_breached
    subjects = [m.subject for m in mail.outbox]
    assert any("SLA at 75 %" in s for s in subjects) and any("SLA breached" in s for s in subjects)
    assert (
        AuditEvent.objects.for_tenant(personas.tenant)
        .filter(action="ticket.sla_breached", target_id=ticket.number)
        .count()
        == 1
    )
    # Nothing happened in the other tenant.
    assert not Notification.objects.for_tenant(personas.other_tenant).exists()


def test_an_unassigned_breach_alerts_the_desk(personas, make_ticket, calendar):
    ticket = make_ticket(personas.tenant, personas.requester, priority="low")
    clock = clock_of(ticket)
    sla.check_tenant(personas.tenant, now=clock.due_at)
    told = set(
        Notification.objects.for_tenant(personas.tenant)
        .filter(verb="ticket.sla_breached")
        .values_list("user__username", flat=True)
    )
    assert told == {"alex", "andy", "ada"}  # agents and admins, not requesters or reviewers


def test_breaching_tickets_are_escalated_by_the_approval_escalation_policy(
    personas, make_ticket, calendar
):
    policy = EscalationPolicy.objects.create(tenant=personas.tenant)
    EscalationRule.objects.create(
        tenant=personas.tenant,
        policy=policy,
        order=0,
        after_minutes=30,
        target=EscalationRule.Target.LEAST_LOADED,
        raise_priority=True,
        action_pattern="ticket.*",
    )
    busy = make_ticket(personas.tenant, personas.requester, priority="low")  # due much later
    ticket_assign(ticket=busy, actor=personas.admin, assignee=personas.agent)
    ticket = make_ticket(personas.tenant, personas.requester, priority="medium")
    ticket = ticket_assign(ticket=ticket, actor=personas.admin, assignee=personas.agent)
    clock = clock_of(ticket)
    sla.check_tenant(personas.tenant, now=clock.due_at)
    assert sla.check_tenant(personas.tenant, now=clock.due_at + timedelta(minutes=29)) == {
        "warned": 0,
        "breached": 0,
        "escalated": 0,
    }
    done = sla.check_tenant(personas.tenant, now=clock.due_at + timedelta(minutes=31))
    assert done["escalated"] == 1
    ticket.refresh_from_db()
    assert ticket.assignee == personas.agent2  # the least-loaded agent, not the current one
    assert ticket.priority == "high" and ticket.status == "escalated"
    assert clock_of(ticket).escalation_level == 1
    assert (
        Notification.objects.for_tenant(personas.tenant)
        .filter(verb="ticket.sla_escalated", user=personas.agent2)
        .exists()
    )
    assert (
        AuditEvent.objects.for_tenant(personas.tenant)
        .filter(action="ticket.sla_escalated", target_id=ticket.number)
        .exists()
    )
    # One rule, one step: later passes leave it be.
    later = sla.check_tenant(personas.tenant, now=clock.due_at + timedelta(hours=5))
    assert later["escalated"] == 0


def test_a_rule_for_another_priority_or_category_does_not_escalate(personas, make_ticket, calendar):
    policy = EscalationPolicy.objects.create(tenant=personas.tenant)
    EscalationRule.objects.create(
        tenant=personas.tenant, policy=policy, priority="critical", action_pattern="*"
    )
    EscalationRule.objects.create(
        tenant=personas.tenant, policy=policy, action_pattern="ticket.network"
    )
    ticket = make_ticket(personas.tenant, personas.requester, priority="low", category="access")
    clock = clock_of(ticket)
    done = sla.check_tenant(personas.tenant, now=clock.due_at + timedelta(days=1))
    assert done == {"warned": 0, "breached": 1, "escalated": 0}


def test_a_priority_change_sets_a_new_target_keeping_the_time_used(personas, make_ticket):
    BusinessCalendar.objects.create(tenant=personas.tenant, working_hours=ALL_DAY)
    ticket = make_ticket(personas.tenant, personas.requester, priority="low")  # 72 h
    shift(clock_of(ticket), 2)
    ticket = ticket_update(ticket=ticket, actor=personas.agent, priority="critical")  # 4 h
    clock = clock_of(ticket)
    assert clock.target_seconds == 4 * HOUR
    assert clock.consumed_seconds == pytest.approx(2 * HOUR, abs=5)
    left = clock.due_at - timezone.now()
    assert timedelta(hours=2) - timedelta(seconds=10) < left <= timedelta(hours=2)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timezone": "Atlantis/Capital"}, "time zone"),
        ({"working_hours": {"0": [["18:00", "08:00"]]}}, "empty"),
        ({"holiday_country": "XX"}, "holidays"),
    ],
)
def test_a_calendar_an_admin_cannot_use_is_refused_on_save(personas, fields, message):
    from django.core.exceptions import ValidationError

    calendar = BusinessCalendar(tenant=personas.tenant, **fields)
    with pytest.raises(ValidationError, match=message):
        calendar.full_clean()
