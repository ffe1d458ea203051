"""Query counts of the pages people open all day, pinned; and the capped count and relevance
candidates that keep the queue fast at a million tickets (tests/bench/test_bench_queue.py)."""

from __future__ import annotations

import pytest

from incidents.models import Status

# session, user, membership, choices, the tenant's categories (the filter's choices and the
# rows' names, read once), count, page (+ ids when few match)
QUEUE_QUERIES = 8


def _detail_ticket(personas, make_ticket):
    """A ticket with a conversation, an internal note and a history."""
    from incidents import services

    ticket = make_ticket(personas.tenant, personas.requester, title="VPN drops every hour")
    ticket = services.ticket_assign(ticket=ticket, actor=personas.agent, assignee=personas.agent)
    services.ticket_comment(ticket=ticket, actor=personas.agent, body="Looking into it.")
    services.ticket_comment(
        ticket=ticket, actor=personas.agent, body="Concentrator logs asked.", is_internal=True
    )
    services.ticket_comment(ticket=ticket, actor=personas.requester, body="Still dropping.")
    return services.ticket_transition(
        ticket=ticket, actor=personas.agent, status=Status.IN_PROGRESS
    )


@pytest.mark.parametrize("persona", ["agent", "admin", "requester", "auditor"])
def test_ticket_detail_makes_at_most_10_queries(
    personas, make_ticket, client_for, django_assert_max_num_queries, persona
):
    from incidents import services

    ticket = _detail_ticket(personas, make_ticket)
    client = client_for(getattr(personas, persona))
    url = f"/tickets/{ticket.number}/"
    assert client.get(url).status_code == 200  # warm the session
    with django_assert_max_num_queries(10) as first:
        response = client.get(url)
    assert response.status_code == 200
    assert "Still dropping." in response.content.decode()
    # More comments and history cost no more queries.
    for i in range(5):
        services.ticket_comment(ticket=ticket, actor=personas.agent, body=f"Update {i}.")
    # The comments notify the requester: the bell recounts its unread once, then caches it.
    client.get(url)
    with django_assert_max_num_queries(10) as later:
        response = client.get(url)
    assert "Update 4." in response.content.decode()
    assert len(later.captured_queries) == len(first.captured_queries)


QUEUE_VARIANTS = [
    {},
    {"status": "open"},
    {"status": "new", "kind": "incident", "sort": "sla"},
    {"priority": "high", "sort": "priority"},
    {"category": "network", "sort": "oldest"},
    {"assignee": "me", "status": "open"},
    {"sort": "updated"},
    {"q": "vpn"},
    {"q": "vpn", "sort": "relevance"},
    {"q": "vpn", "status": "open", "priority": "high"},
    {"page": "3"},
]


@pytest.mark.parametrize("params", QUEUE_VARIANTS, ids=lambda p: "&".join(p) or "default")
def test_queue_variants_keep_their_query_count(
    personas, client_for, django_assert_max_num_queries, params
):
    from incidents.testdata import bulk_generate

    bulk_generate(tenant=personas.tenant, count=80, comments_per_ticket=0)
    client = client_for(personas.agent)
    client.get("/tickets/")
    with django_assert_max_num_queries(QUEUE_QUERIES):
        page = client.get("/tickets/", params)
    assert page.status_code == 200
    with django_assert_max_num_queries(QUEUE_QUERIES):
        partial = client.get("/tickets/", params, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200


def test_queue_count_is_capped_and_says_so(personas, client_for, settings, monkeypatch):
    from incidents import selectors
    from incidents.testdata import bulk_generate

    monkeypatch.setattr(selectors, "COUNT_CAP", 5)
    settings.TICKETS_PER_PAGE = 2
    bulk_generate(tenant=personas.tenant, count=8, comments_per_ticket=0)
    client = client_for(personas.agent)
    html = client.get("/tickets/").content.decode()
    assert "<strong>5+</strong> tickets" in html
    assert "Page 1 of 3+" in html
    last = client.get("/tickets/", {"page": 3}).content.decode()
    assert "The first 5 are listed" in last
    assert 'rel="next"' not in last
    # Under the cap the count is exact and nothing says "+".
    monkeypatch.setattr(selectors, "COUNT_CAP", 100)
    html = client.get("/tickets/").content.decode()
    assert "<strong>8</strong> tickets" in html and "Page 1 of 4<" in html


def test_a_deep_page_is_the_plain_slice(personas, client_for, settings, monkeypatch):
    """Past DEEP_OFFSET a page reads its ids first: the same rows, in the same order."""
    from agentops.models import Membership
    from incidents import selectors
    from incidents.testdata import bulk_generate

    bulk_generate(tenant=personas.tenant, count=40, comments_per_ticket=0)
    monkeypatch.setattr(selectors, "DEEP_OFFSET", 5)
    membership = Membership.objects.get(user=personas.agent, tenant=personas.tenant)
    for sort in ("newest", "sla", "priority", "number"):
        qs = selectors.ticket_queue(membership, selectors.QueueFilters(sort=sort))
        # total above FEW_MATCHES, as at scale: the deep path, not the few-ids one
        page = selectors.queue_page(qs, selectors.FEW_MATCHES + 1, 10, 20)
        assert [t.pk for t in page] == [t.pk for t in qs[10:20]], sort


def test_relevance_over_many_matches_ranks_the_newest_candidates(
    personas, make_ticket, client_for, monkeypatch
):
    """Past FEW_MATCHES, relevance ranks the newest RELEVANCE_CANDIDATES matches only (an
    older, more relevant match is left out), and the page says so."""
    import datetime as dt

    from django.utils import timezone

    from incidents import selectors
    from incidents.models import Ticket

    monkeypatch.setattr(selectors, "FEW_MATCHES", 2)
    monkeypatch.setattr(selectors, "RELEVANCE_CANDIDATES", 3)
    now = timezone.now()
    best = make_ticket(
        personas.tenant, personas.requester, title="Printer printer printer jam", description=""
    )
    others = [
        make_ticket(personas.tenant, personas.requester, title=f"Printer {i} offline")
        for i in range(4)
    ]
    strong = make_ticket(
        personas.tenant, personas.requester, title="Printer printer offline", description=""
    )
    # best is the oldest; strong the newest; the others in between.
    for age, ticket in enumerate([strong, *reversed(others), best]):
        Ticket.objects.for_tenant(personas.tenant).filter(pk=ticket.pk).update(
            created_at=now - dt.timedelta(hours=age)
        )
    client = client_for(personas.agent)
    html = client.get("/tickets/", {"q": "printer", "sort": "relevance"}).content.decode()
    assert "<strong>6</strong> tickets" in html
    assert "(the newest 3 sorted by relevance)" in html
    assert best.number not in html and others[0].number not in html
    shown = [t.number for t in (strong, others[3], others[2]) if t.number in html]
    assert len(shown) == 3
    assert html.index(strong.number) < html.index(others[3].number)


def test_my_work_query_count_and_capped_total(
    personas, client_for, django_assert_max_num_queries, monkeypatch
):
    from incidents import selectors
    from incidents.analytics import views as analytics_views
    from incidents.models import Ticket
    from incidents.testdata import bulk_generate

    bulk_generate(tenant=personas.tenant, count=30, comments_per_ticket=0)
    Ticket.objects.for_tenant(personas.tenant).update(
        assignee=personas.agent, status=Status.IN_PROGRESS
    )
    client = client_for(personas.agent)
    client.get("/my-work/")
    with django_assert_max_num_queries(10):
        html = client.get("/my-work/").content.decode()
    assert '<span class="tab-count">30</span>' in html
    monkeypatch.setattr(selectors, "COUNT_CAP", 20)
    monkeypatch.setattr(analytics_views, "COUNT_CAP", 20)
    html = client.get("/my-work/").content.decode()
    assert '<span class="tab-count">20+</span>' in html


def test_incident_detail_costs_one_query_more_than_a_request(personas, make_ticket, client_for):
    """An incident's page also lists its on-call pages: one query more than a request's page,
    within the ticket page's 10 (the 1M bench's detail ticket is an incident since its tickets
    load in creation order)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from incidents import services
    from incidents.models import Kind

    client = client_for(personas.agent)
    counts = {}
    for kind in (Kind.REQUEST, Kind.INCIDENT):
        ticket = make_ticket(personas.tenant, personas.requester, kind=kind)
        services.ticket_comment(ticket=ticket, actor=personas.agent, body="Concentrator down.")
        url = f"/tickets/{ticket.number}/"
        assert client.get(url).status_code == 200
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        assert "Concentrator down." in response.content.decode()
        counts[kind] = len(ctx.captured_queries)
    assert counts[Kind.INCIDENT] == counts[Kind.REQUEST] + 1 <= 10, counts
