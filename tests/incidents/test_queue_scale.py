"""What keeps the queue and the list API fast at a million tickets (tests/bench/test_bench_queue.py),
checked for behaviour on a small data set: the API's capped count and its flag, the relevance
ranking over a bounded candidate set, and the query counts of the requester's own queue."""

from __future__ import annotations

import pytest

from agentops.services import api_token_create

API = "/api/v1/tickets"


@pytest.fixture
def api_get(client, personas):
    """``api_get(**params)`` as the agent, with a bearer token: the parsed JSON body."""
    _, raw = api_token_create(tenant=personas.tenant, user=personas.agent)

    def get(**params):
        response = client.get(API, params, HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert response.status_code == 200, response.content
        return response.json()

    return get


def test_api_count_is_exact_under_the_cap(personas, make_ticket, api_get):
    for i in range(3):
        make_ticket(personas.tenant, personas.requester, title=f"Printer {i} jammed")

    body = api_get()

    assert body["count"] == 3 and body["count_is_exact"] is True


def test_api_count_stops_past_the_cap_and_says_so(personas, api_get, monkeypatch):
    from incidents import selectors
    from incidents.testdata import bulk_generate

    bulk_generate(tenant=personas.tenant, count=12, comments_per_ticket=0)
    monkeypatch.setattr(selectors, "COUNT_CAP", 5)

    first = api_get(limit=2)
    # At least 6 match: the count stopped one past the cap.
    assert (first["count"], first["count_is_exact"]) == (6, False)
    assert len(first["items"]) == 2
    # A page past the cap counts past its own end, so paging on while offset < count
    # reaches every ticket; the last page's count is exact again.
    deep = api_get(limit=4, offset=4)
    assert (deep["count"], deep["count_is_exact"]) == (9, False)
    seen, offset = [], 0
    while True:
        body = api_get(limit=4, offset=offset, sort="oldest")
        seen += [item["number"] for item in body["items"]]
        offset += 4
        if offset >= body["count"]:
            break
    assert body["count_is_exact"] is True and body["count"] == 12
    assert len(seen) == len(set(seen)) == 12


def test_api_search_count_has_its_own_cap(personas, make_ticket, api_get, monkeypatch):
    from incidents import selectors

    for i in range(4):
        make_ticket(personas.tenant, personas.requester, title=f"VPN drops {i}")
    make_ticket(personas.tenant, personas.requester, title="Printer jammed")
    monkeypatch.setattr(selectors, "SEARCH_COUNT_CAP", 2)

    body = api_get(q="vpn", limit=1)
    assert (body["count"], body["count_is_exact"]) == (3, False)
    assert api_get(limit=1)["count_is_exact"] is True  # no search: the plain cap


def test_api_relevance_list_ends_with_its_ranked_candidates(
    personas, make_ticket, api_get, monkeypatch
):
    """Sorted by relevance over many matches, the API lists the ranked candidates, best
    first; its count does not grow with the offset, so paging on stops."""
    from incidents import selectors

    monkeypatch.setattr(selectors, "FEW_MATCHES", 1)
    monkeypatch.setattr(selectors, "RELEVANCE_CANDIDATES", 3)
    monkeypatch.setattr(selectors, "SEARCH_COUNT_CAP", 3)
    weak = make_ticket(personas.tenant, personas.requester, title="Laptop", description="vpn")
    old = make_ticket(personas.tenant, personas.requester, title="Old VPN", description="")
    for i in range(4):
        make_ticket(personas.tenant, personas.requester, title=f"Printer {i}", description="")
    middle = make_ticket(personas.tenant, personas.requester, title="VPN down", description="")
    make_ticket(personas.tenant, personas.requester, title="VPN again", description="x")
    strong = make_ticket(personas.tenant, personas.requester, title="VPN VPN down")

    first = api_get(q="vpn", sort="relevance", limit=2)
    assert (first["count"], first["count_is_exact"]) == (4, False)
    assert first["items"][0]["number"] == strong.number
    rest = api_get(q="vpn", sort="relevance", limit=2, offset=2)
    assert len(rest["items"]) == 1 and rest["count"] == 4
    assert api_get(q="vpn", sort="relevance", limit=2, offset=4) == {
        **rest,
        "items": [],
        "offset": 4,
    }
    listed = {i["number"] for i in first["items"] + rest["items"]}
    assert middle.number in listed  # the newest 3 matches only:
    assert weak.number not in listed and old.number not in listed


def test_api_schema_documents_the_capped_count(client):
    schema = client.get("/api/v1/openapi.json").json()
    listing = schema["components"]["schemas"]["TicketList"]["properties"]
    assert "lower bound" in listing["count"]["description"]
    assert listing["count_is_exact"]["type"] == "boolean"


# --- relevance over a bounded candidate set ---------------------------------------------------


def test_ranked_page_is_the_slice_of_the_ranked_candidates(personas, make_ticket, monkeypatch):
    """count_matches ranks the newest candidates in Python as SQL would; the pages read from
    its ids (rows_by_ids) are exactly the slices of relevance_candidates, page after page."""
    from agentops.models import Membership
    from incidents import selectors

    monkeypatch.setattr(selectors, "RELEVANCE_CANDIDATES", 9)
    monkeypatch.setattr(selectors, "FEW_MATCHES", 5)  # many matches, as at scale
    for i in range(12):
        make_ticket(
            personas.tenant,
            personas.requester,
            title="Printer " * (1 + i % 4) + f"jam {i}",
            description="printer" if i % 3 else "",
        )
    membership = Membership.objects.get(user=personas.agent, tenant=personas.tenant)
    qs = selectors.ticket_queue(membership, selectors.QueueFilters(q="printer", sort="relevance"))
    assert selectors.is_ranked(qs)
    expected = [t.pk for t in selectors.relevance_candidates(qs)]
    assert len(expected) == 9
    counted = selectors.count_matches(qs, 10, in_order=True)
    assert counted.found == 11 and counted.ids == expected  # 12 match: "10+"
    pages = [
        [t.pk for t in selectors.rows_by_ids(qs, counted.ids, start, start + 4)]
        for start in (0, 4, 8, 12)
    ]
    assert pages == [expected[0:4], expected[4:8], expected[8:9], []]
    assert [t.pk for t in selectors.queue_page(qs, 11, 4, 8)] == expected[4:8]


def test_relevance_ranks_a_better_match_higher(personas, make_ticket, client_for, monkeypatch):
    """Among the candidates the order is ts_rank's: the word in the title (weight A) several
    times beats once in the title, which beats the description only, whatever their age."""
    import datetime as dt

    from django.utils import timezone

    from incidents import selectors
    from incidents.models import Ticket

    monkeypatch.setattr(selectors, "FEW_MATCHES", 1)  # the ranked-candidates path, as at scale
    body_only = make_ticket(
        personas.tenant, personas.requester, title="Laptop slow", description="The VPN drops."
    )
    once = make_ticket(personas.tenant, personas.requester, title="VPN drops", description="")
    thrice = make_ticket(
        personas.tenant, personas.requester, title="VPN VPN VPN client broken", description="vpn"
    )
    now = timezone.now()
    # The best match is the oldest, the weakest the newest: a date order would reverse them.
    for age, ticket in enumerate([body_only, once, thrice]):
        Ticket.objects.for_tenant(personas.tenant).filter(pk=ticket.pk).update(
            created_at=now - dt.timedelta(hours=age)
        )
    html = client_for(personas.agent).get("/tickets/", {"q": "vpn", "sort": "relevance"})
    html = html.content.decode()
    assert html.index(thrice.number) < html.index(once.number) < html.index(body_only.number)


# --- the requester's own queue ----------------------------------------------------------------


def _queue_sql(client, params=None) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/tickets/", params or {}).status_code == 200
    # The ticket queries: the count, the page (and the ids when few match); not the grants
    # (a UNION, which reads the addressed tickets' ids by e-mail).
    return [
        q["sql"]
        for q in ctx.captured_queries
        if '"incidents_ticket"' in q["sql"] and not q["sql"].startswith("(")
    ]


def test_requester_queue_is_requester_alone_when_nothing_is_addressed(
    personas, make_ticket, client_for, django_assert_max_num_queries
):
    """With no ticket addressed to their e-mail alone, a requester's queue filters on the
    requester column only (read in order from (tenant, requester, created_at)); the page
    stays within the queue's pinned query count."""
    from tests.incidents.test_query_counts import QUEUE_QUERIES

    mine = [make_ticket(personas.tenant, personas.requester, title=f"Mine {i}") for i in range(3)]
    theirs = make_ticket(personas.tenant, personas.requester2, title="Rosa's")
    client = client_for(personas.requester)
    client.get("/tickets/")
    with django_assert_max_num_queries(QUEUE_QUERIES):
        html = client.get("/tickets/").content.decode()
    assert all(t.number in html for t in mine) and theirs.number not in html
    page_sql = _queue_sql(client)
    assert len(page_sql) >= 2 and not any('"requester_email" =' in sql for sql in page_sql)


def test_tickets_addressed_to_the_requester_stay_theirs(
    personas, make_ticket, client_for, monkeypatch
):
    """A ticket opened for their address with no user attached is listed, in this tenant
    only; past ADDRESSED_LISTED of them the queue matches them by address instead."""
    from incidents import selectors

    email = personas.requester.email
    addressed = [
        make_ticket(personas.tenant, title=f"By mail {i}", requester_email=email.upper())
        for i in range(3)
    ]
    own = make_ticket(personas.tenant, personas.requester, title="Own")
    elsewhere = make_ticket(personas.other_tenant, title="Other tenant", requester_email=email)
    stranger = make_ticket(personas.tenant, title="Someone else's")
    client = client_for(personas.requester)

    for listed in (selectors.ADDRESSED_LISTED, 2):
        monkeypatch.setattr(selectors, "ADDRESSED_LISTED", listed)
        html = client.get("/tickets/").content.decode()
        assert all(t.number in html for t in [*addressed, own]), listed
        assert stranger.title not in html and elsewhere.title not in html, html
        assert "<strong>4</strong> tickets" in html
        detail = client.get(f"/tickets/{addressed[0].number}/")
        assert detail.status_code == 200
        assert client.get(f"/tickets/{stranger.number}/").status_code == 404
    # Past the limit the address is matched in SQL, not listed by id.
    assert any('"requester_email" =' in sql for sql in _queue_sql(client))


# --- a search counted by its ids in page order ------------------------------------------------


@pytest.mark.parametrize("sort", ["newest", "oldest", "priority", "sla", "updated", "number"])
def test_search_pages_are_the_plain_slice_in_every_sort(personas, client_for, monkeypatch, sort):
    """count_matches reads a search's ids in the page's order, up to the cap + 1: the pages
    read from them (rows_by_ids) are the sorted queryset's slices, and the console says
    "5+" past the cap."""
    from agentops.models import Membership
    from incidents import selectors
    from incidents.testdata import bulk_generate

    bulk_generate(tenant=personas.tenant, count=40, comments_per_ticket=0)
    membership = Membership.objects.get(user=personas.agent, tenant=personas.tenant)
    qs = selectors.ticket_queue(membership, selectors.QueueFilters(q="vpn", sort=sort))
    total = qs.count()
    assert total > 6, total  # the generator's VPN templates
    counted = selectors.count_matches(qs, 5, in_order=True)
    assert (counted.found, counted.ranked) == (6, False)
    for start in (0, 2, 4):
        rows = selectors.rows_by_ids(qs, counted.ids, start, start + 2)
        assert [t.pk for t in rows] == [t.pk for t in qs[start : start + 2]], (sort, start)
    exact = selectors.count_matches(qs, total, in_order=True)
    assert exact.found == total and exact.ids == [t.pk for t in qs]

    monkeypatch.setattr(selectors, "SEARCH_COUNT_CAP", 5)
    html = client_for(personas.agent).get("/tickets/", {"q": "vpn", "sort": sort})
    assert "<strong>5+</strong> tickets" in html.content.decode()
