"""Console pages of the runtime: the live timeline on the ticket page, run pages, decisions."""

import re
from datetime import timedelta
from html import unescape as html_unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from agents import engine
from agents.connectors.sandbox.models import DirectoryUser
from agents.models import Step
from approvals.models import ApprovalRequest
from incidents.services import ticket_create, ticket_start_agent
from tests.agents.scripted import ScriptedBackend, tool_reply, triage_reply


@pytest.fixture
def model(monkeypatch):
    backend = ScriptedBackend()
    monkeypatch.setattr(engine, "backend_for", lambda config: backend)
    return backend


@pytest.fixture
def started(personas, model):
    DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="Robin", locked=True
    )
    model.responses += [
        triage_reply(),
        tool_reply(("unlock_account", {"user_email": personas.requester.email})),
    ]
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="Locked out <b>now</b>",
        start_agent=False,
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    return ticket, run


def test_ticket_page_shows_the_timeline_to_staff_only(personas, client_for, started):
    ticket, run = started
    engine.advance(run.pk)  # triage
    html = (
        client_for(personas.agent)
        .get(reverse("incidents:ticket-detail", args=[ticket.number]))
        .content.decode()
    )
    assert (
        f'id="timeline-{run.pk}"' in html and "Triage" in html and 'hx-trigger="every 2s"' in html
    )
    assert "Resolve with agent" not in html  # a run is active
    requester_html = (
        client_for(personas.requester)
        .get(reverse("incidents:ticket-detail", args=[ticket.number]))
        .content.decode()
    )
    assert f'id="timeline-{run.pk}"' not in requester_html


def test_timeline_partial_sends_only_what_is_new_and_stops_when_done(
    personas, client_for, started, django_assert_max_num_queries
):
    _ticket, run = started
    client = client_for(personas.agent)
    url = reverse("agents:run-timeline", args=[run.run_id])
    engine.advance(run.pk)  # triage
    cursor = timezone.now().isoformat()
    engine.advance(run.pk)  # plan
    with django_assert_max_num_queries(10):
        response = client.get(url, {"cursor": cursor})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Plan remediation" in html and "Triage</strong>" not in html  # only the new step
    assert 'hx-swap-oob="beforeend:#steps-' in html
    while engine.advance(run.pk) == "advanced":
        pass
    response = client.get(url, {"cursor": cursor})
    assert response.status_code == 286  # finished: htmx stops polling
    assert response["HX-Refresh"] == "true"  # and reloads once: ticket status, notes changed
    assert 'hx-trigger="every 2s"' not in response.content.decode()
    assert "unlock_account" in response.content.decode()


def test_run_pages_gate(personas, client_for, started):
    _ticket, run = started
    for name in ("agents:run-detail", "agents:run-timeline"):
        url = reverse(name, args=[run.run_id])
        assert client_for(personas.agent).get(url).status_code == 200
        assert client_for(personas.auditor).get(url).status_code == 200
        assert client_for(personas.requester).get(url).status_code == 404
        assert client_for(personas.outsider).get(url).status_code == 404
    assert client_for(personas.agent).get(reverse("agents:run-list")).status_code == 200
    assert client_for(personas.requester).get(reverse("agents:run-list")).status_code == 403
    cancel = reverse("agents:run-cancel", args=[run.run_id])
    assert client_for(personas.auditor).post(cancel).status_code == 403
    assert client_for(personas.outsider).post(cancel).status_code == 404


def test_ticket_html_from_the_requester_is_escaped_in_the_timeline(personas, client_for, started):
    _ticket, run = started
    engine.advance(run.pk)
    html = (
        client_for(personas.agent)
        .get(reverse("agents:run-detail", args=[run.run_id]))
        .content.decode()
    )
    assert "<b>now</b>" not in html and "&lt;b&gt;now&lt;/b&gt;" in html


def test_resolve_with_agent_button(personas, client_for, model):
    ticket = ticket_create(
        tenant=personas.tenant, actor=personas.requester, title="VPN", start_agent=False
    )
    url = reverse("incidents:ticket-resolve", args=[ticket.number])
    page = (
        client_for(personas.agent)
        .get(reverse("incidents:ticket-detail", args=[ticket.number]))
        .content.decode()
    )
    assert "Resolve with agent" in page
    assert client_for(personas.reviewer).post(url).status_code == 403
    assert client_for(personas.outsider).post(url).status_code == 404
    response = client_for(personas.agent).post(url)
    assert response.status_code == 302
    from agents.models import Run

    run = Run.objects.for_tenant(personas.tenant).get(subject_id=ticket.number)
    assert run.started_by == personas.agent and run.started_by_staff
    again = client_for(personas.agent).post(url, follow=True)
    assert b"already working" in again.content


def test_reviewer_decides_from_the_timeline(personas, client_for, model):
    DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="Robin"
    )
    model.responses += [
        triage_reply(),
        tool_reply(
            (
                "grant_admin_access",
                {"user_email": personas.requester.email, "reason": "Needs developer tools"},
            )
        ),
    ]
    ticket = ticket_create(
        tenant=personas.tenant, actor=personas.requester, title="Need admin", start_agent=False
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    while engine.advance(run.pk) == "advanced":
        pass
    approval = ApprovalRequest.objects.for_tenant(personas.tenant).get()
    page = (
        client_for(personas.reviewer)
        .get(reverse("incidents:ticket-detail", args=[ticket.number]))
        .content.decode()
    )
    assert "Approval needed" in page and reverse("approvals:decide", args=[approval.pk]) in page
    decide = reverse("approvals:decide", args=[approval.pk])
    assert client_for(personas.requester).post(decide, {"decision": "approve"}).status_code == 404
    assert client_for(personas.outsider).post(decide, {"decision": "approve"}).status_code == 404
    assert client_for(personas.agent).post(decide, {"decision": "approve"}).status_code == 403
    missing = client_for(personas.reviewer).post(decide, {"decision": "reject"}, follow=True)
    assert b"Say why you reject it" in missing.content
    approval.refresh_from_db()
    assert approval.status == "pending"
    response = client_for(personas.reviewer).post(
        decide, {"decision": "approve", "next": "/tickets/"}
    )
    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.status == "approved" and approval.decided_by == personas.reviewer
    second = client_for(personas.admin).post(
        decide, {"decision": "reject", "comment": "no"}, follow=True
    )
    assert b"already approved" in second.content


def test_api_resolve_and_status(personas, client, model):
    from agentops.services import api_token_create

    DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="Robin", locked=True
    )
    _, raw = api_token_create(tenant=personas.tenant, user=personas.agent)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.agent,
        title="Locked out",
        requester=personas.requester,
        start_agent=False,
    )
    response = client.post(f"/api/v1/tickets/{ticket.number}/resolve", **auth)
    assert response.status_code == 202
    body = response.json()
    assert body["status_url"] == f"/api/v1/tickets/{ticket.number}/status"
    assert client.post(f"/api/v1/tickets/{ticket.number}/resolve", **auth).status_code == 409
    model.responses += [
        triage_reply(),
        tool_reply(("unlock_account", {"user_email": personas.requester.email})),
    ]
    from agents.models import Run

    run = Run.objects.for_tenant(personas.tenant).get(run_id=body["run_id"])
    while engine.advance(run.pk) == "advanced":
        pass
    status = client.get(body["status_url"], **auth).json()
    assert status["status"] == "resolved" and status["run"]["status"] == "succeeded"
    assert [t["tool_name"] for t in status["tool_calls"]] == ["unlock_account"]
    assert status["tool_calls"][0]["verified"] is True
    _, other = api_token_create(tenant=personas.other_tenant, user=personas.outsider)
    assert client.get(body["status_url"], HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 404


def test_open_circuit_breakers_show_on_the_runs_page(personas, client_for):
    import uuid

    from agents.resilience import CircuitBreaker

    breaker = CircuitBreaker(f"llm:test-{uuid.uuid4().hex[:8]}", threshold=2, cooldown=60)
    try:
        breaker.record_failure("529 overloaded")
        breaker.record_failure("529 overloaded")
        html = client_for(personas.agent).get(reverse("agents:run-list")).content.decode()
        assert breaker.name in html and "open" in html and "529 overloaded" in html
    finally:
        breaker.reset()


def test_runs_page_charts_outcomes(personas, client_for, started):
    _ticket, run = started
    while engine.advance(run.pk) == "advanced":
        pass
    html = client_for(personas.agent).get(reverse("agents:run-list")).content.decode()
    assert 'class="seg seg-succeeded" data-pct="100.0"' in html
    assert "Succeeded <strong>1</strong>" in html


def test_timeline_poll_sends_a_change_that_committed_after_the_previous_poll(
    personas, client_for, started
):
    """A step stamps updated_at before its transaction commits: a poll between the stamp and
    the commit must not make the next poll skip it, and a step the page shows is replaced,
    never appended twice."""
    _ticket, run = started
    client = client_for(personas.agent)
    engine.advance(run.pk)  # triage
    page = client.get(reverse("agents:run-detail", args=[run.run_id])).content.decode()
    [poll_url] = re.findall(r'hx-get="([^"]*/timeline\?[^"]*)"', page)
    first = client.get(html_unescape(poll_url))
    [next_url] = re.findall(r'hx-get="([^"]*/timeline\?[^"]*)"', first.content.decode())
    # The triage step changes now, stamped a moment before the first poll was answered
    # (its transaction was still open then).
    step = Step.objects.for_tenant(personas.tenant).get(run=run, seq=1)
    Step.objects.for_tenant(personas.tenant).filter(pk=step.pk).update(
        output_summary="late commit", updated_at=timezone.now() - timedelta(seconds=1)
    )
    html = client.get(html_unescape(next_url)).content.decode()
    assert "late commit" in html
    # Already on the page: replaced by id, not appended a second time.
    assert f'id="step-{step.pk}" hx-swap-oob="true"' in html
    assert 'hx-swap-oob="beforeend:#steps-' not in html
