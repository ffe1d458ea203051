"""Console views: every view with two tenants (foreign → 404) and each role (forbidden → 403)."""

import pytest
from django.test import Client
from django.urls import reverse
from guardian.shortcuts import assign_perm

from agentops.models import Role
from incidents.models import Ticket
from tests.conftest import make_user


def url(name, *args):
    return reverse(f"incidents:{name}", args=args)


@pytest.fixture
def ticket(personas, make_ticket):
    """A ticket of personas.requester in personas.tenant."""
    return make_ticket(personas.tenant, personas.requester, title="Cannot connect to VPN")


@pytest.fixture
def foreign(personas, make_ticket):
    """A ticket in the other tenant with the SAME number as `ticket` would get first."""
    return make_ticket(personas.other_tenant, personas.outsider, title="Globex secret outage")


# ---------------------------------------------------------------- authentication / membership


def test_anonymous_is_sent_to_login(client, ticket):
    for target in (url("queue"), url("ticket-detail", ticket.number), url("ticket-create")):
        response = client.get(target)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_user_without_membership_gets_403(db, client):
    from django.contrib.auth import get_user_model

    loner = get_user_model().objects.create_user("loner", password="x")
    client.force_login(loner)
    assert client.get(url("queue")).status_code == 403


def test_login_page_and_login_flow(personas, client):
    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": "alex", "password": "pw-alex"})
    assert response.status_code == 302
    assert client.get(url("queue")).status_code == 200
    bad = Client().post("/login/", {"username": "alex", "password": "wrong"})
    assert bad.status_code == 200 and b"correct username and password" in bad.content


# ---------------------------------------------------------------- queue


def test_queue_shows_only_own_tenant(personas, client_for, ticket, foreign):
    body = client_for(personas.agent).get(url("queue")).content.decode()
    assert ticket.title in body and foreign.title not in body


def test_requester_sees_only_own_tickets(personas, client_for, make_ticket, ticket):
    other = make_ticket(personas.tenant, personas.requester2, title="Rosa's printer")
    by_email = make_ticket(
        personas.tenant, None, title="Mailed in", requester_email="ROBIN@acme.example"
    )
    body = client_for(personas.requester).get(url("queue")).content.decode()
    assert ticket.title in body and by_email.title in body
    assert other.title not in body


@pytest.mark.parametrize("role_user", ["agent", "reviewer", "admin", "auditor"])
def test_staff_roles_see_every_ticket_of_the_tenant(personas, client_for, make_ticket, role_user):
    make_ticket(personas.tenant, personas.requester, title="First one")
    make_ticket(personas.tenant, personas.requester2, title="Second one")
    body = client_for(getattr(personas, role_user)).get(url("queue")).content.decode()
    assert "First one" in body and "Second one" in body


def test_queue_filters_search_and_sort(personas, client_for, make_ticket):
    make_ticket(personas.tenant, personas.requester, title="VPN drops hourly", priority="low")
    make_ticket(personas.tenant, personas.requester, title="Printer jam", priority="critical")
    make_ticket(
        personas.tenant, personas.agent, title="Disk full", kind="incident", severity="sev2"
    )
    client = client_for(personas.agent)

    def titles(**params):
        html = client.get(url("queue"), params).content.decode()
        return [t for t in ("VPN drops hourly", "Printer jam", "Disk full") if t in html]

    assert titles(q="vpn") == ["VPN drops hourly"]
    assert titles(q="printer -vpn") == ["Printer jam"]
    assert titles(priority="critical") == ["Printer jam"]
    assert titles(kind="incident") == ["Disk full"]
    assert titles(q="INC0000001") == ["Disk full"]
    html = client.get(url("queue"), {"sort": "priority"}).content.decode()
    assert html.index("Printer jam") < html.index("VPN drops hourly")
    # Nonsense filters are reported, not a crash.
    response = client.get(url("queue"), {"status": "bogus", "assignee": "99999"})
    assert response.status_code == 200 and b"were not understood" in response.content


def test_queue_assignee_filter(personas, client_for, make_ticket):
    from incidents.services import ticket_assign

    mine = make_ticket(personas.tenant, personas.requester, title="Mine to fix")
    make_ticket(personas.tenant, personas.requester, title="Nobody's yet")
    ticket_assign(ticket=mine, actor=personas.agent, assignee=personas.agent)
    client = client_for(personas.agent)
    assert "Nobody's yet" not in client.get(url("queue"), {"assignee": "me"}).content.decode()
    html = client.get(url("queue"), {"assignee": "none"}).content.decode()
    assert "Mine to fix" not in html and "Nobody&#x27;s yet" in html


def test_queue_htmx_partial_and_pagination(personas, client_for):
    from incidents.testdata import bulk_generate

    bulk_generate(tenant=personas.tenant, count=60, comments_per_ticket=0)
    client = client_for(personas.agent)
    partial = client.get(url("queue"), {"page": 2}, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    html = partial.content.decode()
    assert "<html" not in html and 'id="results"' in html and "Page 2 of 3" in html
    full = client.get(url("queue"))
    assert b"<html" in full.content and b"Page 1 of 3" in full.content


def test_queue_query_count_is_constant(personas, client_for, django_assert_max_num_queries):
    from incidents.testdata import bulk_generate

    client = client_for(personas.agent)
    client.get(url("queue"))  # warm the session
    bulk_generate(tenant=personas.tenant, count=5, comments_per_ticket=0)
    # 8: one of them reads the tenant's categories, once, for the filter's select and the
    # rows' category names (the results partial draws no select but names the rows' too).
    with django_assert_max_num_queries(8) as small:
        client.get(url("queue"))
    bulk_generate(tenant=personas.tenant, count=40, comments_per_ticket=0, seed=2)
    with django_assert_max_num_queries(8) as large:
        client.get(url("queue"), {"q": "vpn", "status": "open"})
    with django_assert_max_num_queries(8) as partial:
        client.get(url("queue"), HTTP_HX_REQUEST="true")
    assert len(small.captured_queries) == len(partial.captured_queries)
    assert len(large.captured_queries) <= len(small.captured_queries)


def test_untrusted_text_is_escaped(personas, client_for, make_ticket):
    evil = make_ticket(
        personas.tenant,
        personas.requester,
        title="<script>alert(1)</script>",
        description="<img src=x onerror=alert(2)>",
    )
    client = client_for(personas.agent)
    for target in (url("queue"), url("ticket-detail", evil.number)):
        html = client.get(target).content.decode()
        assert (
            "<script>alert(1)</script>" not in html
            and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        )
        assert "<img src=x" not in html


# ---------------------------------------------------------------- detail


def test_detail_visible_to_owner_and_staff(personas, client_for, ticket):
    for user in (
        personas.requester,
        personas.agent,
        personas.reviewer,
        personas.auditor,
        personas.admin,
    ):
        response = client_for(user).get(url("ticket-detail", ticket.number))
        assert response.status_code == 200, user
        assert ticket.title in response.content.decode()


def test_detail_is_404_for_foreign_other_requester_and_unknown(
    personas, client_for, make_ticket, ticket, foreign
):
    only_acme = make_ticket(personas.tenant, personas.requester, title="Only in acme")  # REQ0000002
    assert (
        client_for(personas.outsider).get(url("ticket-detail", only_acme.number)).status_code == 404
    )
    assert (
        client_for(personas.requester2).get(url("ticket-detail", ticket.number)).status_code == 404
    )
    assert client_for(personas.agent).get(url("ticket-detail", "REQ9999999")).status_code == 404
    # Same number exists in both tenants: each side sees its own, never the other.
    assert ticket.number == foreign.number
    html = client_for(personas.agent).get(url("ticket-detail", ticket.number)).content.decode()
    assert foreign.title not in html


def test_detail_query_count(personas, client_for, ticket, django_assert_max_num_queries):
    from incidents.services import ticket_comment

    for i in range(5):
        ticket_comment(ticket=ticket, actor=personas.agent, body=f"reply {i}")
    client = client_for(personas.agent)
    client.get(url("ticket-detail", ticket.number))
    with django_assert_max_num_queries(9):
        response = client.get(url("ticket-detail", ticket.number))
    assert response.status_code == 200


def test_internal_notes_hidden_from_requester(personas, client_for, ticket):
    from incidents.services import ticket_comment

    ticket_comment(ticket=ticket, actor=personas.agent, body="Public reply here")
    ticket_comment(
        ticket=ticket, actor=personas.agent, body="Internal: user is VIP", is_internal=True
    )
    requester_html = (
        client_for(personas.requester).get(url("ticket-detail", ticket.number)).content.decode()
    )
    assert "Public reply here" in requester_html and "user is VIP" not in requester_html
    assert "ticket.internal_note" not in requester_html
    staff_html = (
        client_for(personas.agent).get(url("ticket-detail", ticket.number)).content.decode()
    )
    assert "user is VIP" in staff_html


# ---------------------------------------------------------------- create


def test_create_form_renders_per_role(personas, client_for):
    staff_html = client_for(personas.agent).get(url("ticket-create")).content.decode()
    assert 'name="severity"' in staff_html and 'name="assignee"' in staff_html
    requester_html = client_for(personas.requester).get(url("ticket-create")).content.decode()
    assert 'name="severity"' not in requester_html and 'name="assignee"' not in requester_html
    assert client_for(personas.auditor).get(url("ticket-create")).status_code == 403


def test_create_with_errors_shows_them_inline_and_writes_nothing(personas, client_for):
    client = client_for(personas.agent)
    response = client.post(
        url("ticket-create"),
        {"kind": "incident", "title": "", "priority": "medium", "requester_email": "nope"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "<html" not in html and 'id="ticket-form"' in html
    assert "id_title_error" in html and "This field is required" in html
    assert "Enter a valid email address" in html and "An incident needs a severity" in html
    assert Ticket.objects.for_tenant(personas.tenant).count() == 0
    too_long = client.post(
        url("ticket-create"), {"kind": "request", "title": "x" * 201, "priority": "low"}
    )
    assert too_long.status_code == 400 and b"at most 200 characters" in too_long.content


def test_create_by_staff_and_by_requester(personas, client_for):
    response = client_for(personas.agent).post(
        url("ticket-create"),
        {
            "kind": "incident",
            "title": "Checkout API 5xx",
            "description": "Error rate 18%",
            "priority": "critical",
            "severity": "sev1",
            "affected_services": "checkout, API-Gateway",
            "detected_by": "monitoring",
            "requester_email": "robin@acme.example",
            "assignee": str(personas.agent2.pk),
            "category": "infrastructure",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and response["HX-Redirect"] == url(
        "ticket-detail", "INC0000001"
    )
    incident = Ticket.objects.for_tenant(personas.tenant).get(number="INC0000001")
    assert incident.assignee == personas.agent2 and incident.requester == personas.requester
    assert (
        incident.affected_services == ["checkout", "API-Gateway"] and incident.source == "console"
    )

    response = client_for(personas.requester2).post(
        url("ticket-create"),
        {"title": "Need a monitor", "priority": "low", "assignee": str(personas.agent.pk)},
    )
    assert response.status_code == 302
    own = Ticket.objects.for_tenant(personas.tenant).get(number="REQ0000001")
    assert own.requester == personas.requester2 and own.assignee is None  # requesters cannot assign


def test_assignee_of_other_tenant_is_rejected(personas, client_for):
    response = client_for(personas.agent).post(
        url("ticket-create"),
        {"kind": "request", "title": "x", "priority": "low", "assignee": str(personas.outsider.pk)},
    )
    assert response.status_code == 400
    assert Ticket.objects.for_tenant(personas.tenant).count() == 0


# ---------------------------------------------------------------- writes: comment, transition, assign


def test_comment_rules(personas, client_for, ticket):
    target = url("ticket-comment", ticket.number)
    response = client_for(personas.requester).post(
        target, {"body": "Still broken"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "Still broken" in response.content.decode()
    assert response["HX-Trigger"] == "ticketChanged"
    assert (
        client_for(personas.requester).post(target, {"body": "x", "is_internal": "on"}).status_code
        == 403
    )
    assert client_for(personas.auditor).post(target, {"body": "x"}).status_code == 403
    assert client_for(personas.requester2).post(target, {"body": "x"}).status_code == 404
    assert client_for(personas.outsider).post(target, {"body": "x"}).status_code == 404
    empty = client_for(personas.agent).post(target, {"body": ""}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 400 and b"This field is required" in empty.content
    assert client_for(personas.agent).get(target).status_code == 405
    assert ticket.comments.count() == 1


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("agent", 302),
        ("admin", 302),
        ("reviewer", 403),
        ("auditor", 403),
        ("requester", 403),
        ("requester2", 404),
        ("outsider", 404),
    ],
)
def test_transition_and_assign_permissions(personas, client_for, ticket, who, expected):
    client = client_for(getattr(personas, who))
    response = client.post(url("ticket-transition", ticket.number), {"status": "in_progress"})
    assert response.status_code == expected
    response = client.post(
        url("ticket-assign", ticket.number), {"assignee": str(personas.agent.pk)}
    )
    assert response.status_code == expected
    ticket.refresh_from_db()
    changed = expected == 302
    assert (ticket.status == "in_progress") is changed
    assert (ticket.assignee_id == personas.agent.pk) is changed


def test_invalid_transition_is_explained(personas, client_for, ticket):
    client = client_for(personas.agent)
    response = client.post(
        url("ticket-transition", ticket.number), {"status": "closed"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400 and b"cannot become closed" in response.content
    response = client.post(
        url("ticket-transition", ticket.number), {"status": "resolved"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400 and b"resolution notes" in response.content
    ticket.refresh_from_db()
    assert ticket.status == "new"


def test_guardian_object_permission_shares_one_ticket(personas, client_for, ticket):
    """A requester granted view (and change) on one ticket by guardian can see (and change) it."""
    colleague = personas.requester2
    target = url("ticket-detail", ticket.number)
    assert client_for(colleague).get(target).status_code == 404
    assign_perm("incidents.view_ticket", colleague, ticket)
    assert client_for(colleague).get(target).status_code == 200
    assert ticket.title in client_for(colleague).get(url("queue")).content.decode()
    assert (
        client_for(colleague)
        .post(url("ticket-transition", ticket.number), {"status": "on_hold"})
        .status_code
        == 403
    )
    assign_perm("incidents.change_ticket", colleague, ticket)
    assert (
        client_for(colleague)
        .post(url("ticket-transition", ticket.number), {"status": "on_hold"})
        .status_code
        == 302
    )


# ---------------------------------------------------------------- bulk


def test_bulk_assign_and_transition(personas, client_for, make_ticket, foreign):
    a = make_ticket(personas.tenant, personas.requester, title="a")
    b = make_ticket(personas.tenant, personas.requester, title="b")
    client = client_for(personas.agent)
    response = client.post(
        url("bulk"), {"action": "assign_me", "numbers": [a.number, b.number, foreign.number]}
    )
    assert response.status_code == 302
    assert {t.assignee_id for t in Ticket.objects.for_tenant(personas.tenant)} == {
        personas.agent.pk
    }
    foreign.refresh_from_db()
    assert foreign.assignee_id is None  # the other tenant's REQ0000001 is untouched
    client.post(url("bulk"), {"action": "on_hold", "numbers": [a.number, b.number]})
    assert set(Ticket.objects.for_tenant(personas.tenant).values_list("status", flat=True)) == {
        "on_hold"
    }
    assert (
        client_for(personas.reviewer)
        .post(url("bulk"), {"action": "unassign", "numbers": [a.number]})
        .status_code
        == 403
    )


def test_bulk_is_all_or_nothing(personas, client_for, make_ticket):
    from incidents.services import ticket_transition

    ok = make_ticket(personas.tenant, personas.requester, title="ok")
    done = make_ticket(personas.tenant, personas.requester, title="done")
    ticket_transition(ticket=done, actor=personas.agent, status="cancelled")
    response = client_for(personas.agent).post(
        url("bulk"), {"action": "on_hold", "numbers": [ok.number, done.number]}
    )
    assert response.status_code == 302
    ok.refresh_from_db()
    assert ok.status == "new"


# ---------------------------------------------------------------- CSRF, tenant switch


def test_post_without_csrf_token_is_refused(personas, ticket):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.agent)
    response = client.post(url("ticket-comment", ticket.number), {"body": "sneaky"})
    assert response.status_code == 403 and b"CSRF" in response.content
    assert ticket.comments.count() == 0


def test_htmx_posts_carry_the_csrf_header(personas, ticket):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.agent)
    html = client.get(url("ticket-detail", ticket.number)).content.decode()
    assert 'hx-headers=\'{"x-csrftoken": "' in html
    token = client.cookies["csrftoken"].value
    response = client.post(
        url("ticket-comment", ticket.number),
        {"body": "ok"},
        HTTP_X_CSRFTOKEN=token,
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200


def test_tenant_switcher(personas, client_for, ticket, foreign):
    from agentops.services import membership_set

    membership_set(tenant=personas.other_tenant, user=personas.admin, role=Role.ADMIN)
    client = client_for(personas.admin)
    html = client.get(url("queue")).content.decode()
    assert 'id="tenant-select"' in html and ticket.title in html
    response = client.post(
        "/workspace/switch", {"tenant": "globex", "next": url("ticket-detail", ticket.number)}
    )
    assert response.status_code == 302 and response["Location"] == url("queue")
    html = client.get(url("queue")).content.decode()
    assert foreign.title in html and ticket.title not in html
    # Not a member of a tenant: indistinguishable from a tenant that does not exist.
    outsider_client = Client()
    outsider_client.force_login(personas.agent)
    assert outsider_client.post("/workspace/switch", {"tenant": "globex"}).status_code == 404
    assert outsider_client.post("/workspace/switch", {"tenant": "nope"}).status_code == 404


def test_csp_header_forbids_inline_script(personas, client_for):
    response = client_for(personas.agent).get(url("queue"))
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in response.content.decode()  # only <script src=...> tags


def test_new_member_of_one_tenant_only(personas, client_for):
    newbie = make_user("newbie", personas.other_tenant, Role.REQUESTER)
    html = client_for(newbie).get(url("queue")).content.decode()
    assert "Globex" in html and 'id="tenant-select"' not in html
