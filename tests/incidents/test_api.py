"""The ticket JSON API (django-ninja at /api/v1/): create, validate, isolate, scope, list.

Every request carries ``Authorization: Bearer <token>``; the token fixes tenant and user.
Two tenants (acme, globex) number their tickets independently, so both have a REQ0000001:
the tests rely on that to prove no endpoint ever answers with the other tenant's row.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.conf import settings
from guardian.shortcuts import assign_perm

from agentops.models import AuditEvent
from agentops.services import api_token_create
from incidents import services
from incidents.models import Queue, Status, Ticket

API = "/api/v1/tickets"

SEED_REQUEST = {
    "title": "Cannot connect to VPN",
    "description": "Getting timeout errors when connecting from home.",
    "user_email": "john.doe@company.com",
}
SEED_INCIDENT = {
    "title": "Lambda function timeout",
    "description": "Order processing Lambda exceeds its 30 s timeout since the last deploy.",
    "kind": "incident",
    "severity": "sev2",
    "affected_services": ["Lambda", "API-Gateway"],
    "detected_by": "monitoring-system",
}


class ApiClient:
    """The Django test client with a bearer token on every request."""

    def __init__(self, client, raw: str):
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}

    def get(self, path: str = "", **params):
        return self.client.get(API + path, params, **self.headers)

    def post(self, payload, path: str = ""):
        body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        return self.client.post(
            API + path, data=body, content_type="application/json", **self.headers
        )


@pytest.fixture
def api_as(client, personas):
    """``api_as(user)`` → an ApiClient holding a fresh token of that user in their tenant."""

    def make(user, tenant=None):
        _, raw = api_token_create(tenant=tenant or personas.tenant, user=user)
        return ApiClient(client, raw)

    return make


def all_tickets():
    return Ticket.objects.unscoped("tests count rows across tenants")


def created_events():
    return AuditEvent.objects.unscoped("tests read both tenants' trails").filter(
        action="ticket.created"
    )


def numbers(response) -> list[str]:
    return [item["number"] for item in response.json()["items"]]


# ---------------------------------------------------------------- POST /tickets


def test_create_request_from_seed_payload(personas, api_as):
    response = api_as(personas.agent).post(SEED_REQUEST)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == "REQ0000001"
    assert body["kind"] == "request"
    assert body["title"] == SEED_REQUEST["title"]
    assert body["description"] == SEED_REQUEST["description"]
    assert body["requester_email"] == "john.doe@company.com"
    assert body["source"] == "api"
    assert body["status"] == "new"
    assert body["priority"] == "medium"
    assert body["assignee"] is None
    assert body["url"] == "/tickets/REQ0000001/"

    ticket = Ticket.objects.for_tenant(personas.tenant).get(number="REQ0000001")
    assert ticket.source == "api"
    assert ticket.requester is None  # nobody in acme has that address
    # Acme's SLA for medium is 24 hours from creation.
    assert ticket.sla_due == ticket.created_at + timedelta(hours=24)
    assert body["sla_due"] is not None

    event = created_events().get(target_id="REQ0000001")
    assert event.tenant_id == personas.tenant.pk
    assert event.actor_id == personas.agent.pk
    assert event.actor_label == personas.agent.username
    assert event.changes["source"] == "api"
    assert event.changes["requester_email"] == "john.doe@company.com"


def test_create_incident_from_monitoring_payload(personas, api_as):
    api = api_as(personas.agent)
    response = api.post(SEED_INCIDENT)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == "INC0000001"
    assert body["kind"] == "incident"
    assert body["severity"] == "sev2"
    assert body["affected_services"] == ["Lambda", "API-Gateway"]
    assert body["detected_by"] == "monitoring-system"
    assert body["source"] == "api"
    # Without an e-mail the ticket is the token user's.
    assert body["requester_email"] == personas.agent.email

    # Requests and incidents are numbered by separate counters.
    assert api.post(SEED_REQUEST).json()["number"] == "REQ0000001"
    assert api.post(SEED_INCIDENT).json()["number"] == "INC0000002"


def test_numbers_are_per_tenant(personas, api_as):
    acme = api_as(personas.agent)
    globex = api_as(personas.outsider, personas.other_tenant)

    assert acme.post(SEED_REQUEST).json()["number"] == "REQ0000001"
    assert acme.post(SEED_REQUEST).json()["number"] == "REQ0000002"
    assert globex.post(SEED_REQUEST).json()["number"] == "REQ0000001"

    assert Ticket.objects.for_tenant(personas.tenant).count() == 2
    assert Ticket.objects.for_tenant(personas.other_tenant).count() == 1
    event = created_events().get(tenant=personas.other_tenant)
    assert event.actor_id == personas.outsider.pk


def test_create_echoes_optional_fields_and_sets_sla_by_priority(personas, api_as):
    payload = {
        "title": "Laptop will not boot",
        "description": "Black screen after the BIOS logo.",
        "category": "hardware",
        "priority": "high",
        "requester_email": "Someone.Else@Example.com",
    }
    response = api_as(personas.agent).post(payload)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["category"] == "hardware"
    assert body["priority"] == "high"
    assert body["requester_email"] == "someone.else@example.com"
    ticket = Ticket.objects.for_tenant(personas.tenant).get(number=body["number"])
    assert ticket.sla_due == ticket.created_at + timedelta(hours=8)


def test_create_links_requester_of_this_tenant_only(personas, api_as):
    api = api_as(personas.agent)

    mine = api.post({**SEED_REQUEST, "user_email": personas.requester.email.upper()})
    assert mine.status_code == 201
    ticket = Ticket.objects.for_tenant(personas.tenant).get(number=mine.json()["number"])
    assert ticket.requester == personas.requester

    # personas.outsider belongs to globex: its address must not link to an acme ticket.
    foreign = api.post({**SEED_REQUEST, "requester_email": personas.outsider.email})
    assert foreign.status_code == 201
    ticket = Ticket.objects.for_tenant(personas.tenant).get(number=foreign.json()["number"])
    assert ticket.requester is None
    assert ticket.requester_email == personas.outsider.email


@pytest.mark.parametrize("own_address", [False, True])
def test_requester_token_opens_tickets_for_themselves(personas, api_as, own_address):
    api = api_as(personas.requester)
    payload = {"title": "New monitor please"}
    if own_address:
        payload["user_email"] = personas.requester.email.upper()

    response = api.post(payload)

    assert response.status_code == 201, response.content
    ticket = Ticket.objects.for_tenant(personas.tenant).get(number=response.json()["number"])
    assert ticket.requester == personas.requester
    assert api.get(f"/{ticket.number}").status_code == 200


@pytest.mark.parametrize("field", ["requester_email", "user_email"])
def test_requester_token_cannot_open_tickets_in_someone_elses_name(personas, api_as, field):
    api = api_as(personas.requester)

    response = api.post({"title": "Reset my password", field: personas.requester2.email})

    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert all_tickets().count() == 0


def test_auditor_token_cannot_create(personas, api_as):
    response = api_as(personas.auditor).post(SEED_REQUEST)

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert all_tickets().count() == 0


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"description": "no title"}, "title", id="missing-title"),
        pytest.param({"title": ""}, "title", id="empty-title"),
        pytest.param({"title": "   "}, "title", id="blank-title"),
        pytest.param({"title": "x" * 201}, "title", id="title-too-long"),
        pytest.param({"title": "ok", "priority": "urgent"}, "priority", id="bad-priority"),
        pytest.param({"title": "ok", "kind": "problem"}, "kind", id="bad-kind"),
        pytest.param({"title": "ok", "severity": "sev9"}, "severity", id="bad-severity"),
        pytest.param({"title": "ok", "category": "coffee"}, "category", id="bad-category"),
        pytest.param(
            {"title": "ok", "requester_email": "not-an-email"},
            "requester_email",
            id="bad-requester-email",
        ),
        pytest.param(
            {"title": "ok", "user_email": "john.doe(at)company"}, "user_email", id="bad-user-email"
        ),
        pytest.param(
            {"title": "ok", "description": "d" * 20_001}, "description", id="description-too-long"
        ),
        pytest.param(
            {"title": "ok", "affected_services": ["s"] * 51},
            "affected_services",
            id="too-many-services",
        ),
        pytest.param(
            {"title": "ok", "affected_services": ["s" * 101]},
            "affected_services",
            id="service-name-too-long",
        ),
        pytest.param({"title": 42}, "title", id="title-not-a-string"),
    ],
)
def test_invalid_payload_is_400_naming_the_field_and_writes_nothing(
    personas, api_as, payload, field
):
    response = api_as(personas.agent).post(payload)

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "validation_error"
    assert field in body["fields"], body
    assert all(isinstance(msg, str) and msg for msg in body["fields"][field])
    assert all_tickets().count() == 0
    assert created_events().count() == 0


@pytest.mark.parametrize("body", [b"[]", b'"just a string"', b"42", b"null"])
def test_json_that_is_not_an_object_is_a_validation_error(personas, api_as, body):
    response = api_as(personas.agent).post(body)

    assert response.status_code == 400, response.content
    assert response.json()["error"] == "validation_error"
    assert all_tickets().count() == 0


def test_empty_body_is_a_validation_error(personas, api_as):
    response = api_as(personas.agent).post(b"")

    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert all_tickets().count() == 0


@pytest.mark.parametrize(
    "body",
    [b'{"title": "Cannot connect', b"{'title': 'single quotes'}", b"\xff\xfe\x00garbage"],
    ids=["truncated", "not-json", "not-utf8"],
)
def test_malformed_json_is_400_malformed_json(personas, api_as, body):
    response = api_as(personas.agent).post(body)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "malformed_json"
    assert all_tickets().count() == 0


def test_oversized_body_is_413_json(personas, api_as):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps({"title": "big", "description": "x" * limit})
    assert len(body) > limit

    response = api_as(personas.agent).post(body)

    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "too_large"
    assert all_tickets().count() == 0


def test_body_just_under_the_limit_is_read(personas, api_as, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = json.dumps({"title": "ok", "description": "x" * 3000})

    response = api_as(personas.agent).post(body)

    assert response.status_code == 201, response.content


# ---------------------------------------------------------------- tenant isolation


@pytest.fixture
def twins(personas, make_ticket):
    """REQ0000001 in both tenants, plus REQ0000002 in acme only."""
    acme = make_ticket(personas.tenant, personas.requester, title="Acme VPN down")
    globex = make_ticket(personas.other_tenant, personas.outsider, title="Globex secret outage")
    acme2 = make_ticket(personas.tenant, personas.requester2, title="Acme printer jam")
    assert acme.number == globex.number == "REQ0000001"
    return acme, globex, acme2


def test_detail_answers_from_the_tokens_tenant(personas, api_as, twins):
    acme = api_as(personas.agent).get("/REQ0000001")
    globex = api_as(personas.outsider, personas.other_tenant).get("/REQ0000001")

    assert acme.status_code == globex.status_code == 200
    assert acme.json()["title"] == "Acme VPN down"
    assert globex.json()["title"] == "Globex secret outage"


def test_detail_is_case_insensitive(personas, api_as, twins):
    response = api_as(personas.agent).get("/req0000002")

    assert response.status_code == 200
    assert response.json()["title"] == "Acme printer jam"


def test_other_tenants_ticket_is_404_like_an_unknown_number(personas, api_as, twins):
    api = api_as(personas.outsider, personas.other_tenant)

    foreign = api.get("/REQ0000002")  # exists, but only in acme
    unknown = api.get("/REQ9999999")

    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json() == unknown.json()
    assert foreign.json()["error"] == "not_found"
    assert "Acme" not in foreign.content.decode()


def test_list_never_contains_other_tenants_tickets(personas, api_as, twins):
    acme = api_as(personas.agent).get()
    globex = api_as(personas.outsider, personas.other_tenant).get()

    assert acme.json()["count"] == 2
    assert {i["title"] for i in acme.json()["items"]} == {"Acme VPN down", "Acme printer jam"}
    assert globex.json()["count"] == 1
    assert [i["title"] for i in globex.json()["items"]] == ["Globex secret outage"]


def test_search_never_finds_other_tenants_tickets(personas, api_as, twins):
    api = api_as(personas.outsider, personas.other_tenant)

    assert api.get(q="printer").json()["count"] == 0
    assert api.get(q="REQ0000002").json()["count"] == 0
    by_number = api.get(q="REQ0000001").json()
    assert [i["title"] for i in by_number["items"]] == ["Globex secret outage"]


def test_created_ticket_is_invisible_to_the_other_tenant(personas, api_as):
    number = api_as(personas.agent).post(SEED_INCIDENT).json()["number"]

    globex = api_as(personas.outsider, personas.other_tenant)
    assert globex.get(f"/{number}").status_code == 404
    assert globex.get().json()["count"] == 0


# ---------------------------------------------------------------- role scoping


def test_requester_lists_only_their_own_tickets(personas, api_as, make_ticket):
    own = make_ticket(personas.tenant, personas.requester, title="Robin's laptop")
    # Opened by e-mail for robin's address (no account link): still robin's.
    by_mail = services.ticket_create(
        tenant=personas.tenant,
        actor=None,
        title="Robin's mailbox full",
        requester_email=personas.requester.email,
    )
    other = make_ticket(personas.tenant, personas.requester2, title="Rosa's phone")

    response = api_as(personas.requester).get()

    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert set(numbers(response)) == {own.number, by_mail.number}
    assert other.number not in numbers(response)
    # Staff see all three.
    assert api_as(personas.agent).get().json()["count"] == 3


def test_requester_gets_404_for_another_requesters_ticket(personas, api_as, make_ticket):
    other = make_ticket(personas.tenant, personas.requester2, title="Rosa's phone")
    api = api_as(personas.requester)

    response = api.get(f"/{other.number}")

    assert response.status_code == 404
    assert response.json() == api.get("/REQ9999999").json()
    assert api.get(q=other.number).json()["count"] == 0


def test_requester_sees_a_ticket_shared_with_them(personas, api_as, make_ticket):
    other = make_ticket(personas.tenant, personas.requester2, title="Rosa's phone")
    assign_perm("incidents.view_ticket", personas.requester, other)
    api = api_as(personas.requester)

    assert api.get(f"/{other.number}").status_code == 200
    assert numbers(api.get()) == [other.number]


@pytest.mark.parametrize("role", ["reviewer", "auditor", "admin"])
def test_staff_roles_see_every_ticket_of_their_tenant(personas, api_as, make_ticket, role):
    ticket = make_ticket(personas.tenant, personas.requester2)

    api = api_as(getattr(personas, role))

    assert api.get(f"/{ticket.number}").status_code == 200
    assert numbers(api.get()) == [ticket.number]


# ---------------------------------------------------------------- GET /tickets: filters


@pytest.fixture
def queue(personas, make_ticket):
    """A small, varied acme queue (a globex ticket too, which must never show)."""
    t = personas.tenant
    vpn = make_ticket(t, personas.requester, title="Cannot connect to VPN", category="network")
    printer = make_ticket(
        t,
        personas.requester,
        title="Printer on floor 3 is jammed",
        description="Paper jam in tray 2.",
        category="hardware",
        priority="low",
    )
    outage = make_ticket(
        t,
        personas.agent,
        title="Database cluster down",
        description="Primary lost quorum.",
        kind="incident",
        severity="sev1",
        priority="critical",
        category="infrastructure",
    )
    mail = make_ticket(
        t, personas.requester2, title="Mailbox quota exceeded", category="email", priority="high"
    )
    services.ticket_transition(ticket=printer, actor=personas.agent, status=Status.IN_PROGRESS)
    services.ticket_transition(
        ticket=mail, actor=personas.agent, status=Status.RESOLVED, note="Quota raised."
    )
    make_ticket(personas.other_tenant, personas.outsider, title="Globex VPN down")
    return {"vpn": vpn, "printer": printer, "outage": outage, "mail": mail}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "in_progress"}, {"printer"}),
        ({"status": "resolved"}, {"mail"}),
        ({"status": "new"}, {"vpn", "outage"}),
        ({"status": "open"}, {"vpn", "printer", "outage"}),
        ({"priority": "critical"}, {"outage"}),
        ({"priority": "low"}, {"printer"}),
        ({"kind": "incident"}, {"outage"}),
        ({"kind": "request"}, {"vpn", "printer", "mail"}),
        ({"category": "network"}, {"vpn"}),
        ({"category": "hardware", "status": "open"}, {"printer"}),
        ({"category": "hardware", "status": "new"}, set()),
        ({"q": "VPN"}, {"vpn"}),
        ({"q": "jammed printer"}, {"printer"}),
        ({"q": "quorum"}, {"outage"}),  # in the description only
        ({"q": "nothing matches this"}, set()),
        ({}, {"vpn", "printer", "outage", "mail"}),
    ],
)
def test_list_filters(personas, api_as, queue, params, expected):
    response = api_as(personas.agent).get(**params)

    assert response.status_code == 200, response.content
    want = {queue[name].number for name in expected}
    assert set(numbers(response)) == want
    assert response.json()["count"] == len(want)


def test_q_as_a_ticket_number(personas, api_as, queue):
    api = api_as(personas.agent)
    outage = queue["outage"].number

    for q in (outage, outage.lower(), f"  {outage}  "):
        response = api.get(q=q)
        assert numbers(response) == [outage], q


def test_list_items_carry_the_ticket_fields(personas, api_as, queue):
    services.ticket_assign(ticket=queue["outage"], actor=personas.agent, assignee=personas.agent2)

    item = api_as(personas.agent).get(kind="incident").json()["items"][0]

    assert item["number"] == queue["outage"].number
    assert item["assignee"] == personas.agent2.username
    assert item["severity"] == "sev1"
    assert item["status"] == "new"
    assert item["url"] == f"/tickets/{queue['outage'].number}/"


def test_sort(personas, api_as, queue):
    api = api_as(personas.agent)
    created = [queue[n].number for n in ("vpn", "printer", "outage", "mail")]

    assert numbers(api.get(sort="oldest")) == created
    assert numbers(api.get(sort="newest")) == created[::-1]
    assert numbers(api.get()) == created[::-1]  # newest is the default
    by_priority = numbers(api.get(sort="priority"))
    assert by_priority[0] == queue["outage"].number  # critical
    assert by_priority[1] == queue["mail"].number  # high
    assert by_priority[-1] == queue["printer"].number  # low
    assert numbers(api.get(sort="number")) == sorted(created)
    # SLA due soonest first: critical 4 h, high 8 h, medium 24 h, low 72 h.
    assert numbers(api.get(sort="sla")) == [
        queue[n].number for n in ("outage", "mail", "vpn", "printer")
    ]
    # Relevance needs a search; without one it falls back to newest.
    assert numbers(api.get(sort="relevance")) == created[::-1]
    assert numbers(api.get(q="VPN", sort="relevance")) == [queue["vpn"].number]


def test_pagination(personas, api_as, make_ticket):
    made = [make_ticket(personas.tenant, personas.requester, title=f"T{i}") for i in range(5)]
    api = api_as(personas.agent)

    pages = [api.get(sort="oldest", limit=2, offset=offset).json() for offset in (0, 2, 4, 6)]

    assert [p["count"] for p in pages] == [5, 5, 5, 5]
    assert [p["limit"] for p in pages] == [2, 2, 2, 2]
    assert [p["offset"] for p in pages] == [0, 2, 4, 6]
    assert [len(p["items"]) for p in pages] == [2, 2, 1, 0]
    seen = [item["number"] for p in pages for item in p["items"]]
    assert seen == [t.number for t in made]


def test_default_page_size_is_25(personas, api_as, make_ticket):
    for i in range(26):
        make_ticket(personas.tenant, personas.requester, title=f"T{i}")

    body = api_as(personas.agent).get().json()

    assert body["limit"] == 25
    assert body["count"] == 26
    assert len(body["items"]) == 25


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1000}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sort": "random"}, "sort"),
        ({"priority": "urgent"}, "priority"),
        ({"kind": "problem"}, "kind"),
        ({"category": "coffee"}, "category"),
        ({"status": "bogus"}, "status"),
        ({"status": "OPEN"}, "status"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_invalid_list_params_are_400_naming_the_field(personas, api_as, params, field):
    response = api_as(personas.agent).get(**params)

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "validation_error"
    assert field in body["fields"], body


@pytest.mark.parametrize("status", [*Status.values, "open"])
def test_every_known_status_is_accepted(personas, api_as, status):
    response = api_as(personas.agent).get(status=status)

    assert response.status_code == 200, response.content


@pytest.mark.parametrize("limit", [5, 200])
@pytest.mark.parametrize("persona", ["agent", "requester"])
def test_list_query_count_does_not_grow_with_page_size(
    personas, api_as, make_ticket, django_assert_max_num_queries, limit, persona
):
    staff = [personas.agent, personas.agent2, personas.admin]
    for i in range(30):
        ticket = make_ticket(personas.tenant, personas.requester, title=f"Ticket {i}")
        services.ticket_assign(ticket=ticket, actor=personas.admin, assignee=staff[i % 3])
    api = api_as(getattr(personas, persona))

    with django_assert_max_num_queries(10):
        response = api.get(limit=limit)

    body = response.json()
    assert body["count"] == 30
    assert len(body["items"]) == min(limit, 30)
    assert {item["assignee"] for item in body["items"]} == {"alex", "andy", "ada"}


def test_detail_query_count(personas, api_as, make_ticket, django_assert_max_num_queries):
    ticket = make_ticket(personas.tenant, personas.requester)
    services.ticket_assign(ticket=ticket, actor=personas.admin, assignee=personas.agent2)
    api = api_as(personas.agent)

    with django_assert_max_num_queries(5):
        response = api.get(f"/{ticket.number}")

    assert response.json()["assignee"] == personas.agent2.username


# ---------------------------------------------------------------- OpenAPI


def test_openapi_schema_is_public_and_describes_the_ticket_api(client):
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    assert set(paths["/api/v1/tickets"]) >= {"get", "post"}
    assert "get" in paths["/api/v1/tickets/{number}"]
    status = next(p for p in paths["/api/v1/tickets"]["get"]["parameters"] if p["name"] == "status")
    assert {"open", *Status.values} <= set(status["schema"]["enum"])
    schemes = schema["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items() if s == {"type": "http", "scheme": "bearer"}]
    assert len(bearer) == 1
    for operation in (
        paths["/api/v1/tickets"]["get"],
        paths["/api/v1/tickets"]["post"],
        paths["/api/v1/tickets/{number}"]["get"],
    ):
        assert operation["security"] == [{bearer[0]: []}]


# --------------------------------------------------------------------------- queues


@pytest.fixture
def routed(personas, make_ticket):
    """Network (2 tickets) and Identity (1) in acme, one ticket in no queue, and a Globex queue."""
    network = services.queue_create(tenant=personas.tenant, actor=personas.admin, name="Network")
    identity = services.queue_create(
        tenant=personas.tenant, actor=personas.admin, name="Identity", slug="identity"
    )
    Queue.objects.create(tenant=personas.other_tenant, name="Globex ops", slug="gops")
    made = {}
    for key, queue in (("n1", network), ("n2", network), ("i1", identity), ("none", None)):
        ticket = make_ticket(personas.tenant, personas.requester, title=f"ticket {key}")
        if queue is not None:
            ticket = services.ticket_set_queue(ticket=ticket, actor=personas.admin, queue=queue)
        made[key] = ticket
    return made


def test_api_lists_queues_and_filters_tickets_by_queue(
    personas, api_as, routed, django_assert_max_num_queries
):
    api = api_as(personas.agent)
    queues = api.client.get(API.replace("/tickets", "/queues"), **api.headers)
    assert queues.status_code == 200
    assert [q["slug"] for q in queues.json()] == ["identity", "network"]  # not Globex's
    assert queues.json()[1]["url"] == "/queues/network/"

    with django_assert_max_num_queries(11):  # + the queue check and the page's queue slugs
        body = api.get(queue="network").json()
    assert body["count"] == 2
    assert {item["number"] for item in body["items"]} == {
        routed["n1"].number,
        routed["n2"].number,
    }
    assert {item["queue"] for item in body["items"]} == {"network"}
    unrouted = api.get(queue="none").json()["items"]
    assert [item["number"] for item in unrouted] == [routed["none"].number]
    assert unrouted[0]["queue"] is None
    assert api.get(f"/{routed['i1'].number}").json()["queue"] == "identity"


def test_api_queue_filter_refuses_unknown_and_foreign_queues(personas, api_as, routed):
    api = api_as(personas.agent)
    for slug in ("gops", "nope"):  # another tenant's queue reads like one that does not exist
        response = api.get(queue=slug)
        assert response.status_code == 400
        assert "Unknown queue" in response.json()["fields"]["queue"]
    assert api.get(queue="Bad Slug!").status_code == 400


def test_api_queues_are_for_roles_that_work_them(personas, api_as, routed):
    requester = api_as(personas.requester)
    response = requester.client.get(API.replace("/tickets", "/queues"), **requester.headers)
    assert response.status_code == 403
