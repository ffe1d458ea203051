"""Incident response (seed 001) offline: every generated scenario is triaged, its root cause
named from cited observations, the right fix proposed with its blast radius, verified by the
error rate falling after approval, and the incident resolved with a post-incident summary;
an ineffective or rejected fix escalates instead."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from agentops.models import AuditEvent
from agents import engine
from agents.llm.offline import OfflineBackend
from agents.models import Run
from agents.resilience import CircuitBreaker
from approvals.models import ApprovalRequest
from approvals.services import decide
from incidents.incident_scenarios import generate_incident
from incidents.models import OnCallShift, Page, Ticket

EXPECTED = {  # scenario → (fault named, remediation proposed, its arguments)
    "bad_deploy": ("bad_deploy", "rollback_deploy", {"service": "checkout", "to_version": "4.2.0"}),
    "db_pool_exhaustion": (
        "db_pool_exhaustion",
        "scale_service",
        {"service": "orders", "replicas": 6},
    ),
    "memory_leak": ("memory_leak", "restart_service", {"service": "inventory"}),
    "certificate_expiry": (
        "certificate_expiry",
        "failover",
        {"service": "edge-api", "region": "eu-central-1"},
    ),
    "dependency_timeout": (
        "dependency_timeout",
        "failover",
        {"service": "bank-gateway", "region": "eu-west-2"},
    ),
    "disk_full": ("disk_full", "clear_cache", {"service": "search-indexer"}),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    backend = OfflineBackend()
    monkeypatch.setattr(engine, "backend_for", lambda config: backend)
    for kind in ("monitoring", "operations"):
        CircuitBreaker(f"connector:{kind}").reset()


def drive(run, limit=60):
    outcome = ""
    for _ in range(limit):
        outcome = engine.advance(run.pk)
        if outcome not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    return outcome


def open_incident(tenant, scenario, **options):
    ticket = generate_incident(tenant=tenant, actor=None, scenario=scenario, **options)
    run = Run.objects.for_tenant(tenant).get(subject_type="ticket", subject_id=ticket.number)
    assert run.agent_name == "incident_response"
    return ticket, run


def pending(tenant):
    return ApprovalRequest.objects.for_tenant(tenant).get(status="pending")


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_each_scenario_is_diagnosed_fixed_verified_and_resolved(personas, scenario):
    fault, tool, args = EXPECTED[scenario]
    ticket, run = open_incident(personas.tenant, scenario)
    started = time.monotonic()
    assert drive(run) == "parked"
    request = pending(personas.tenant)
    assert request.action == tool
    assert {k: request.arguments[k] for k in args} == args
    assert len(request.arguments["reason"]) >= 10
    hypothesis = request.evidence["hypothesis"]
    assert hypothesis["evidence"] and hypothesis["reasons"]
    assert "Dependents affected" in request.evidence["blast_radius"]

    decide(request=request, actor=personas.reviewer, approve=True)
    assert drive(run) == "succeeded"
    assert time.monotonic() - started < 10
    report = run.result["report"]
    assert report["root_cause"]["fault"] == fault
    seen = {step["id"] for step in report["timeline"]}
    assert set(report["root_cause"]["evidence"]) <= seen  # every cited observation exists
    assert report["verification"]["error_rate"] < 0.05
    ticket.refresh_from_db()
    assert ticket.status == "resolved"
    assert f"Root cause: {report['root_cause']['title']}" in ticket.resolution_notes
    assert "Verification: error rate" in ticket.resolution_notes
    assert "Timeline:" in ticket.resolution_notes


def test_a_fix_that_does_not_help_is_escalated_not_closed(personas):
    ticket, run = open_incident(personas.tenant, "disk_full", ineffective=True)
    assert drive(run) == "parked"
    decide(request=pending(personas.tenant), actor=personas.reviewer, approve=True)
    assert drive(run) == "escalated"
    assert "did not help" in run.result["report"]["outcome"]
    assert run.result["report"]["verification"]["error_rate"] >= 0.05
    ticket.refresh_from_db()
    assert ticket.status == "escalated"
    assert ticket.comments.filter(is_internal=True, body__contains="Root cause").exists()


def test_a_rejected_remediation_is_escalated_with_what_was_learned(personas):
    ticket, run = open_incident(personas.tenant, "memory_leak")
    assert drive(run) == "parked"
    decide(
        request=pending(personas.tenant),
        actor=personas.reviewer,
        approve=False,
        comment="Not during peak hours.",
    )
    assert drive(run) == "escalated"
    assert "rejected" in run.result["report"]["outcome"]
    ticket.refresh_from_db()
    assert ticket.status == "escalated"
    note = ticket.comments.get(is_internal=True).body
    assert "Root cause: a memory leak" in note


def test_critical_incident_pages_on_call_who_acknowledges(
    personas, client_for, django_capture_on_commit_callbacks
):
    now = timezone.now()
    OnCallShift.objects.create(
        tenant=personas.tenant, user=personas.agent2, starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )  # fmt: skip
    OnCallShift.objects.create(  # the other tenant's rota never pages here
        tenant=personas.other_tenant, user=personas.outsider,
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1),
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        ticket, run = open_incident(personas.tenant, "certificate_expiry")
        drive(run)
    [page] = Page.objects.for_tenant(personas.tenant).filter(ticket=ticket)
    assert page.user == personas.agent2 and page.acknowledged_at is None
    assert any(personas.agent2.email in m.to for m in mail.outbox)
    ticket.refresh_from_db()
    assert ticket.assignee == personas.agent2
    assert pending(personas.tenant).priority == "critical"
    url = f"/tickets/{ticket.number}/pages/{page.pk}/ack"
    assert client_for(personas.outsider).post(url).status_code == 404
    assert client_for(personas.requester).post(url).status_code in (403, 404)
    body = client_for(personas.agent2).get(f"/tickets/{ticket.number}/").content.decode()
    assert "Acknowledge page" in body
    assert client_for(personas.agent2).post(url).status_code == 302
    page.refresh_from_db()
    assert page.acknowledged_by == personas.agent2
    assert (
        AuditEvent.objects.for_tenant(personas.tenant)
        .filter(action="incident.page_acknowledged", target_id=ticket.number)
        .exists()
    )
    other = f"/tickets/{ticket.number}/pages/999999/ack"
    assert client_for(personas.agent2).post(other).status_code == 404


def test_generate_incidents_command(personas):
    call_command(
        "generate_incidents", "--scenario", "disk_full", "--tenant", "globex", "--no-agent"
    )
    [ticket] = Ticket.objects.for_tenant(personas.other_tenant)
    assert ticket.kind == "incident" and ticket.detected_by == "monitoring"
    assert ticket.affected_services == ["search-indexer"] and ticket.source == "api"
    assert not Ticket.objects.for_tenant(personas.tenant).exists()
    for bad in ("nope", "disk_full\x00", ""):
        with pytest.raises(CommandError):
            call_command("generate_incidents", "--scenario", bad, "--tenant", "globex")
    with pytest.raises(CommandError):
        call_command("generate_incidents", "--scenario", "disk_full", "--tenant", "nobody")


def test_generate_from_the_sandbox_page(personas, client_for):
    assert 'name="scenario"' not in client_for(personas.reviewer).get("/sandbox/").content.decode()
    agent = client_for(personas.agent)  # one test client: the last login wins
    page = agent.get("/sandbox/").content.decode()
    assert 'name="scenario"' in page and "dependency_timeout" in page
    response = agent.post("/tickets/generate-incident", {"scenario": "memory_leak"})
    assert response.status_code == 302
    [ticket] = Ticket.objects.for_tenant(personas.tenant)
    assert response["Location"].endswith(f"/tickets/{ticket.number}/")
    assert not Ticket.objects.for_tenant(personas.other_tenant).exists()
    for bad in ({"scenario": "nope"}, {"scenario": "memory_leak\x00"}, {}):
        assert agent.post("/tickets/generate-incident", bad).status_code == 400
    assert (
        client_for(personas.reviewer)
        .post("/tickets/generate-incident", {"scenario": "disk_full"})
        .status_code
        == 403
    )
    assert (
        client_for(personas.requester)
        .post("/tickets/generate-incident", {"scenario": "disk_full"})
        .status_code
        == 403
    )
    assert agent.get("/tickets/generate-incident").status_code == 405


def test_with_a_model_it_plans_the_observe_turns_and_code_checks_the_fix(personas, monkeypatch):
    from tests.agents.scripted import ScriptedBackend, tool_reply

    service = {"service": "search-indexer"}
    model = ScriptedBackend(
        tool_reply(
            ("search_logs", {**service, "query": "", "minutes": 30, "level": "error"}),
            ("query_metrics", {**service, "metric": "disk_used_pct", "minutes": 30}),
            text="Errors on search-indexer: read its error logs and disk.",
        ),
        # The model reaches for a fix itself (the wrong one): code decides from the evidence.
        tool_reply(("restart_service", {**service, "reason": "restart fixes everything"})),
    )
    monkeypatch.setattr(engine, "backend_for", lambda config: model)
    ticket, run = open_incident(personas.tenant, "disk_full")
    assert drive(run) == "parked"
    assert len(model.requests) == 2
    assert "restart_service" in model.requests[0]["tools"]
    request = pending(personas.tenant)
    assert request.action == "clear_cache"  # the supported hypothesis, not the model's pick
    assert request.evidence["hypothesis"]["title"] == "a full disk"
    decide(request=request, actor=personas.reviewer, approve=True)
    assert drive(run) == "succeeded"
    ticket.refresh_from_db()
    assert ticket.status == "resolved"


def test_the_sandbox_services_tab_shows_the_fault_and_its_clearing(personas, client_for):
    generate_incident(tenant=personas.tenant, actor=None, scenario="disk_full", start_agent=False)
    body = client_for(personas.agent).get("/sandbox/?tab=services").content.decode()
    assert "search-indexer" in body and "disk_full" in body
    assert (
        "search-indexer"
        not in client_for(personas.outsider).get("/sandbox/?tab=services").content.decode()
    )
