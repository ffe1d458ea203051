"""The approval clock: SLA breaches (notified once), escalation per policy, expiry (never
approves), auto-assignment (least loaded, never the requester) and reviewer availability.

The clock is controlled: the SLA pass takes ``now=``; requests are opened at the real time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from agentops.models import AuditEvent, Notification, Role
from agents.connectors.sandbox.models import DirectoryUser
from agents.models import ToolCall
from approvals import handlers, services
from approvals.models import (
    ApprovalRequest,
    ApprovalSettings,
    EscalationPolicy,
    EscalationRule,
)
from tests.approvals.conftest import drive
from tests.conftest import make_user

HTMX = {"HTTP_HX_REQUEST": "true"}
CALLS: list[tuple[int, str]] = []


def _record(request):
    CALLS.append((request.pk, request.status))


handlers.register("tests.sla", _record)


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()


def open_request(tenant, *, priority="high", requested_by=None, action="grant_admin_access", **kw):
    return services.request_approval(
        tenant=tenant,
        handler="tests.sla",
        handler_ref="1",
        subject_type="test",
        subject_id="1",
        subject_repr="Test subject",
        action=action,
        arguments={"user_email": "x@acme.example"},
        priority=priority,
        requested_by=requested_by,
        **kw,
    )


def audit_count(tenant, action, pk) -> int:
    return AuditEvent.objects.for_tenant(tenant).filter(action=action, target_id=str(pk)).count()


def notes(tenant, user, verb=None):
    qs = Notification.objects.for_tenant(tenant).filter(user=user)
    return list(qs.filter(verb=verb) if verb else qs)


def test_the_sla_clock_runs_every_minute_in_beat():
    entries = {e["task"]: e for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "approvals.tasks.check_approval_slas" in entries


# --------------------------------------------------------------------------- SLA and escalation


def test_breach_is_notified_once_then_escalated_per_policy_with_priority_raised(
    personas, client_for, django_capture_on_commit_callbacks
):
    tenant = personas.tenant
    request = open_request(tenant, requested_by=personas.agent)
    # Least loaded, ties by id: ada (admin) was created before riley (reviewer).
    assert request.assigned_to == personas.admin
    assert request.sla_due == request.created_at + timedelta(hours=4)  # high: 4 h by default
    policy = EscalationPolicy.objects.create(tenant=tenant, name="Access requests")
    EscalationRule.objects.create(
        tenant=tenant,
        policy=policy,
        order=1,
        action_pattern="grant_*",
        after_minutes=30,
        target=EscalationRule.Target.USER,
        user=personas.reviewer,
        raise_priority=True,
    )
    due = request.sla_due

    # Not due yet: nothing.
    assert services.check_sla(now=due - timedelta(minutes=1)) == {
        "expired": 0,
        "breached": 0,
        "escalated": 0,
    }
    # Breached: flagged once, the assignee is told by e-mail and in the console.
    for minute in (1, 2, 3):  # the beat runs every minute: one notification only
        with django_capture_on_commit_callbacks(execute=True):
            services.check_sla(now=due + timedelta(minutes=minute))
    request.refresh_from_db()
    assert request.breached_at == due + timedelta(minutes=1)
    assert request.status == "pending" and request.assigned_to == personas.admin
    assert len(notes(tenant, personas.admin, "approval.breached")) == 1
    assert [m.to for m in mail.outbox] == [[personas.admin.email]]
    assert "SLA breached: grant_admin_access" in mail.outbox[0].subject
    assert f"/approvals/{request.pk}/" in mail.outbox[0].body
    assert audit_count(tenant, "approval.sla_breached", request.pk) == 1

    # 30 minutes past due: the policy's step applies — riley, critical, a new 1 h clock.
    later = due + timedelta(minutes=31)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.check_sla(now=later)["escalated"] == 1
        assert services.check_sla(now=later + timedelta(minutes=1))["escalated"] == 0
    request.refresh_from_db()
    assert request.assigned_to == personas.reviewer
    assert request.priority == "critical" and request.escalation_level == 1
    assert request.sla_due == later + timedelta(hours=1)
    assert request.breached_at == due + timedelta(minutes=1)  # breached once, kept
    assert len(notes(tenant, personas.reviewer, "approval.escalated")) == 1
    assert [m.to for m in mail.outbox][1:] == [[personas.reviewer.email]]
    assert audit_count(tenant, "approval.escalated", request.pk) == 1
    # The chain has one step: overdue again later, nothing more happens (but no new breach).
    with django_capture_on_commit_callbacks(execute=True):
        services.check_sla(now=later + timedelta(hours=2))
    request.refresh_from_db()
    assert request.escalation_level == 1 and len(mail.outbox) == 2
    assert len(notes(tenant, personas.admin, "approval.breached")) == 1

    # The queue shows it as breached (and escalated) under "breached" for riley.
    html = client_for(personas.reviewer).get("/approvals/", {"filter": "breached"}).content
    assert f'id="approval-{request.pk}"'.encode() in html
    assert b"SLA breached" in html and b"escalated" in html


def test_escalation_to_least_loaded_and_to_admins(personas, django_capture_on_commit_callbacks):
    tenant = personas.tenant
    rev2 = make_user("remy", tenant, Role.REVIEWER)
    admin2 = make_user("alba", tenant, Role.ADMIN)
    policy = EscalationPolicy.objects.create(tenant=tenant)
    EscalationRule.objects.create(tenant=tenant, policy=policy, order=1, priority="low")
    EscalationRule.objects.create(
        tenant=tenant,
        policy=policy,
        order=2,
        priority="low",
        target=EscalationRule.Target.ADMINS,
        raise_priority=True,
    )
    request = open_request(tenant, priority="low", requested_by=personas.admin)
    assert request.assigned_to == personas.reviewer  # ada requested it: riley is next by id
    # Give rev2 work so the least-loaded step picks admin2 (0 pending, not the assignee).
    for _ in range(2):
        busy = open_request(tenant, priority="low", auto_assign=False)
        ApprovalRequest.objects.for_tenant(tenant).filter(pk=busy.pk).update(
            assigned_to=rev2, sla_due=busy.sla_due + timedelta(days=30), expires_at=None
        )
    first = request.sla_due + timedelta(minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.check_sla(now=first)
    request.refresh_from_db()
    assert request.escalation_level == 1 and request.assigned_to == admin2
    assert request.priority == "low"  # this step does not raise it
    second = request.sla_due + timedelta(minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.check_sla(now=second)
    request.refresh_from_db()
    # To the admins: never ada (she requested it), the other admin is the assignee already →
    # stays with an admin; every admin but the requester is told.
    assert request.escalation_level == 2 and request.priority == "medium"
    assert request.assigned_to == admin2
    assert notes(tenant, personas.admin, "approval.escalated") == []
    assert len(notes(tenant, admin2, "approval.escalated")) == 2


def test_tenant_sla_hours_are_a_setting(personas):
    ApprovalSettings.objects.create(
        tenant=personas.tenant, sla_hours={"high": 2, "low": 48}, expiry_factor=0
    )
    high = open_request(personas.tenant, priority="high")
    low = open_request(personas.tenant, priority="low")
    other = open_request(personas.other_tenant, priority="high")
    assert high.sla_due - high.created_at == timedelta(hours=2)
    assert low.sla_due - low.created_at == timedelta(hours=48)
    assert high.expires_at is None  # expiry_factor 0: never expires
    assert other.sla_due - other.created_at == timedelta(hours=4)  # the defaults
    assert other.expires_at - other.created_at == timedelta(hours=12)  # 3 x SLA


# --------------------------------------------------------------------------- expiry


def test_expiry_never_approves_and_the_handler_hears_it(
    personas, django_capture_on_commit_callbacks
):
    request = open_request(personas.tenant, requested_by=personas.agent)
    assert request.expires_at == request.created_at + timedelta(hours=12)
    late = request.expires_at + timedelta(seconds=1)
    # Past the deadline, before the beat ran: too late to decide, nothing changes.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timezone, "now", lambda: late)
        with pytest.raises(services.DecisionConflict, match="expired"):
            services.decide(request=request, actor=personas.reviewer, approve=True)
    request.refresh_from_db()
    assert request.status == "pending" and CALLS == []
    with django_capture_on_commit_callbacks(execute=True):
        assert services.check_sla(now=late)["expired"] == 1
        assert services.check_sla(now=late + timedelta(minutes=1))["expired"] == 0
    request.refresh_from_db()
    assert request.status == "expired" and request.decided_by is None
    assert request.edited_arguments is None
    assert [(request.pk, "expired")] == CALLS  # called once, with the expiry
    assert audit_count(personas.tenant, "approval.expired", request.pk) == 1
    assert audit_count(personas.tenant, "approval.approved", request.pk) == 0
    assert len(notes(personas.tenant, request.assigned_to, "approval.expired")) == 1
    with pytest.raises(services.DecisionConflict, match="already expired"):
        services.decide(request=request, actor=personas.reviewer, approve=True)


def test_an_expired_approval_sends_the_parked_run_to_a_person(personas, parked):
    ticket, run, approval = parked
    services.check_sla(now=approval.expires_at + timedelta(seconds=1))
    approval.refresh_from_db()
    assert approval.status == "expired"
    run.refresh_from_db()
    assert run.status == "queued" and run.state == "escalate"
    drive(run)
    call = run.tool_calls.get()
    assert call.status == ToolCall.Status.REJECTED and "expired" in call.policy_reason
    assert DirectoryUser.objects.for_tenant(personas.tenant).get().is_admin is False
    ticket.refresh_from_db()
    assert ticket.status == "escalated"
    assert "not approved" in run.state_data["escalation_reason"]


# --------------------------------------------------------------------------- assignment


def test_auto_assignment_is_least_loaded_and_never_the_requester(personas):
    tenant = personas.tenant
    rev2 = make_user("remy", tenant, Role.REVIEWER)
    ada, riley = personas.admin, personas.reviewer
    for user, count in ((ada, 2), (riley, 1)):
        for _ in range(count):
            r = open_request(tenant, auto_assign=False)
            ApprovalRequest.objects.for_tenant(tenant).filter(pk=r.pk).update(assigned_to=user)
    decided = open_request(tenant, auto_assign=False)
    ApprovalRequest.objects.for_tenant(tenant).filter(pk=decided.pk).update(assigned_to=rev2)
    services.decide(request=decided, actor=ada, approve=True)  # decided: no load
    assert services.reviewers_by_load(tenant) == [(rev2.pk, 0), (riley.pk, 1), (ada.pk, 2)]
    # Never the requester, even when least loaded (remy: 0 pending).
    assert open_request(tenant, requested_by=rev2).assigned_to == riley
    assert open_request(tenant).assigned_to == rev2  # 0 pending
    assert open_request(tenant).assigned_to == rev2  # remy 1, riley 2, ada 2
    assert open_request(tenant).assigned_to == ada  # all at 2: the lowest id
    # Agents and auditors never decide, so they are never assigned.
    assigned = set(ApprovalRequest.objects.for_tenant(tenant).values_list("assigned_to", flat=True))
    assert personas.agent.pk not in assigned and personas.auditor.pk not in assigned
    # The other tenant's reviewers are not candidates.
    assert open_request(personas.other_tenant).assigned_to is None


def test_availability_is_respected(personas, client_for):
    tenant = personas.tenant
    ada, riley = personas.admin, personas.reviewer
    services.set_availability(tenant=tenant, user=ada, actor=ada, away=True)
    assert open_request(tenant).assigned_to == riley
    assert open_request(tenant).assigned_to == riley  # ada is away: riley takes everything
    # riley goes away from the queue page; now nobody is available → unassigned.
    client = client_for(riley)
    response = client.post(reverse("approvals:availability"), {"away": "1"}, **HTMX)
    assert response.status_code == 200 and "I'm available" in response.content.decode()
    nobody = open_request(tenant)
    assert nobody.assigned_to is None
    html = client.get("/approvals/", {"filter": "unassigned"}).content.decode()
    assert f'id="approval-{nobody.pk}"' in html
    # Away until a time in the past is available again; a past time cannot be chosen.
    past = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        reverse("approvals:availability"), {"away": "1", "away_until": past}, **HTMX
    )
    assert response.status_code == 400 and "in the future" in response.content.decode()
    soon = timezone.now() + timedelta(hours=2)
    services.set_availability(tenant=tenant, user=ada, actor=ada, away=True, away_until=soon)
    assert services.is_available(ada, tenant) is False
    assert services.is_available(ada, tenant, now=soon + timedelta(seconds=1)) is True
    response = client.post(reverse("approvals:availability"), {"away": "0"}, **HTMX)
    assert response.status_code == 200 and "Mark me away" in response.content.decode()
    assert open_request(tenant).assigned_to == riley
    assert AuditEvent.objects.for_tenant(tenant).filter(action="approval.availability").count()


@pytest.mark.django_db(transaction=True)
def test_concurrent_creation_spreads_the_load_evenly(personas):
    tenant = personas.tenant
    reviewers = [personas.admin, personas.reviewer, make_user("remy", tenant, Role.REVIEWER)]
    threads = 9
    barrier = Barrier(threads)

    def create(_):
        barrier.wait()
        try:
            return open_request(tenant).assigned_to_id
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        assigned = list(pool.map(create, range(threads)))
    assert sorted(assigned) == sorted([r.pk for r in reviewers] * 3)
