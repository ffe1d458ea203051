"""Ticket services: validation, numbering, SLA, transitions, audit, all-or-nothing writes."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from agentops.models import AuditEvent, Notification
from incidents import services
from incidents.models import Status, Ticket


def events(tenant, number):
    return list(
        AuditEvent.objects.for_tenant(tenant)
        .filter(target_type="ticket", target_id=number)
        .order_by("id")
        .values_list("action", flat=True)
    )


def test_create_numbers_per_kind_sets_sla_and_audits(personas, make_ticket):
    before = timezone.now()
    req = make_ticket(personas.tenant, personas.requester, priority="critical")
    inc = make_ticket(personas.tenant, personas.agent, kind="incident", severity="sev1")
    assert (req.number, inc.number) == ("REQ0000001", "INC0000001")
    # critical → 4 hours by the tenant's default SLA table
    assert before + timedelta(hours=4) <= req.sla_due <= timezone.now() + timedelta(hours=4)
    assert req.requester == personas.requester
    assert req.requester_email == personas.requester.email
    assert events(personas.tenant, req.number) == ["ticket.created"]
    event = AuditEvent.objects.for_tenant(personas.tenant).get(target_id=req.number)
    assert event.actor_id == personas.requester.pk and event.changes["priority"] == "critical"


def test_create_validates_every_field_and_writes_nothing(personas):
    with pytest.raises(ValidationError) as excinfo:
        services.ticket_create(
            tenant=personas.tenant,
            actor=personas.agent,
            title="",
            requester_email="not-an-email",
            priority="urgent!!",
        )
    errors = excinfo.value.message_dict
    assert {"title", "requester_email", "priority"} <= set(errors)
    assert Ticket.objects.for_tenant(personas.tenant).count() == 0
    assert (
        AuditEvent.objects.for_tenant(personas.tenant).filter(action="ticket.created").count() == 0
    )


def test_create_refuses_too_long_title(personas):
    with pytest.raises(ValidationError) as excinfo:
        services.ticket_create(tenant=personas.tenant, actor=personas.agent, title="x" * 201)
    assert "title" in excinfo.value.message_dict


def test_assignee_must_be_staff_of_the_same_tenant(personas, make_ticket):
    ticket = make_ticket(personas.tenant, personas.requester)
    for wrong in (personas.outsider, personas.requester2):
        with pytest.raises(ValidationError, match="assignee"):
            services.ticket_assign(ticket=ticket, actor=personas.agent, assignee=wrong)
    ticket = services.ticket_assign(ticket=ticket, actor=personas.agent, assignee=personas.agent2)
    assert ticket.assignee == personas.agent2
    assert events(personas.tenant, ticket.number)[-1] == "ticket.assigned"


def test_transitions_follow_the_lifecycle(personas, make_ticket):
    ticket = make_ticket(personas.tenant, personas.requester)
    with pytest.raises(ValidationError, match="cannot become closed"):
        services.ticket_transition(ticket=ticket, actor=personas.agent, status=Status.CLOSED)
    with pytest.raises(ValidationError, match="resolution notes"):
        services.ticket_transition(ticket=ticket, actor=personas.agent, status=Status.RESOLVED)
    ticket = services.ticket_transition(
        ticket=ticket, actor=personas.agent, status=Status.IN_PROGRESS
    )
    ticket = services.ticket_transition(
        ticket=ticket,
        actor=personas.agent,
        status=Status.RESOLVED,
        note="Pushed a new VPN profile.",
    )
    assert ticket.resolved_at is not None and ticket.resolution_notes == "Pushed a new VPN profile."
    ticket = services.ticket_transition(
        ticket=ticket, actor=personas.agent, status=Status.IN_PROGRESS
    )
    assert ticket.resolved_at is None  # reopened
    ticket = services.ticket_transition(
        ticket=ticket, actor=personas.agent, status=Status.RESOLVED, note="Fixed again."
    )
    ticket = services.ticket_transition(ticket=ticket, actor=personas.agent, status=Status.CLOSED)
    assert ticket.closed_at is not None and ticket.allowed_transitions == []
    with pytest.raises(ValidationError):
        services.ticket_transition(ticket=ticket, actor=personas.agent, status=Status.IN_PROGRESS)
    assert events(personas.tenant, ticket.number).count("ticket.status_changed") == 5


def test_a_transition_through_a_status_audits_each_hop_and_writes_once(personas, make_ticket):
    from incidents.sla_models import TicketSLA

    ticket = make_ticket(personas.tenant, personas.requester)
    ticket = services.ticket_transition(ticket=ticket, actor=None, status=Status.TRIAGED)
    # A new ticket cannot be closed through resolved without notes; each hop is checked.
    with pytest.raises(ValidationError, match="cannot become closed"):
        services.ticket_transition(
            ticket=ticket, actor=None, status=Status.CLOSED, through=Status.ON_HOLD
        )
    ticket = services.ticket_transition(
        ticket=ticket,
        actor=None,
        status=Status.RESOLVED,
        through=Status.IN_PROGRESS,
        note="Unlocked the account.",
    )
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED and ticket.resolved_at is not None
    hops = [
        e.changes["status"]
        for e in AuditEvent.objects.for_tenant(personas.tenant)
        .filter(action="ticket.status_changed", target_id=ticket.number)
        .order_by("seq")
    ]
    assert hops[-2:] == [
        {"from": "triaged", "to": "in_progress"},
        {"from": "in_progress", "to": "resolved"},
    ]
    clock = TicketSLA.objects.for_tenant(personas.tenant).get(ticket=ticket)
    assert clock.stopped_at is not None  # the clock stopped once, at the resolution
    # The requester hears of the result once, not of the hop on the way.
    titles = list(
        Notification.objects.for_tenant(personas.tenant)
        .filter(user=personas.requester, verb="request.status")
        .order_by("id")
        .values_list("title", flat=True)
    )
    assert titles[-1].endswith("Resolved: tell us how we did")
    assert not any("Being worked on" in t for t in titles)


def test_update_changes_fields_recomputes_sla_and_records_diff(personas, make_ticket):
    ticket = make_ticket(personas.tenant, personas.requester, priority="low")
    low_due = ticket.sla_due
    ticket = services.ticket_update(
        ticket=ticket, actor=personas.agent, priority="critical", affected_services="VPN, SSO"
    )
    assert ticket.sla_due < low_due
    assert ticket.affected_services == ["VPN", "SSO"]
    event = AuditEvent.objects.for_tenant(personas.tenant).filter(action="ticket.updated").get()
    assert event.changes["priority"] == {"from": "low", "to": "critical"}
    with pytest.raises(ValidationError, match="cannot be changed"):
        services.ticket_update(ticket=ticket, actor=personas.agent, status="closed")


def test_comment_validates_and_audits(personas, make_ticket):
    ticket = make_ticket(personas.tenant, personas.requester)
    with pytest.raises(ValidationError):
        services.ticket_comment(ticket=ticket, actor=personas.agent, body="   ")
    services.ticket_comment(
        ticket=ticket, actor=personas.agent, body="Checking the logs", is_internal=True
    )
    assert ticket.comments.get().is_internal
    assert events(personas.tenant, ticket.number)[-1] == "ticket.internal_note"


def test_search_vector_is_maintained_by_the_database(personas, make_ticket):
    from django.contrib.postgres.search import SearchQuery

    ticket = make_ticket(personas.tenant, personas.requester, title="Printer jammed on floor 3")

    def found():
        return list(
            Ticket.objects.for_tenant(personas.tenant).filter(
                search_vector=SearchQuery("printers", search_type="websearch", config="english")
            )
        )

    assert found() == [ticket]
    services.ticket_update(ticket=ticket, actor=personas.agent, title="Monitor flickers")
    assert found() == []


def test_sla_breach_task_flags_overdue_open_tickets_once(personas, make_ticket):
    from incidents.models import TicketSLA
    from incidents.tasks import mark_sla_breaches

    late = make_ticket(personas.tenant, personas.requester)
    fine = make_ticket(personas.tenant, personas.requester)
    past = timezone.now() - timedelta(minutes=1)
    Ticket.objects.for_tenant(personas.tenant).filter(pk=late.pk).update(sla_due=past)
    # The ticket's SLA clock (incidents.sla) is what the beat reads; Ticket.sla_due mirrors it.
    TicketSLA.objects.for_tenant(personas.tenant).filter(ticket=late).update(
        due_at=past, warn_at=past
    )
    assert mark_sla_breaches() == 1
    assert mark_sla_breaches() == 0  # already flagged: not audited twice
    late.refresh_from_db()
    fine.refresh_from_db()
    assert late.sla_breached and not fine.sla_breached
    assert events(personas.tenant, late.number).count("ticket.sla_breached") == 1


def test_generator_produces_realistic_varied_tickets(personas):
    from incidents.testdata import bulk_generate, generate_tickets

    tickets = generate_tickets(tenant=personas.tenant, actor=personas.agent, count=30, seed=3)
    assert len({t.title for t in tickets}) > 10
    assert {t.kind for t in tickets} == {"request", "incident"}
    assert all(t.severity for t in tickets if t.kind == "incident")
    assert bulk_generate(tenant=personas.tenant, count=50, comments_per_ticket=1) == 50
    numbers = list(Ticket.objects.for_tenant(personas.tenant).values_list("number", flat=True))
    assert len(numbers) == len(set(numbers)) == 80


def test_opening_a_ticket_that_starts_its_agent_sends_no_savepoint(personas):
    """The agent's start joins the ticket's transaction: no SAVEPOINT/RELEASE (two round trips
    each, three per ticket opened in a batch); a refusal comes before any write, so the ticket
    still opens for people in a transaction that stays usable, the caller's one included."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from agents.engine import agent_config
    from agents.models import BlueprintSetting, Run

    config = agent_config(personas.tenant)
    config.auto_resolve_on_create = True
    config.save()
    with transaction.atomic(), CaptureQueriesContext(connection) as sent:  # a caller's batch
        first = services.ticket_create(
            tenant=personas.tenant, actor=personas.requester, title="VPN drops", source="portal"
        )
        second = services.ticket_create(
            tenant=personas.tenant, actor=personas.requester, title="Locked out", source="portal"
        )
    assert not [q["sql"] for q in sent.captured_queries if "SAVEPOINT" in q["sql"]]
    # The requester came as a loaded user: no query proves it exists (its foreign key does).
    assert not [q["sql"] for q in sent.captured_queries if 'FROM "auth_user"' in q["sql"]]
    runs = Run.objects.for_tenant(personas.tenant)
    assert sorted(runs.values_list("subject_id", flat=True)) == sorted(
        [first.number, second.number]
    )
    BlueprintSetting.objects.create(tenant=personas.tenant, blueprint="service_desk", enabled=False)
    with transaction.atomic():
        third = services.ticket_create(
            tenant=personas.tenant, actor=personas.requester, title="Printer", source="portal"
        )
        services.ticket_comment(ticket=third, actor=personas.requester, body="Still broken")
    assert Ticket.objects.for_tenant(personas.tenant).get(pk=third.pk).comments.count() == 1
    assert not runs.filter(subject_id=third.number, agent_name="service_desk").exists()
    with pytest.raises(ValidationError):  # a run is already on it: refused, nothing written
        services.ticket_start_agent(ticket=first, actor=personas.requester)
    assert runs.filter(subject_id=first.number).count() == 1
