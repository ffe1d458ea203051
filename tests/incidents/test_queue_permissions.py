"""Object permissions that inherit tenant -> queue -> ticket, the queue pages, and the audit of
every permission change (services, guardian's shortcuts, the Django admin, memberships)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.urls import reverse
from guardian.shortcuts import assign_perm, remove_perm

from agentops.models import AuditEvent, Membership, Role
from incidents import services
from incidents.models import Ticket
from incidents.selectors import (
    QueueFilters,
    access_ticket,
    queues_visible_to,
    ticket_queue,
    tickets_visible_to,
)


def member(user, tenant) -> Membership:
    """A fresh membership (grants are memoised per membership, as per request)."""
    return Membership.objects.select_related("tenant", "user").get(user=user, tenant=tenant)


def events(tenant, action: str):
    return list(AuditEvent.objects.for_tenant(tenant).filter(action=action).order_by("seq"))


@pytest.fixture
def queues(personas):
    acme = personas.tenant
    network = services.queue_create(
        tenant=acme, actor=personas.admin, name="Network", categories=["network"]
    )
    identity = services.queue_create(
        tenant=acme,
        actor=personas.admin,
        name="Identity & Access",
        slug="identity",
        categories=["access", "security"],
    )
    return network, identity


@pytest.fixture
def tickets(personas, make_ticket, queues):
    """Two tickets in Network, one in Identity, one in no queue (all opened by rosa)."""
    network, identity = queues
    made = {}
    for key, queue in (("n1", network), ("n2", network), ("i1", identity), ("none", None)):
        ticket = make_ticket(personas.tenant, personas.requester2, title=f"ticket {key}")
        if queue is not None:
            ticket = services.ticket_set_queue(ticket=ticket, actor=personas.admin, queue=queue)
        made[key] = ticket
    return made


def visible_numbers(user, tenant) -> set[str]:
    return set(tickets_visible_to(member(user, tenant)).values_list("number", flat=True))


def url(name, *args):
    return reverse(name, args=args)


# ------------------------------------------------------------ inheritance in the gate


def test_level_one_tenant_role_sees_and_works_everything(personas, tickets):
    all_numbers = {t.number for t in tickets.values()}
    assert visible_numbers(personas.agent, personas.tenant) == all_numbers
    assert visible_numbers(personas.reviewer, personas.tenant) == all_numbers
    access_ticket(member(personas.agent, personas.tenant), tickets["i1"].number, write=True)
    with pytest.raises(PermissionDenied):  # a reviewer sees but does not work tickets
        access_ticket(member(personas.reviewer, personas.tenant), tickets["i1"].number, write=True)


def test_level_two_queue_grant_sees_exactly_that_queue(personas, client_for, tickets, queues):
    network, _ = queues
    robin = personas.requester
    assert visible_numbers(robin, personas.tenant) == set()
    services.grant_queue_access(queue=network, actor=personas.admin, user=robin, level="view")
    assert visible_numbers(robin, personas.tenant) == {tickets["n1"].number, tickets["n2"].number}
    client = client_for(robin)
    html = client.get(url("incidents:queue")).content.decode()
    assert "ticket n1" in html and "ticket n2" in html
    assert "ticket i1" not in html and "ticket none" not in html
    assert client.get(url("incidents:ticket-detail", tickets["n1"].number)).status_code == 200
    for other in ("i1", "none"):
        assert client.get(url("incidents:ticket-detail", tickets[other].number)).status_code == 404
    # View, not work: 403 on a write to a ticket it sees, 404 on one it does not.
    move = {"status": "on_hold"}
    assert (
        client.post(url("incidents:ticket-transition", tickets["n1"].number), move).status_code
        == 403
    )
    assert (
        client.post(url("incidents:ticket-transition", tickets["i1"].number), move).status_code
        == 404
    )


def test_queue_work_grant_works_only_that_queue(personas, client_for, tickets, queues):
    network, _ = queues
    riley = personas.reviewer  # sees everything by role, works nothing
    client = client_for(riley)
    target = url("incidents:ticket-transition", tickets["n1"].number)
    assert client.post(target, {"status": "on_hold"}).status_code == 403
    services.grant_queue_access(queue=network, actor=personas.admin, user=riley, level="work")
    assert client.post(target, {"status": "on_hold"}).status_code == 302
    other = url("incidents:ticket-transition", tickets["i1"].number)
    assert client.post(other, {"status": "on_hold"}).status_code == 403
    assert Ticket.objects.for_tenant(personas.tenant).get(pk=tickets["n1"].pk).status == "on_hold"
    assert Ticket.objects.for_tenant(personas.tenant).get(pk=tickets["i1"].pk).status == "new"


def test_level_three_ticket_grant_sees_and_works_only_that_ticket(personas, client_for, tickets):
    robin = personas.requester
    services.grant_ticket_access(
        ticket=tickets["i1"], actor=personas.admin, user=robin, level="view"
    )
    assert visible_numbers(robin, personas.tenant) == {tickets["i1"].number}
    client = client_for(robin)
    transition = url("incidents:ticket-transition", tickets["i1"].number)
    assert client.post(transition, {"status": "on_hold"}).status_code == 403
    services.grant_ticket_access(
        ticket=tickets["i1"], actor=personas.admin, user=robin, level="work"
    )
    assert client.post(transition, {"status": "on_hold"}).status_code == 302
    assert client.get(url("incidents:ticket-detail", tickets["n1"].number)).status_code == 404


def test_revoke_removes_access(personas, client_for, tickets, queues):
    network, _ = queues
    robin = personas.requester
    services.grant_queue_access(queue=network, actor=personas.admin, user=robin, level="work")
    services.grant_ticket_access(ticket=tickets["i1"], actor=personas.admin, user=robin)
    client = client_for(robin)
    detail = url("incidents:ticket-detail", tickets["n1"].number)
    assert client.get(detail).status_code == 200
    # Revoking "work" leaves seeing; revoking "view" takes all.
    services.revoke_queue_access(queue=network, actor=personas.admin, user=robin, level="work")
    assert client.get(detail).status_code == 200
    transition = url("incidents:ticket-transition", tickets["n1"].number)
    assert client.post(transition, {"status": "on_hold"}).status_code == 403
    services.revoke_queue_access(queue=network, actor=personas.admin, user=robin, level="view")
    assert client.get(detail).status_code == 404
    services.revoke_ticket_access(ticket=tickets["i1"], actor=personas.admin, user=robin)
    assert visible_numbers(robin, personas.tenant) == set()


def test_requesters_still_see_their_own_tickets(personas, tickets, make_ticket):
    own = make_ticket(personas.tenant, personas.requester, title="mine")
    assert visible_numbers(personas.requester, personas.tenant) == {own.number}
    assert visible_numbers(personas.requester2, personas.tenant) >= {tickets["n1"].number}


def test_guardian_grants_directly_and_to_groups_count(personas, tickets, queues):
    from django.contrib.auth.models import Group

    network, identity = queues
    robin = personas.requester
    assign_perm("incidents.view_queue", robin, identity)
    assert visible_numbers(robin, personas.tenant) == {tickets["i1"].number}
    team = Group.objects.create(name="network-team")
    robin.groups.add(team)
    assign_perm("incidents.work_queue", team, network)
    m = member(robin, personas.tenant)
    access_ticket(m, tickets["n1"].number, write=True)  # group work grant: sees and works
    # Role groups span tenants: a grant to one is not a queue grant (the role decides).
    assign_perm("incidents.view_ticket", Group.objects.get(name=Role.REQUESTER), tickets["none"])
    assert tickets["none"].number not in visible_numbers(robin, personas.tenant)


def test_queue_filter_and_list_query(personas, tickets, queues):
    m = member(personas.agent, personas.tenant)
    in_network = ticket_queue(m, QueueFilters(queue="network"))
    assert {t.number for t in in_network} == {tickets["n1"].number, tickets["n2"].number}
    unrouted = ticket_queue(m, QueueFilters(queue="none"))
    assert {t.number for t in unrouted} == {tickets["none"].number}


def test_list_query_count_does_not_grow_with_grants(
    personas, client_for, tickets, queues, django_assert_max_num_queries
):
    robin = personas.requester
    services.ticket_create(tenant=personas.tenant, actor=robin, title="mine", start_agent=False)
    client = client_for(robin)
    client.get(url("incidents:queue"))
    with django_assert_max_num_queries(10) as before:
        client.get(url("incidents:queue"))
    for queue in queues:
        services.grant_queue_access(queue=queue, actor=personas.admin, user=robin)
    for ticket in tickets.values():
        services.grant_ticket_access(ticket=ticket, actor=personas.admin, user=robin)
    with django_assert_max_num_queries(10) as after:
        response = client.get(url("incidents:queue"))
    assert "ticket none" in response.content.decode()
    # One more: the queue filter's choices, now that robin has queues.
    assert len(after.captured_queries) <= len(before.captured_queries) + 1


# ------------------------------------------------------------ validation


def test_cross_tenant_grant_is_refused(personas, tickets, queues):
    network, _ = queues
    gus = personas.outsider
    with pytest.raises(ValidationError) as exc:
        services.grant_queue_access(queue=network, actor=personas.admin, user=gus, level="view")
    assert "member of this tenant" in str(exc.value)
    with pytest.raises(ValidationError):
        services.grant_ticket_access(ticket=tickets["n1"], actor=personas.admin, user=gus)
    with pytest.raises(ValidationError):
        services.grant_queue_access(
            queue=network, actor=personas.admin, user=personas.requester, level="admin"
        )
    assert not events(personas.tenant, "permission.granted")


def test_cross_tenant_grant_is_refused_in_the_console(personas, client_for, queues):
    network, _ = queues
    response = client_for(personas.admin).post(
        url("queues:access", network.slug),
        {"action": "grant", "user": personas.outsider.pk, "level": "view"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 400
    assert not events(personas.tenant, "permission.granted")


def test_ticket_set_queue_refuses_another_tenants_queue(personas, tickets, make_ticket):
    theirs = services.queue_create(tenant=personas.other_tenant, actor=None, name="Theirs")
    with pytest.raises(ValidationError):
        services.ticket_set_queue(ticket=tickets["n1"], actor=personas.admin, queue=theirs)


def test_queue_create_validates(personas, queues):
    with pytest.raises(ValidationError):
        services.queue_create(tenant=personas.tenant, actor=None, name="Network")  # slug taken
    with pytest.raises(ValidationError):
        services.queue_create(tenant=personas.tenant, actor=None, name="X", categories=["nope"])
    # The same slug in the other tenant is fine.
    services.queue_create(tenant=personas.other_tenant, actor=None, name="Network")


# ------------------------------------------------------------ routing


def test_triage_routes_by_category_when_no_queue(personas, make_ticket, queues):
    network, _ = queues
    ticket = make_ticket(personas.tenant, personas.requester, category="network")
    routed = services.ticket_record_triage(
        ticket=ticket, decision="human", confidence=0.8, suggested_path=""
    )
    assert routed.queue_id == network.pk
    event = events(personas.tenant, "ticket.triaged")[-1]
    assert event.changes["queue"] == {"from": None, "to": "Network"}
    # A ticket already in a queue stays there; a category no queue takes stays unrouted.
    placed = make_ticket(personas.tenant, personas.requester, category="access")
    placed = services.ticket_set_queue(ticket=placed, actor=None, queue=network)
    placed = services.ticket_record_triage(
        ticket=placed, decision="human", confidence=0.8, suggested_path=""
    )
    assert placed.queue_id == network.pk
    lost = make_ticket(personas.tenant, personas.requester, category="hardware")
    lost = services.ticket_record_triage(
        ticket=lost, decision="human", confidence=0.8, suggested_path=""
    )
    assert lost.queue_id is None


# ------------------------------------------------------------ audit of every change


def test_service_grant_and_revoke_write_one_event_each(personas, queues, tickets):
    network, _ = queues
    robin = personas.requester
    services.grant_queue_access(queue=network, actor=personas.admin, user=robin, level="work")
    services.grant_queue_access(queue=network, actor=personas.admin, user=robin, level="work")
    services.grant_ticket_access(ticket=tickets["i1"], actor=personas.admin, user=robin)
    services.revoke_queue_access(queue=network, actor=personas.admin, user=robin, level="view")
    services.revoke_ticket_access(ticket=tickets["i1"], actor=personas.admin, user=robin)
    granted = events(personas.tenant, "permission.granted")
    revoked = events(personas.tenant, "permission.revoked")
    assert [(e.target_type, e.target_id) for e in granted] == [
        ("queue", "network"),
        ("ticket", tickets["i1"].number),
    ]
    assert granted[0].actor_label == "ada" and granted[0].changes["user"] == "robin"
    assert granted[0].changes["level"] == "work"
    assert sorted(granted[0].changes["permissions"]) == ["view_queue", "work_queue"]
    assert [(e.target_type, e.target_id) for e in revoked] == [
        ("queue", "network"),
        ("ticket", tickets["i1"].number),
    ]
    assert all("via" not in e.metadata for e in granted + revoked)  # no second event


def test_guardian_shortcuts_are_audited(personas, queues, tickets):
    network, _ = queues
    robin = personas.requester
    assign_perm("incidents.view_queue", robin, network)
    remove_perm("incidents.view_queue", robin, network)
    # Bulk shortcuts (a queryset of tickets) too: one event per row.
    some = Ticket.objects.for_tenant(personas.tenant).filter(
        pk__in=[tickets["n1"].pk, tickets["n2"].pk]
    )
    assign_perm("incidents.view_ticket", robin, some)
    granted = events(personas.tenant, "permission.granted")
    revoked = events(personas.tenant, "permission.revoked")
    assert [(e.target_id, e.changes["permissions"]) for e in granted] == [
        ("network", ["view_queue"]),
        (tickets["n1"].number, ["view_ticket"]),
        (tickets["n2"].number, ["view_ticket"]),
    ] or sorted(e.target_id for e in granted[1:]) == sorted(
        [tickets["n1"].number, tickets["n2"].number]
    )
    assert len(granted) == 3
    assert [(e.target_id, e.metadata["via"]) for e in revoked] == [("network", "signal")]
    assert granted[0].changes["user"] == "robin" and granted[0].actor_label == "system"


def test_admin_object_permission_pages_are_audited(personas, client, queues, tickets):
    network, _ = queues
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    robin = personas.requester
    target = reverse("admin:incidents_queue_permissions_manage_user", args=[network.pk, robin.pk])
    response = client.post(target, {"permissions": ["view_queue", "work_queue"]})
    assert response.status_code == 302
    granted = events(personas.tenant, "permission.granted")
    assert sorted(e.changes["permissions"][0] for e in granted) == ["view_queue", "work_queue"]
    assert {e.actor_label for e in granted} == {"root"}
    assert visible_numbers(robin, personas.tenant) == {tickets["n1"].number, tickets["n2"].number}
    response = client.post(target, {"permissions": ["view_queue"]})
    revoked = events(personas.tenant, "permission.revoked")
    assert [(e.changes["permissions"], e.actor_label) for e in revoked] == [
        (["work_queue"], "root")
    ]
    # And a ticket's page, the existing "share one ticket".
    ticket_target = reverse(
        "admin:incidents_ticket_permissions_manage_user", args=[tickets["i1"].pk, robin.pk]
    )
    assert client.post(ticket_target, {"permissions": ["view_ticket"]}).status_code == 302
    assert events(personas.tenant, "permission.granted")[-1].target_id == tickets["i1"].number


def test_admin_queue_add_goes_through_the_service(personas, client):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    response = client.post(
        reverse("admin:incidents_queue_add"),
        {
            "tenant": personas.tenant.pk,
            "name": "Workplace",
            "slug": "workplace",
            "description": "",
            "categories": "hardware",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert events(personas.tenant, "queue.created")[-1].target_id == "workplace"


def test_membership_role_changes_are_audited_once(personas):
    from agentops.services import membership_set

    robin = personas.requester
    before = AuditEvent.objects.for_tenant(personas.tenant).count()
    membership_set(tenant=personas.tenant, user=robin, role=Role.AGENT, actor=personas.admin)
    assert AuditEvent.objects.for_tenant(personas.tenant).count() == before + 1  # the service's
    # Outside the service (a shell, a script): the receiver writes it.
    m = Membership.objects.get(user=robin, tenant=personas.tenant)
    m.role = Role.REVIEWER
    m.save()
    changed = events(personas.tenant, "membership.changed")[-1]
    assert changed.changes == {"role": {"from": "agent", "to": "reviewer"}}
    assert changed.metadata == {"via": "signal"}
    m.save()  # no change, no event
    assert events(personas.tenant, "membership.changed")[-1].pk == changed.pk
    m.delete()
    assert events(personas.tenant, "membership.removed")[-1].target_id == str(robin.pk)


def test_group_changes_are_audited(personas):
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="network-team")
    personas.requester.groups.add(team)
    event = events(personas.tenant, "permission.groups_added")[-1]
    assert event.changes == {"groups": ["network-team"]} and event.target_repr == "robin"
    team.user_set.remove(personas.requester)
    assert events(personas.tenant, "permission.groups_removed")[-1].target_repr == "robin"


def test_verify_chain_holds_after_permission_events(personas, queues):
    from agentops.audit import verify_chain

    network, _ = queues
    assign_perm("incidents.view_queue", personas.requester, network)
    services.grant_queue_access(queue=network, actor=personas.admin, user=personas.requester2)
    assert verify_chain(personas.tenant).ok


# ------------------------------------------------------------ the console pages


def test_queues_page_lists_queues_with_open_counts(personas, client_for, tickets, queues):
    html = client_for(personas.agent).get(url("queues:list")).content.decode()
    assert "Network" in html and "Identity &amp; Access" in html
    assert "?queue=network&amp;status=open" in html
    assert "New queue" not in html  # admins only
    assert "New queue" in client_for(personas.admin).get(url("queues:list")).content.decode()


def test_queue_detail_and_access_panel(personas, client_for, tickets, queues):
    admin = client_for(personas.admin)
    html = admin.get(url("queues:detail", "network")).content.decode()
    assert "ticket n1" in html and "ticket i1" not in html and 'id="access-panel"' in html
    response = admin.post(
        url("queues:access", "network"),
        {"action": "grant", "user": personas.requester.pk, "level": "work"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and "robin" in response.content.decode()
    assert "<html" not in response.content.decode()
    assert visible_numbers(personas.requester, personas.tenant) == {
        tickets["n1"].number,
        tickets["n2"].number,
    }
    # The agent sees the queue page but no Access panel.
    agent_html = client_for(personas.agent).get(url("queues:detail", "network")).content.decode()
    assert 'id="access-panel"' not in agent_html
    admin = client_for(personas.admin)
    response = admin.post(
        url("queues:access", "network"),
        {"action": "revoke", "user": personas.requester.pk, "level": "view"},
    )
    assert response.status_code == 302
    assert visible_numbers(personas.requester, personas.tenant) == set()


def test_queue_granted_user_sees_only_their_queue_pages(personas, client_for, queues):
    network, _ = queues
    services.grant_queue_access(queue=network, actor=personas.admin, user=personas.requester)
    client = client_for(personas.requester)
    html = client.get(url("queues:list")).content.decode()
    assert "Network" in html and "Identity" not in html
    assert client.get(url("queues:detail", "network")).status_code == 200
    assert client.get(url("queues:detail", "identity")).status_code == 404
    m = member(personas.requester, personas.tenant)
    assert list(queues_visible_to(m)) == [network]


def test_ticket_page_shows_and_changes_the_queue(personas, client_for, tickets, queues):
    _, identity = queues
    ticket = tickets["n1"]
    agent = client_for(personas.agent)
    html = agent.get(url("incidents:ticket-detail", ticket.number)).content.decode()
    assert "Network" in html and 'name="queue"' in html
    assert 'id="access-panel"' not in html
    response = agent.post(
        url("incidents:ticket-set-queue", ticket.number),
        {"queue": "identity"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "ticketChanged"
    assert Ticket.objects.for_tenant(personas.tenant).get(pk=ticket.pk).queue_id == identity.pk
    assert events(personas.tenant, "ticket.queue_changed")[-1].changes == {
        "queue": {"from": "Network", "to": "Identity & Access"}
    }
    assert (
        agent.post(url("incidents:ticket-set-queue", ticket.number), {"queue": "nope"}).status_code
        == 400
    )


def test_ticket_access_panel_grants_and_revokes(personas, client_for, tickets):
    ticket = tickets["i1"]
    admin = client_for(personas.admin)
    html = admin.get(url("incidents:ticket-detail", ticket.number)).content.decode()
    assert 'id="access-panel"' in html
    response = admin.post(
        url("incidents:ticket-access", ticket.number),
        {"action": "grant", "user": personas.requester.pk, "level": "view"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "ticketChanged"
    assert visible_numbers(personas.requester, personas.tenant) == {ticket.number}
    admin.post(
        url("incidents:ticket-access", ticket.number),
        {"action": "revoke", "user": personas.requester.pk, "level": "view"},
    )
    assert visible_numbers(personas.requester, personas.tenant) == set()


def _new_urls(network_slug: str, number: str) -> list[tuple[str, str, dict]]:
    grant = {"action": "grant", "user": "0", "level": "view"}
    return [
        ("get", url("queues:list"), {}),
        ("post", url("queues:create"), {"name": "Zed"}),
        ("get", url("queues:detail", network_slug), {}),
        ("post", url("queues:access", network_slug), grant),
        ("post", url("incidents:ticket-set-queue", number), {"queue": ""}),
        ("post", url("incidents:ticket-access", number), grant),
    ]


def test_every_new_url_is_403_for_a_requester(personas, client_for, tickets, queues):
    # robin's own ticket, in the Network queue: they see it, may not route or share it.
    own = services.ticket_create(
        tenant=personas.tenant, actor=personas.requester, title="mine", start_agent=False
    )
    services.ticket_set_queue(ticket=own, actor=None, queue=queues[0])
    client = client_for(personas.requester)
    for method, target, data in _new_urls("network", own.number):
        response = getattr(client, method)(target, data)
        assert response.status_code == 403, (method, target, response.status_code)


def test_every_new_url_is_404_for_the_other_tenant(personas, client_for, tickets, queues):
    # gus (globex agent; globex has no "network" queue and no such ticket number... ) and an
    # acme-only ticket number: nothing of acme is found from globex.
    number = tickets["none"].number  # REQ0000004: globex has no ticket with that number
    client = client_for(personas.outsider)
    for method, target, data in _new_urls("network", number):
        if target in (url("queues:list"), url("queues:create")):
            continue  # tenant-wide pages: globex's own (empty) list, and gus is no admin
        response = getattr(client, method)(target, data)
        assert response.status_code == 404, (method, target, response.status_code)
    # globex's admin cannot reach acme's queue or ticket either.
    from tests.conftest import make_user

    gina = make_user("gina", personas.other_tenant, Role.ADMIN)
    client = client_for(gina)
    for method, target, data in _new_urls("network", number):
        if target in (url("queues:list"), url("queues:create")):
            continue
        assert getattr(client, method)(target, data).status_code == 404, target
    assert url("queues:detail", "network") not in client.get(url("queues:list")).content.decode()


def test_same_slug_in_both_tenants_each_sees_its_own(personas, client_for, queues):
    services.queue_create(
        tenant=personas.other_tenant, actor=None, name="Globex network", slug="network"
    )
    html = client_for(personas.outsider).get(url("queues:detail", "network")).content.decode()
    assert "Globex network" in html and "ticket n1" not in html


def test_access_gate_raises_404_without_membership(personas, tickets):
    with pytest.raises(Http404):
        access_ticket(None, tickets["n1"].number)


def test_demo_data_has_queues_and_routed_tickets(db):
    from django.core.management import call_command

    from agentops.models import Tenant
    from incidents.models import Queue

    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    for slug in ("acme", "globex"):
        tenant = Tenant.objects.get(slug=slug)
        queues = Queue.objects.for_tenant(tenant)
        assert set(queues.values_list("name", flat=True)) == {
            "Service Desk",
            "Identity & Access",
            "Network",
            "Workplace & Hardware",
        }
        tickets = Ticket.objects.for_tenant(tenant).select_related("queue")
        assert tickets.exists() and not tickets.filter(queue__isnull=True).exists()
        for ticket in tickets.exclude(category=""):
            assert ticket.category in ticket.queue.categories or ticket.queue.slug == "service-desk"
        # and an escalation chain for overdue approvals: least loaded, then the admins
        from approvals.models import EscalationRule

        rules = EscalationRule.objects.for_tenant(tenant).order_by("order")
        assert [(r.after_minutes, r.target, r.raise_priority) for r in rules] == [
            (0, "least_loaded", False),
            (60, "admins", True),
        ]


def _admin_change_data(response) -> dict:
    """The admin change form's current values, as the browser would post them back."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None:
            continue
        data[name] = field.prepare_value(value) if hasattr(field, "prepare_value") else value
        if isinstance(data[name], list):
            data[name] = ",".join(map(str, data[name]))
    for formset in response.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        for name in management.fields:
            data[f"{management.prefix}-{name}"] = management[name].value()
    return data


def test_admin_ticket_queue_change_is_audited_and_scoped(personas, client, tickets, queues):
    _, identity = queues
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    ticket = tickets["n1"]
    target = reverse("admin:incidents_ticket_change", args=[ticket.pk])
    data = _admin_change_data(client.get(target))
    theirs = services.queue_create(tenant=personas.other_tenant, actor=None, name="Theirs")
    response = client.post(target, {**data, "queue": theirs.pk})
    assert response.status_code == 200 and "another tenant" in response.content.decode()
    response = client.post(target, {**data, "queue": identity.pk})
    assert response.status_code == 302
    event = events(personas.tenant, "ticket.queue_changed")[-1]
    assert event.actor_label == "root" and event.changes["queue"]["to"] == "Identity & Access"


def test_ticket_list_shows_the_queue_column_and_filters_by_queue(
    personas, client_for, tickets, django_assert_max_num_queries
):
    client = client_for(personas.agent)
    client.get(url("incidents:queue"))
    with django_assert_max_num_queries(8):  # 8: one reads the category filter's choices
        html = client.get(url("incidents:queue")).content.decode()
    assert "<th>Queue</th>" in html and "<td>Network</td>" in html
    assert '<option value="network"' in html
    html = client.get(url("incidents:queue"), {"queue": "network"}).content.decode()
    assert "ticket n1" in html and "ticket i1" not in html
    html = client.get(url("incidents:queue"), {"queue": "none"}).content.decode()
    assert "ticket none" in html and "ticket n1" not in html
    # A requester without queues sees no queue column (and no queue names).
    robin_html = client_for(personas.requester).get(url("incidents:queue")).content.decode()
    assert "<th>Queue</th>" not in robin_html
