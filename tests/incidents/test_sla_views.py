"""The business-hours SLA on the ticket page and in the queue (paused, at risk, used/target)."""

from __future__ import annotations

from datetime import timedelta

from incidents.models import BusinessCalendar, TicketSLA
from incidents.services import ticket_transition

ALL_DAY = {str(d): [["00:00", "24:00"]] for d in range(7)}


def _calendar(tenant):
    return BusinessCalendar.objects.create(
        tenant=tenant, name="Paris office", timezone="Europe/Paris", working_hours=ALL_DAY
    )


def test_the_ticket_page_shows_the_business_hours_clock(personas, make_ticket, client_for):
    _calendar(personas.tenant)
    ticket = make_ticket(personas.tenant, personas.requester, priority="high")  # 8 h
    clock = TicketSLA.objects.for_tenant(personas.tenant).get(ticket=ticket)
    TicketSLA.objects.for_tenant(personas.tenant).filter(pk=clock.pk).update(
        running_since=clock.running_since - timedelta(hours=6, minutes=30)
    )
    page = client_for(personas.agent).get(f"/tickets/{ticket.number}/").content.decode()
    assert "SLA clock" in page and "at risk" in page
    assert "6.5 of 8.0 business hours used (81 %)" in page and "Paris office" in page
    assert '<progress class="sla-meter sla-meter-at_risk" max="100" value="81"' in page


def test_a_ticket_waiting_on_the_requester_shows_paused_on_its_page_and_in_the_queue(
    personas, make_ticket, client_for
):
    _calendar(personas.tenant)
    ticket = make_ticket(personas.tenant, personas.requester, title="Waiting for the user")
    ticket_transition(ticket=ticket, actor=personas.agent, status="on_hold")
    client = client_for(personas.agent)
    page = client.get(f"/tickets/{ticket.number}/").content.decode()
    assert "paused: waiting on the requester" in page
    queue = client.get("/tickets/").content.decode()
    assert 'class="sla sla-paused"' in queue and "paused, 24 h left" in queue


def test_the_queue_query_count_stays_constant_with_clocks(
    personas, make_ticket, client_for, django_assert_max_num_queries
):
    _calendar(personas.tenant)
    for i in range(12):
        make_ticket(personas.tenant, personas.requester, title=f"Printer {i}")
    client = client_for(personas.agent)
    client.get("/tickets/")
    with django_assert_max_num_queries(10):
        response = client.get("/tickets/")
    assert response.content.decode().count('class="sla sla-ok"') == 12


def test_another_tenants_calendar_never_applies(personas, make_ticket):
    _calendar(personas.other_tenant)
    ticket = make_ticket(personas.tenant, personas.requester)
    assert TicketSLA.objects.for_tenant(personas.tenant).get(ticket=ticket).calendar is None
