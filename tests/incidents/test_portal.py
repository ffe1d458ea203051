"""The requester portal: answers from the knowledge base the member may read (with citations),
the catalogue's short forms open tickets (source portal), "my requests" in plain words with the
desk's latest public reply, and every route isolated by tenant and role."""

from __future__ import annotations

import pytest
from django.urls import reverse

from incidents import services
from incidents.models import Source, Status, Ticket

PORTAL = "/portal/"


@pytest.fixture
def kb(personas, django_capture_on_commit_callbacks):
    from knowledge import services as kb_services

    def add(tenant, title, content, kind="runbook"):
        with django_capture_on_commit_callbacks(execute=True):
            return kb_services.ingest_text(tenant=tenant, kind=kind, title=title, content=content)

    add(
        personas.tenant,
        "VPN troubleshooting",
        "# VPN keeps disconnecting\n\nUpdate the VPN profile to version 3 and restart the client.",
    )
    add(
        personas.other_tenant, "Globex VPN secrets", "# VPN\n\nGlobex VPN disconnecting fix secret."
    )
    return add


def test_search_answers_with_citations_from_own_tenant(personas, kb, client_for):
    html = client_for(personas.requester).get(PORTAL, {"q": "vpn disconnecting"}).content.decode()
    answers = html[html.index('id="answers"') : html.index('id="my-requests"')]
    assert "Answers from our knowledge base" in answers
    assert "VPN troubleshooting" in answers and 'href="/knowledge/' in answers
    assert "Globex" not in answers
    # The live partial answers HTMX alone.
    partial = client_for(personas.requester).get(
        PORTAL, {"q": "vpn disconnecting", "part": "answers"}, HTTP_HX_REQUEST="true"
    )
    assert partial.content.decode().lstrip().startswith('<div id="answers"')
    none = client_for(personas.requester).get(PORTAL, {"q": "zebra giraffe"}).content.decode()
    assert "We found nothing in the knowledge base" in none
    # A NUL byte is refused at the perimeter, in words (issue 11), never a 500.
    assert client_for(personas.requester).get(PORTAL, {"q": "vpn\x00"}).status_code == 400


def test_requesters_do_not_get_past_tickets_as_answers(personas, kb, client_for):
    kb(
        personas.tenant,
        "Past ticket about printers",
        "# Printer\n\nRobin's printer paper jam.",
        kind="historical_ticket",
    )
    html = client_for(personas.requester).get(PORTAL, {"q": "printer paper jam"}).content.decode()
    assert "Past ticket about printers" not in html


@pytest.mark.parametrize(
    ("slug", "data", "title", "category"),
    [
        (
            "software",
            {"software": "Zoom", "device": "LT-1001", "reason": "Client calls"},
            "Install Zoom on LT-1001",
            "software",
        ),
        (
            "shared-drive",
            {
                "drive": "Finance",
                "access": "write",
                "manager": "m@acme.example",
                "reason": "Budget",
            },
            "Access to the shared drive Finance (read and write)",
            "access",
        ),
        (
            "new-starter",
            {
                "name": "Kim Lee",
                "start_date": "2027-01-04",
                "role": "Analyst",
                "equipment": ["laptop", "vpn"],
            },
            "New starter: Kim Lee on Jan 04, 2027",
            "access",
        ),
    ],
)
def test_catalogue_forms_open_tickets(personas, client_for, slug, data, title, category):
    client = client_for(personas.requester)
    url = reverse("portal:request", args=[slug])
    empty = client.post(url, {})
    assert empty.status_code == 400 and "field-error" in empty.content.decode()
    response = client.post(url, data)
    ticket = Ticket.objects.for_tenant(personas.tenant).get()
    assert response.status_code == 302 and response["Location"] == f"/tickets/{ticket.number}/"
    assert ticket.title == title and ticket.category == category
    assert ticket.source == Source.PORTAL and ticket.requester == personas.requester


def test_catalogue_refuses_bad_input_and_roles(personas, client_for):
    client = client_for(personas.requester)
    assert client.get("/portal/request/nope/").status_code == 404
    bad = client.post(
        "/portal/request/shared-drive/",
        {"drive": "x", "access": "root", "manager": "nope", "reason": "r"},
    )
    assert bad.status_code == 400 and Ticket.objects.for_tenant(personas.tenant).count() == 0
    assert client_for(personas.auditor).get("/portal/request/software/").status_code == 403


def test_my_requests_in_plain_words_with_the_desk_reply(personas, make_ticket, client_for):
    mine = make_ticket(personas.tenant, personas.requester, title="Laptop fan is loud")
    services.ticket_comment(ticket=mine, actor=personas.agent, body="We ordered a new fan.")
    services.ticket_comment(
        ticket=mine, actor=personas.agent, body="Secret internal", is_internal=True
    )
    done = make_ticket(personas.tenant, personas.requester, title="Mouse broken")
    services.ticket_transition(
        ticket=done, actor=personas.agent, status=Status.RESOLVED, note="New mouse"
    )
    make_ticket(personas.tenant, personas.requester2, title="Rosa's own request")
    make_ticket(personas.other_tenant, None, title="Globex request")
    html = client_for(personas.requester).get(PORTAL).content.decode()
    mine_html = html[html.index('id="my-requests"') :]
    assert "Laptop fan is loud" in mine_html and "Received: we will look at it shortly" in mine_html
    assert "We ordered a new fan." in mine_html and "Secret internal" not in mine_html
    assert "Resolved: tell us how we did" in mine_html and "Rate the resolution" in mine_html
    assert "Rosa" not in html and "Globex" not in html


def test_portal_query_count_is_pinned(
    personas, make_ticket, client_for, django_assert_max_num_queries
):
    for n in range(5):
        t = make_ticket(personas.tenant, personas.requester, title=f"Request {n}")
        services.ticket_comment(ticket=t, actor=personas.agent, body=f"Reply {n}")
    client = client_for(personas.requester)
    client.get(PORTAL)
    with django_assert_max_num_queries(9):  # + the agent's questions awaiting an answer
        assert client.get(PORTAL).status_code == 200


def test_the_portal_asks_did_this_solve_it_and_takes_the_answer(personas, make_ticket, client_for):
    from incidents import replies

    ticket = make_ticket(personas.tenant, personas.requester, title="How do I set out-of-office?")
    replies.reply_post(
        ticket=ticket, kind="answer", body="Open Settings › Automatic replies.", awaiting=True
    )
    other = make_ticket(personas.tenant, personas.requester, title="Printer jam")
    client = client_for(personas.requester)
    html = client.get(PORTAL).content.decode()
    mine = html[html.index('id="my-requests"') :]
    assert mine.count("Did this solve it?") == 1
    assert f'id="confirm-{ticket.number}"' in mine and f'id="confirm-{other.number}"' not in mine
    answered = client.post(
        reverse("incidents:ticket-confirm", args=[ticket.number]),
        {"solved": "yes", "next": PORTAL},
    )
    assert answered.status_code in (200, 302)
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED
    assert "Did this solve it?" not in client.get(PORTAL).content.decode()
