"""CSAT: the requester (and only the requester) rates a resolved ticket 1-5, in the console
and through the API; staff see the rating; a rating again updates it; every change is audited."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from agentops.models import AuditEvent
from agentops.services import api_token_create
from incidents import services
from incidents.models import Status
from tests.incidents.test_api import ApiClient


@pytest.fixture
def resolved(personas, make_ticket):
    ticket = make_ticket(personas.tenant, personas.requester)
    return services.ticket_transition(
        ticket=ticket, actor=personas.agent, status=Status.RESOLVED, note="Reset the VPN profile."
    )


def rate_url(ticket):
    return reverse("incidents:ticket-rate", args=[ticket.number])


def events(tenant, ticket):
    return list(
        AuditEvent.objects.for_tenant(tenant)
        .filter(target_id=ticket.number, action__in=["ticket.rated", "ticket.rerated"])
        .order_by("seq")
        .values_list("action", "changes")
    )


def test_requester_rates_in_the_console_and_can_update(personas, resolved, client_for):
    client = client_for(personas.requester)
    page = client.get(reverse("incidents:ticket-detail", args=[resolved.number])).content.decode()
    assert 'id="csat"' in page and rate_url(resolved) in page

    response = client.post(
        rate_url(resolved), {"score": "4", "comment": "Quick, thanks"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert "4/5" in response.content.decode() and "rating is saved" in response.content.decode()
    resolved.refresh_from_db()
    assert (resolved.csat_score, resolved.csat_comment) == (4, "Quick, thanks")
    assert resolved.csat_at is not None

    # Once per ticket: a second rating updates the first.
    response = client.post(rate_url(resolved), {"score": "2"})
    assert response.status_code == 302
    resolved.refresh_from_db()
    assert (resolved.csat_score, resolved.csat_comment) == (2, "")
    assert events(personas.tenant, resolved) == [
        ("ticket.rated", {"csat": {"from": None, "to": 4}}),
        ("ticket.rerated", {"csat": {"from": 4, "to": 2}}),
    ]


@pytest.mark.parametrize("score", ["0", "6", "x", ""])
def test_score_must_be_1_to_5(personas, resolved, client_for, score):
    response = client_for(personas.requester).post(
        rate_url(resolved), {"score": score}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert "field-error" in response.content.decode()
    resolved.refresh_from_db()
    assert resolved.csat_score is None


def test_service_validates_range_comment_and_status(personas, make_ticket, resolved):
    for score in (0, 6, None, "five"):
        with pytest.raises(ValidationError):
            services.ticket_rate(ticket=resolved, actor=personas.requester, score=score)
    with pytest.raises(ValidationError):
        services.ticket_rate(ticket=resolved, actor=personas.requester, score=3, comment="x" * 1001)
    open_ticket = make_ticket(personas.tenant, personas.requester)
    with pytest.raises(ValidationError, match="resolved"):
        services.ticket_rate(ticket=open_ticket, actor=personas.requester, score=5)


def test_only_the_requester_rates(personas, resolved, client_for):
    # Staff see the ticket but may not rate it for the requester: 403.
    for user in (personas.agent, personas.admin, personas.reviewer):
        assert client_for(user).post(rate_url(resolved), {"score": "5"}).status_code == 403
    with pytest.raises(PermissionDenied):
        services.ticket_rate(ticket=resolved, actor=personas.agent, score=5)
    # Another requester and the other tenant cannot even see it: 404.
    assert (
        client_for(personas.requester2).post(rate_url(resolved), {"score": "5"}).status_code == 404
    )
    assert client_for(personas.outsider).post(rate_url(resolved), {"score": "5"}).status_code == 404
    resolved.refresh_from_db()
    assert resolved.csat_score is None


def test_staff_see_the_rating_but_no_form(personas, resolved, client_for):
    url = reverse("incidents:ticket-detail", args=[resolved.number])
    assert 'id="csat"' not in client_for(personas.agent).get(url).content.decode()  # unrated
    services.ticket_rate(ticket=resolved, actor=personas.requester, score=5, comment="Great")
    html = client_for(personas.agent).get(url).content.decode()
    assert "5/5" in html and "Great" in html and rate_url(resolved) not in html


def test_unresolved_ticket_shows_no_rating_form(personas, make_ticket, client_for):
    ticket = make_ticket(personas.tenant, personas.requester)
    url = reverse("incidents:ticket-detail", args=[ticket.number])
    assert rate_url(ticket) not in client_for(personas.requester).get(url).content.decode()
    assert client_for(personas.requester).post(rate_url(ticket), {"score": "5"}).status_code == 400


def test_rate_through_the_api(personas, resolved, client):
    def api(user, tenant=None):
        _, raw = api_token_create(tenant=tenant or personas.tenant, user=user)
        return ApiClient(client, raw)

    path = f"/{resolved.number}/csat"
    response = api(personas.requester).post({"score": 5, "comment": "Thanks"}, path)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["number"], body["csat_score"], body["csat_comment"]) == (
        resolved.number,
        5,
        "Thanks",
    )
    assert body["csat_at"]
    # Range and shape: 400 with the field named.
    bad = api(personas.requester).post({"score": 9}, path)
    assert bad.status_code == 400 and "score" in bad.json()["fields"]
    assert api(personas.requester).post("5", path).status_code == 400
    # Staff: 403; another requester and another tenant: 404.
    assert api(personas.agent).post({"score": 1}, path).status_code == 403
    assert api(personas.requester2).post({"score": 1}, path).status_code == 404
    assert api(personas.outsider, personas.other_tenant).post({"score": 1}, path).status_code == 404
    resolved.refresh_from_db()
    assert resolved.csat_score == 5
