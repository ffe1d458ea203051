"""Object permissions on approvals (a reviewer granted one queue or one ticket), the one gate
on every approvals URL (cross-tenant and out-of-scope: 404), notifications for their
recipient only, and what a queue item shows (evidence, citations, keyboard)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import URLPattern, reverse
from guardian.shortcuts import assign_perm

from agentops import notifications
from agentops.models import Notification, Role
from approvals import handlers, services
from approvals import urls as approval_urls
from approvals.models import ApprovalRequest, EscalationPolicy, EscalationRule
from incidents import approval_scopes
from incidents.models import Queue
from tests.conftest import make_user

HTMX = {"HTTP_HX_REQUEST": "true"}
QUEUE = "/approvals/"
handlers.register("tests.scope", lambda request: None)


def ids_in(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<article [^>]*id="approval-(\d+)"', html)]


def open_request(tenant, scope="", **kw):
    return services.request_approval(
        tenant=tenant,
        handler="tests.scope",
        handler_ref="1",
        subject_type="test",
        subject_id="1",
        subject_repr=kw.pop("subject_repr", f"Subject in {scope or 'tenant'}"),
        action="grant_admin_access",
        arguments={"user_email": "x@acme.example"},
        scope=scope,
        auto_assign=False,
        **kw,
    )


@pytest.fixture
def queues(personas):
    make = Queue.objects.create
    return (
        make(tenant=personas.tenant, name="Identity", slug="identity"),
        make(tenant=personas.tenant, name="Network", slug="network"),
    )


# --------------------------------------------------------------------------- scope


def test_a_queue_granted_agent_sees_and_decides_only_that_queue(personas, client_for, queues):
    identity, network = queues
    agent = personas.agent
    in_queue = open_request(personas.tenant, f"queue:{identity.pk}")
    ticket_in_queue = open_request(personas.tenant, f"queue:{identity.pk}/ticket:REQ0000042")
    elsewhere = open_request(personas.tenant, f"queue:{network.pk}")
    tenant_wide = open_request(personas.tenant)
    client = client_for(agent)
    # Without a grant an agent decides nothing: 403 and no nav link.
    assert client.get(QUEUE).status_code == 403
    assert f'href="{QUEUE}"' not in client.get(reverse("incidents:queue")).content.decode()
    assign_perm("incidents.work_queue", agent, identity)
    assign_perm("incidents.view_queue", agent, network)  # seeing a queue decides nothing
    html = client.get(QUEUE).content.decode()
    assert sorted(ids_in(html)) == sorted([in_queue.pk, ticket_in_queue.pk])
    assert "granted to you" in html
    assert f'href="{QUEUE}"' in html  # the nav link follows the grant at once
    for approval in (elsewhere, tenant_wide):
        assert client.get(reverse("approvals:detail", args=[approval.pk])).status_code == 404
        response = client.post(
            reverse("approvals:decide", args=[approval.pk]), {"decision": "approve"}, **HTMX
        )
        assert response.status_code == 404
        approval.refresh_from_db()
        assert approval.status == "pending"
    assert client.get(reverse("approvals:detail", args=[in_queue.pk])).status_code == 200
    response = client.post(
        reverse("approvals:decide", args=[in_queue.pk]), {"decision": "approve"}, **HTMX
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "approvalDecided"
    in_queue.refresh_from_db()
    assert in_queue.status == "approved" and in_queue.decided_by == agent
    # The service checks the scope itself (whatever calls it).
    with pytest.raises(services.PermissionDenied):
        services.decide(request=elsewhere, actor=agent, approve=True)
    # Counters count only what they may see.
    counts = client.get(QUEUE, {"part": "counts"}, **HTMX).content.decode()
    assert re.search(r'data-filter="all">[^<]*<span class="tab-count">1</span>', counts)


def test_a_ticket_grant_covers_that_ticket_only_and_reviewers_see_everything(
    personas, client_for, queues, make_ticket
):
    identity, _ = queues
    ticket = make_ticket(personas.tenant, personas.requester)
    ticket.queue = identity
    mine = open_request(personas.tenant, approval_scopes.scope_for(ticket))
    assert mine.scope == f"queue:{identity.pk}/ticket:{ticket.number}"
    similar = open_request(personas.tenant, f"queue:{identity.pk}/ticket:{ticket.number}0")
    other = open_request(personas.tenant, "ticket:REQ9999999")
    assign_perm("incidents.change_ticket", personas.agent2, ticket)
    assign_perm("incidents.view_ticket", personas.agent, ticket)  # seeing decides nothing
    assert approval_scopes.granted_scopes(personas.agent2, personas.tenant) == {
        f"ticket:{ticket.number}"
    }
    html = client_for(personas.agent2).get(QUEUE).content.decode()
    assert ids_in(html) == [mine.pk]  # whole elements only: not …0, not another ticket
    assert client_for(personas.agent).get(QUEUE).status_code == 403
    # A tenant-wide reviewer sees every request whatever its scope.
    html = client_for(personas.reviewer).get(QUEUE).content.decode()
    assert sorted(ids_in(html)) == sorted([mine.pk, similar.pk, other.pk])
    # A grant in one tenant means nothing in another.
    assert approval_scopes.granted_scopes(personas.agent2, personas.other_tenant) == set()


def test_the_runtime_opens_a_ticket_run_approval_with_the_ticket_scope(
    personas, park, queues, client_for
):
    identity, _ = queues
    ticket, _run, approval = park(queue=identity)
    assert approval.scope == f"queue:{identity.pk}/ticket:{ticket.number}"
    assign_perm("incidents.work_queue", personas.agent2, identity)
    html = client_for(personas.agent2).get(QUEUE).content.decode()
    assert ids_in(html) == [approval.pk]


# --------------------------------------------------------------------------- the gate


def _pk_urls(approval) -> dict[str, tuple[str, str]]:
    """Every approvals URL that names a request → (method, url). A new URL must be added."""
    methods = {"detail": "get", "decide": "post"}
    found = {}
    for pattern in approval_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        if "pk" in pattern.pattern.converters:
            found[pattern.name] = (
                methods[pattern.name],
                reverse(f"approvals:{pattern.name}", args=[approval.pk]),
            )
    return found


def test_every_approvals_url_is_404_across_tenants(personas, client_for):
    foreign = open_request(personas.other_tenant, subject_repr="Globex secret")
    globex_reviewer = make_user("gina", personas.other_tenant, Role.REVIEWER)
    ours = open_request(personas.tenant, subject_repr="Acme secret")
    pairs = ((personas.reviewer, foreign), (personas.admin, foreign), (globex_reviewer, ours))
    for user, approval in pairs:
        client = client_for(user)
        urls = _pk_urls(approval)
        assert set(urls) == {"detail", "decide"}
        for name, (method, url) in urls.items():
            for headers in ({}, HTMX):
                response = getattr(client, method)(url, {"decision": "approve"}, **headers)
                assert response.status_code == 404, (user, name, headers)
                assert approval.subject_repr.encode() not in response.content
        for name in ("all", "decided", "breached", "unassigned", "mine"):
            html = client.get(QUEUE, {"filter": name}).content.decode()
            assert approval.pk not in ids_in(html) and approval.subject_repr not in html
    # The outsider (an agent of the other tenant) and a requester: 404 too.
    for user in (personas.outsider, personas.requester):
        client = client_for(user)
        for _name, (method, url) in _pk_urls(ours).items():
            assert getattr(client, method)(url, {"decision": "approve"}).status_code == 404
    foreign.refresh_from_db()
    ours.refresh_from_db()
    assert foreign.status == ours.status == "pending"
    # The availability toggle acts on the signed-in reviewer only; others cannot reach it.
    assert client_for(personas.requester).post(reverse("approvals:availability")).status_code == 403
    assert client_for(personas.auditor).post(reverse("approvals:availability")).status_code == 403


def test_anonymous_is_sent_to_login_everywhere(client, personas):
    approval = open_request(personas.tenant)
    for _name, (method, url) in _pk_urls(approval).items():
        assert getattr(client, method)(url).status_code == 302
    assert client.post(reverse("approvals:availability")).status_code == 302
    assert client.get(reverse("notifications:list")).status_code == 302


# --------------------------------------------------------------------------- notifications


def test_notifications_reach_only_their_recipient(personas, client_for):
    ada, riley = personas.admin, personas.reviewer
    mine = notifications.notify(
        tenant=personas.tenant, user=riley, verb="t", title="For riley", link="/approvals/"
    )
    theirs = notifications.notify(tenant=personas.tenant, user=ada, verb="t", title="For ada")
    globex_user = make_user("gina", personas.other_tenant, Role.REVIEWER)
    foreign = notifications.notify(
        tenant=personas.other_tenant, user=globex_user, verb="t", title="For gina"
    )
    client = client_for(riley)
    page = client.get(reverse("notifications:list")).content.decode()
    assert "For riley" in page and "For ada" not in page and "For gina" not in page
    assert 'class="bell-count">1<' in page  # the bell in the nav
    other_page = client.get(reverse("incidents:queue")).content.decode()
    assert 'id="nav-bell"' in other_page and 'class="bell-count">1<' in other_page
    for note in (theirs, foreign):  # someone else's, another tenant's: 404, nothing changes
        for headers in ({}, HTMX):
            url = reverse("notifications:read", args=[note.pk])
            assert client.post(url, **headers).status_code == 404
        note.refresh_from_db()
        assert note.read_at is None
    response = client.post(reverse("notifications:read", args=[mine.pk]), **HTMX)
    assert response.status_code == 200 and response["HX-Trigger"] == "notificationsChanged"
    assert "is-unread" not in response.content.decode()
    mine.refresh_from_db()
    assert mine.read_at is not None
    bell = client.get(reverse("notifications:bell"), **HTMX).content.decode()
    assert "bell-count" not in bell and "0 unread" in bell
    # Read all marks only the user's own.
    client.post(reverse("notifications:read-all"))
    theirs.refresh_from_db()
    assert theirs.read_at is None
    assert client.get(reverse("notifications:read", args=[mine.pk])).status_code == 405


def test_an_sla_breach_notifies_in_the_console(personas, client_for):
    request = open_request(personas.tenant, requested_by=personas.agent)
    ApprovalRequest.objects.for_tenant(personas.tenant).filter(pk=request.pk).update(
        assigned_to=personas.reviewer
    )
    services.check_sla(now=request.sla_due)
    [note] = Notification.objects.for_tenant(personas.tenant).filter(user=personas.reviewer)
    page = client_for(personas.reviewer).get(reverse("notifications:list")).content.decode()
    assert "SLA breached: grant_admin_access" in page
    assert f'href="/approvals/{request.pk}/"' in page
    assert note.link == reverse("approvals:detail", args=[request.pk])


# --------------------------------------------------------------------------- the item


def test_an_item_shows_the_run_timeline_and_the_cited_articles(personas, client_for, park):
    citations = [
        {"title": "VPN access policy", "url": "/knowledge/documents/3/", "heading": "Admins"},
        {"title": "Evil", "url": "javascript:alert(1)", "heading": ""},
    ]
    _ticket, _run, approval = park(step_detail={"citations": citations})
    assert approval.evidence["timeline"] and approval.evidence["citations"]
    html = client_for(personas.reviewer).get(QUEUE).content.decode()
    assert "Run timeline" in html and 'class="timeline-excerpt"' in html
    assert (
        '<a href="/knowledge/documents/3/" rel="noopener noreferrer">VPN access policy</a>' in html
    )
    assert "Admins" in html and "javascript:" not in html and "Evil" in html


def test_the_queue_is_keyboard_ready(personas, client_for):
    approval = open_request(personas.tenant)
    html = client_for(personas.reviewer).get(QUEUE).content.decode()
    assert "data-approval-queue" in html and 'aria-keyshortcuts="a"' in html
    # Enter in the reason never approves: the form's default (first) button is disabled.
    form = html[html.index(f'action="{reverse("approvals:decide", args=[approval.pk])}"') :]
    first_button = re.search(r"<button[^>]*>", form).group(0)
    assert "disabled" in first_button
    script = (Path(settings.BASE_DIR) / "static" / "js" / "console.js").read_text()
    assert "data-approval-queue" in script and 'event.key === "j"' in script
    assert "<script>" not in html.split("</head>")[1]  # no inline script (CSP)


# --------------------------------------------------------------------------- admin


def test_policy_settings_and_availability_are_editable_in_the_admin(personas, client):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    for model in ("approvalsettings", "escalationpolicy", "revieweravailability"):
        assert client.get(f"/admin/approvals/{model}/").status_code == 200
        assert client.get(f"/admin/approvals/{model}/add/").status_code == 200
    data = {
        "tenant": personas.tenant.pk,
        "name": "Default",
        "is_active": "on",
        "rules-TOTAL_FORMS": "1",
        "rules-INITIAL_FORMS": "0",
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "1000",
        "rules-0-order": "1",
        "rules-0-priority": "high",
        "rules-0-action_pattern": "grant_*",
        "rules-0-after_minutes": "15",
        "rules-0-target": "user",
        "rules-0-user": personas.agent.pk,  # not a reviewer: refused
    }
    response = client.post("/admin/approvals/escalationpolicy/add/", data)
    assert response.status_code == 200 and "Not a reviewer or admin" in response.content.decode()
    data["rules-0-user"] = personas.reviewer.pk
    response = client.post("/admin/approvals/escalationpolicy/add/", data)
    assert response.status_code == 302
    rule = EscalationRule.objects.for_tenant(personas.tenant).get()
    assert rule.user == personas.reviewer and rule.policy.tenant == personas.tenant
    # One policy per tenant, said in the form.
    data["rules-TOTAL_FORMS"] = "0"
    response = client.post("/admin/approvals/escalationpolicy/add/", data)
    assert (
        response.status_code == 200
        and "has an escalation policy already" in response.content.decode()
    )
    assert EscalationPolicy.objects.for_tenant(personas.tenant).count() == 1
    response = client.post(
        "/admin/approvals/revieweravailability/add/",
        {"tenant": personas.tenant.pk, "user": personas.reviewer.pk, "is_away": "on"},
    )
    assert response.status_code == 302
    assert services.is_available(personas.reviewer, personas.tenant) is False


def test_the_embedded_timeline_tells_where_the_run_is(personas, client_for, park):
    """The evidence is a snapshot: its in-flight step is shown as waiting for the decision,
    never as running, and a sentence says where the run is now (waiting, or ended)."""
    from agents.models import Run

    _ticket, run, approval = park()
    assert any(step["status"] == "running" for step in approval.evidence["timeline"])
    client = client_for(personas.reviewer)
    html = client.get(QUEUE).content.decode()
    excerpt = html[html.index('class="timeline-excerpt"') :]
    excerpt = excerpt[: excerpt.index("</ol>")]
    assert "waiting for this decision" in excerpt and ">running<" not in excerpt
    assert "The run is waiting for a decision." in html

    Run.objects.for_tenant(personas.tenant).filter(pk=run.pk).update(status="cancelled")
    html = client.get(reverse("approvals:detail", args=[approval.pk])).content.decode()
    assert "The run has ended: cancelled." in html
    # A single request's page marks no filter tab as the current one.
    tabs = html[html.index('id="approval-filters"') :]
    tabs = tabs[: tabs.index("</nav>")]
    assert "aria-current" not in tabs and "filter=none&amp;part=counts" in tabs
    counts = client.get(QUEUE, {"filter": "none", "part": "counts"}, HTTP_HX_REQUEST="true")
    assert counts.status_code == 200 and "aria-current" not in counts.content.decode()
    counts = client.get(QUEUE, {"filter": "mine", "part": "counts"}, HTTP_HX_REQUEST="true")
    active = re.search(
        r'<a [^>]*aria-current="page"[^>]*data-filter="(\w+)"', counts.content.decode()
    )
    assert active and active.group(1) == "mine"


def test_the_bell_tells_of_new_requests_and_others_decisions(personas):
    """Assigned a new request: a notification (no e-mail). Someone else decides a request
    assigned to you: a notification. Your own decision: none."""
    from django.core import mail

    riley, ada = personas.reviewer, personas.admin
    first = open_request(personas.tenant)
    ApprovalRequest.objects.for_tenant(personas.tenant).filter(pk=first.pk).update(
        assigned_to=riley
    )
    services.decide(request=first, actor=ada, approve=True)
    [note] = Notification.objects.for_tenant(personas.tenant).filter(user=riley)
    assert note.verb == "approval.approved_by_other" and "ada approved" in note.title
    assert note.link == reverse("approvals:detail", args=[first.pk])
    auto = services.request_approval(
        tenant=personas.tenant,
        handler="tests.scope",
        handler_ref="2",
        subject_type="test",
        subject_id="2",
        subject_repr="Laptop admin",
        action="grant_admin_access",
        arguments={"user_email": "x@acme.example"},
        requested_by=personas.agent,
    )
    assert auto.assigned_to_id is not None
    assigned = Notification.objects.for_tenant(personas.tenant).get(
        user_id=auto.assigned_to_id, verb="approval.assigned"
    )
    assert "Laptop admin" in assigned.title and mail.outbox == []
    services.decide(request=auto, actor=auto.assigned_to, approve=False, comment="No")
    assert (
        not Notification.objects.for_tenant(personas.tenant)
        .filter(user_id=auto.assigned_to_id, verb__endswith="_by_other")
        .exists()
    )
