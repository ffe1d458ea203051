"""The reviewer queue (/approvals/): order, filters and counters, decisions from the page,
the gate (404 / 403), the bad-input rules, and the query count."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from agentops.models import Membership, Role
from agents import approval_hooks, engine
from agents.connectors.sandbox.models import DirectoryUser
from approvals import handlers, selectors, services
from tests.approvals.conftest import drive
from tests.conftest import make_user

HTMX = {"HTTP_HX_REQUEST": "true"}
QUEUE = "/approvals/"
DECIDED: list[int] = []


def _noop(request):
    DECIDED.append(request.pk)


handlers.register("tests.noop", _noop)


@pytest.fixture
def hooks(monkeypatch):
    """The runtime's edit validator, as AgentsConfig.ready will register it."""
    monkeypatch.setitem(handlers._VALIDATORS, engine.APPROVAL_HANDLER, None)
    approval_hooks.register()


@pytest.fixture
def make_request(personas):
    def factory(tenant=None, *, priority="high", sla_in=None, **fields):
        request = services.request_approval(
            tenant=tenant or personas.tenant,
            handler="tests.noop",
            handler_ref="1",
            subject_type="test",
            subject_id="1",
            subject_repr=fields.pop("subject_repr", "Test subject"),
            action=fields.pop("action", "grant_admin_access"),
            arguments=fields.pop("arguments", {"user_email": "x@acme.example", "reason": "r"}),
            reason=fields.pop("reason", "Grants admin rights"),
            evidence=fields.pop("evidence", {}),
            priority=priority,
            requested_by=fields.pop("requested_by", None),
            scope=fields.pop("scope", ""),
            # These tests assign by hand; auto-assignment has its own tests (test_sla.py).
            auto_assign=fields.pop("auto_assign", False),
        )
        if sla_in is not None:
            request.sla_due = timezone.now() + sla_in
        for name, value in fields.items():
            setattr(request, name, value)
        request.save()
        return request

    return factory


def ids_in(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<article [^>]*id="approval-(\d+)"', html)]


def decide_url(approval) -> str:
    return reverse("approvals:decide", args=[approval.pk])


# --------------------------------------------------------------------------- order, filters


def test_order_is_priority_then_sla(personas, client_for, make_request):
    h = timedelta(hours=1)
    low = make_request(priority="low", sla_in=h)
    high_late = make_request(priority="high", sla_in=3 * h)
    critical = make_request(priority="critical", sla_in=5 * h)
    high_soon = make_request(priority="high", sla_in=h)
    medium = make_request(priority="medium", sla_in=-h)
    expected = [critical.pk, high_soon.pk, high_late.pk, medium.pk, low.pk]
    html = client_for(personas.reviewer).get(QUEUE).content.decode()
    assert ids_in(html) == expected
    assert reverse("approvals:index") == QUEUE


def test_each_filter_and_its_counter(personas, client_for, make_request):
    h = timedelta(hours=1)
    mine = make_request(assigned_to=personas.reviewer, sla_in=h)
    theirs = make_request(assigned_to=personas.admin, sla_in=h)
    breached = make_request(sla_in=-h)
    decided = make_request()
    services.decide(request=decided, actor=personas.admin, approve=True)
    make_request(personas.other_tenant)  # never counted, never shown

    client = client_for(personas.reviewer)
    expected = {
        "all": [mine.pk, theirs.pk, breached.pk],
        "mine": [mine.pk],
        "unassigned": [breached.pk],
        "breached": [breached.pk],
        "decided": [decided.pk],
    }
    for name, pks in expected.items():
        html = client.get(QUEUE, {"filter": name}).content.decode()
        assert sorted(ids_in(html)) == sorted(pks), name
        assert re.search(
            rf'data-filter="{name}">[^<]*<span class="tab-count">{len(pks)}</span>', html
        ), name
    decided_html = client.get(QUEUE, {"filter": "decided"}).content.decode()
    assert "Approved" in decided_html and 'name="decision"' not in decided_html  # read-only
    breached_html = client.get(QUEUE, {"filter": "breached"}).content.decode()
    assert "sla-breached" in breached_html and "is-breached" in breached_html
    # The counters on their own (what the approvalDecided event fetches).
    counts = client.get(QUEUE, {"filter": "mine", "part": "counts"}, **HTMX).content.decode()
    assert counts.lstrip().startswith('<nav id="approval-filters"') and "<article" not in counts
    assert 'hx-trigger="approvalDecided from:body, approvalsChanged from:body"' in counts
    # An unknown filter falls back to all pending.
    assert len(ids_in(client.get(QUEUE, {"filter": "bogus"}).content.decode())) == 3
    membership = Membership.objects.get(tenant=personas.tenant, user=personas.reviewer)
    assert selectors.queue_counts(membership) == {name: len(pks) for name, pks in expected.items()}


def test_item_shows_action_arguments_reason_risk_requester_and_evidence(
    personas, client_for, parked
):
    ticket, run, approval = parked
    html = client_for(personas.reviewer).get(QUEUE).content.decode()
    assert "grant_admin_access" in html and "Needs developer tools" in html
    assert approval.reason and approval.reason in html
    assert "risk: high" in html and "started by robin" in html
    assert f'href="{reverse("incidents:ticket-detail", args=[ticket.number])}"' in html
    assert f'href="{reverse("agents:run-detail", args=[run.run_id])}"' in html
    assert "Triage:" in html and 'tabindex="0"' in html
    # Untrusted text is escaped.
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;pwn&#x27;)" in html


def test_untrusted_arguments_and_evidence_are_escaped(personas, client_for, make_request):
    make_request(
        arguments={"reason": '<img src=x onerror="alert(1)">'},
        reason="<b>bold</b>",
        evidence={"ticket": "<i>INC</i>", "ticket_text": "<script>x()</script>"},
    )
    html = client_for(personas.reviewer).get(QUEUE).content.decode()
    for raw in ("<img src=x", "<b>bold</b>", "<i>INC</i>", "<script>x()"):
        assert raw not in html
    assert "&lt;img src=x" in html and "&lt;script&gt;x()" in html


# --------------------------------------------------------------------------- decisions


def test_approve_from_the_page_resumes_the_run_with_the_exact_action(personas, client_for, parked):
    _ticket, run, approval = parked
    response = client_for(personas.reviewer).post(
        decide_url(approval), {"decision": "approve", "filter": "all"}, **HTMX
    )
    assert response.status_code == 200
    assert response["HX-Trigger"] == "approvalDecided"
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="approval-results"')
    assert "grant_admin_access: approved." in html and ids_in(html) == []
    approval.refresh_from_db()
    assert approval.status == "approved" and approval.decided_by == personas.reviewer
    run.refresh_from_db()
    assert run.status == "queued" and run.state == "compliance"
    drive(run)
    call = run.tool_calls.get()
    assert call.tool_name == "grant_admin_access" and call.status == "success"
    assert call.args_json == approval.arguments
    assert DirectoryUser.objects.for_tenant(personas.tenant).get().is_admin is True


def test_reject_without_comment_is_asked_for_and_changes_nothing(personas, client_for, parked):
    _ticket, run, approval = parked
    client = client_for(personas.reviewer)
    response = client.post(decide_url(approval), {"decision": "reject"}, **HTMX)
    assert response.status_code == 400 and "HX-Trigger" not in response
    assert "Say why you reject it." in response.content.decode()
    approval.refresh_from_db()
    run.refresh_from_db()
    assert approval.status == "pending" and run.status == "waiting_approval"
    response = client.post(
        decide_url(approval), {"decision": "reject", "comment": "Use the dev VM"}, **HTMX
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "approvalDecided"
    approval.refresh_from_db()
    assert approval.status == "rejected" and approval.comment == "Use the dev VM"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"user_email": ', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"user_email": "not-an-address", "reason": "Needs developer tools"}', "user_email"),
        ('{"user_email": "robin@acme.example", "reason": "ok", "extra": 1}', "extra"),
    ],
)
def test_edit_with_bad_arguments_is_named_back_and_changes_nothing(
    personas, client_for, parked, hooks, text, message
):
    _ticket, run, approval = parked
    response = client_for(personas.reviewer).post(
        decide_url(approval), {"decision": "edit", "arguments": text}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 400 and "HX-Trigger" not in response
    assert message in html and 'class="form-error"' in html
    assert '<details class="edit-args" open>' in html  # the textarea stays open …
    assert f">{escape(text)}</textarea>" in html  # … with what was typed
    approval.refresh_from_db()
    run.refresh_from_db()
    assert approval.status == "pending" and approval.edited_arguments is None
    assert run.status == "waiting_approval"


def test_edit_without_a_registered_validator_is_refused_clearly(
    personas, client_for, parked, monkeypatch
):
    _ticket, _run, approval = parked
    monkeypatch.delitem(handlers._VALIDATORS, engine.APPROVAL_HANDLER, raising=False)
    edited = '{"user_email": "robin@acme.example", "reason": "Time-boxed: dev tools only"}'
    response = client_for(personas.reviewer).post(
        decide_url(approval), {"decision": "edit", "arguments": edited}, **HTMX
    )
    assert response.status_code == 400
    assert "no validator is registered" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == "pending"


def test_edit_then_approve_runs_the_edited_arguments(personas, client_for, parked, hooks):
    _ticket, run, approval = parked
    edited = {"user_email": personas.requester.email, "reason": "Time-boxed: dev tools only"}
    response = client_for(personas.reviewer).post(
        decide_url(approval), {"decision": "edit", "arguments": json.dumps(edited)}, **HTMX
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "approvalDecided"
    assert "approved with edited arguments" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == "approved" and approval.edited_arguments == edited
    drive(run)
    call = run.tool_calls.get()
    assert call.args_json == edited and call.status == "success"
    decided = client_for(personas.reviewer).get(QUEUE, {"filter": "decided"}).content.decode()
    assert "Approved arguments" in decided and "Time-boxed: dev tools only" in decided


def test_four_eyes_the_requester_of_an_action_cannot_approve_it(personas, client_for, make_request):
    own = make_request(requested_by=personas.reviewer)
    client = client_for(personas.reviewer)
    assert "four-eyes" in client.get(QUEUE).content.decode()  # said before clicking
    response = client.post(decide_url(own), {"decision": "approve"}, **HTMX)
    assert response.status_code == 400 and "HX-Trigger" not in response
    assert "a second person must decide it (four-eyes rule)" in response.content.decode()
    own.refresh_from_db()
    assert own.status == "pending" and own.pk not in DECIDED
    client_for(personas.admin).post(decide_url(own), {"decision": "approve"}, **HTMX)
    own.refresh_from_db()
    assert own.status == "approved" and own.decided_by == personas.admin


def test_a_second_decision_gets_a_conflict_message_and_changes_nothing(
    personas, client_for, make_request
):
    approval = make_request()
    services.decide(request=approval, actor=personas.admin, approve=True)
    response = client_for(personas.reviewer).post(
        decide_url(approval), {"decision": "reject", "comment": "no"}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200 and "already approved" in html
    assert "Someone else decided first" in html and 'role="alert"' in html
    approval.refresh_from_db()
    assert approval.status == "approved" and approval.decided_by == personas.admin
    assert approval.comment == ""


def test_a_decision_without_htmx_redirects_back_to_the_queue(personas, client_for, make_request):
    approval = make_request()
    response = client_for(personas.reviewer).post(
        decide_url(approval),
        {"decision": "approve", "next": f"{QUEUE}?filter=all"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == f"{QUEUE}?filter=all"
    assert "grant_admin_access: approved." in response.content.decode()


# --------------------------------------------------------------------------- the gate


def test_other_tenants_requests_are_404_everywhere(personas, client_for, make_request):
    foreign = make_request(personas.other_tenant, subject_repr="Globex secret")
    globex_reviewer = make_user("gina", personas.other_tenant, Role.REVIEWER)
    ours = make_request(subject_repr="Acme subject")
    for user, approval in ((personas.reviewer, foreign), (globex_reviewer, ours)):
        client = client_for(user)
        response = client.post(decide_url(approval), {"decision": "approve"}, **HTMX)
        assert response.status_code == 404
        html = client.get(QUEUE, {"filter": "all"}).content.decode()
        assert approval.pk not in ids_in(html) and approval.subject_repr not in html
    assert (
        client_for(personas.outsider).post(decide_url(ours), {"decision": "approve"}).status_code
        == 404
    )
    foreign.refresh_from_db()
    ours.refresh_from_db()
    assert foreign.status == ours.status == "pending"


@pytest.mark.parametrize(
    ("persona", "status"),
    [("requester", 403), ("agent", 403), ("auditor", 403), ("reviewer", 200), ("admin", 200)],
)
def test_roles(personas, client_for, make_request, persona, status):
    approval = make_request()
    client = client_for(getattr(personas, persona))
    assert client.get(QUEUE).status_code == status
    assert client.get(QUEUE, {"part": "counts"}, **HTMX).status_code == status
    response = client.post(decide_url(approval), {"decision": "reject", "comment": "no"}, **HTMX)
    # The page says in words that it is for reviewers; a request itself stays hidden (404)
    # from those who see no staff pages.
    assert response.status_code == (404 if persona == "requester" else status)
    approval.refresh_from_db()
    assert approval.status == ("rejected" if status == 200 else "pending")
    page = client.get(reverse("incidents:queue")).content.decode()
    assert (f'href="{QUEUE}"' in page) == (status == 200)  # the nav link


def test_anonymous_is_sent_to_login(client, make_request):
    approval = make_request()
    assert client.get(QUEUE).status_code == 302
    assert client.post(decide_url(approval), {"decision": "approve"}).status_code == 302


# --------------------------------------------------------------------------- queries


def test_queue_query_count_does_not_grow(
    personas, client_for, make_request, django_assert_max_num_queries
):
    client = client_for(personas.reviewer)
    evidence = {"ticket": "INC0000001", "run_id": "run_x", "triage": {"priority": "high"}}
    for _ in range(3):
        make_request(evidence=evidence, requested_by=personas.agent, assigned_to=personas.admin)
    # session, user, memberships, counters, the list, own availability, the bell's count
    with django_assert_max_num_queries(7):
        assert len(ids_in(client.get(QUEUE).content.decode())) == 3
    for _ in range(12):
        make_request(evidence=evidence, requested_by=personas.agent, assigned_to=personas.admin)
    with django_assert_max_num_queries(7):
        assert len(ids_in(client.get(QUEUE).content.decode())) == 15
    # the results partial: session, user, memberships, the list, its live stamp
    with django_assert_max_num_queries(5):
        client.get(QUEUE, **HTMX)
