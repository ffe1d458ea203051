"""Agent runs through a real broker and real Celery worker processes, with the offline model.

The first test is the product's promise: a requester writes "I'm locked out of my account",
and without anyone touching it the ticket is triaged, checked, resolved and the sandbox
directory shows the account unlocked. The second kills the worker with SIGKILL in the middle
of the resolve step, after the connector applied the change, and proves that the run resumes
on another worker and that nothing is applied twice.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from agentops.celery import app as celery_app
from agents import engine
from agents.connectors.sandbox.models import DirectoryUser, Operation
from agents.engine import agent_config
from agents.models import Run, ToolCall
from incidents.models import Ticket
from incidents.services import ticket_create

pytestmark = pytest.mark.worker


@pytest.fixture
def real_delivery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


@pytest.fixture
def locked_requester(personas):
    config = agent_config(personas.tenant)
    config.auto_resolve_on_create = True
    config.llm_backend = "offline"
    config.save()
    return DirectoryUser.objects.create(
        tenant=personas.tenant,
        email=personas.requester.email,
        display_name="Robin",
        locked=True,
        failed_login_attempts=5,
    )


def wait_for(predicate, timeout=40.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def finished_run(tenant, number):
    run = Run.objects.for_tenant(tenant).filter(subject_id=number).first()
    return run if run is not None and not run.is_active else None


def metric(client, line_start: str) -> float:
    """The value of one sample on /metrics (0 when absent)."""
    for line in client.get("/metrics").content.decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_locked_out_ticket_is_resolved_by_the_agent_on_a_real_worker(
    worker_factory, real_delivery, personas, locked_requester, client
):
    unlocks = 'tool_executions_total{status="success",tool="unlock_account"}'
    before = metric(client, unlocks)
    # The chain's time budget (5 s) is not what this test is about: on a loaded machine the
    # cold worker's first run can outlast it and be handed on once, a second delivery.
    worker = worker_factory(RUN_CHAIN_SECONDS="600")
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="I'm locked out of my account",
        description="It says my account is locked after I typed an old password on my phone.",
        source="portal",
    )
    run = wait_for(lambda: finished_run(personas.tenant, ticket.number))
    assert run.status == "succeeded", (run.error_message, worker.log())
    assert [s.state for s in run.steps.order_by("seq")] == [
        "triage",
        "diagnose",
        "plan",
        "compliance",
        "resolve",
    ]
    locked_requester.refresh_from_db()
    assert locked_requester.locked is False
    ticket.refresh_from_db()
    assert ticket.status == "resolved" and ticket.category == "access"
    assert run.deliveries == 1  # one task went through all five checkpointed states
    # The worker process counted the tool call; the web process's /metrics adds it up.
    assert metric(client, unlocks) == before + 1
    body = client.get("/metrics").content.decode()
    assert 'agent_requests_total{agent="service_desk",state="resolve",status="success"}' in body
    assert "active_workflows" in body and "agent_latency_seconds_bucket" in body


def test_sigkill_mid_step_resumes_on_another_worker_and_applies_nothing_twice(
    worker_factory, real_delivery, personas, locked_requester
):
    doomed = worker_factory("doomed", AGENTOPS_FAULT_SLEEP_AFTER_TOOL="60", RUN_LEASE_SECONDS="2")
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="I'm locked out of my account",
        source="portal",
    )
    # The connector has applied the unlock; the worker now sleeps before recording it.
    wait_for(
        lambda: (
            Operation.objects.for_tenant(personas.tenant)
            .filter(operation="unlock_account")
            .exists()
        )
    )
    call = ToolCall.objects.for_tenant(personas.tenant).get(tool_name="unlock_account")
    assert call.status == "running"
    os.killpg(doomed.process.pid, signal.SIGKILL)
    doomed.process.wait(timeout=10)
    run = Run.objects.for_tenant(personas.tenant).get(subject_id=ticket.number)
    assert run.status == "running" and run.state == "resolve"

    worker_factory("rescuer")
    # The lease (2 s) expires; the watchdog (a beat task in production) hands the run on.
    wait_for(lambda: engine.watchdog() > 0, timeout=15, interval=0.5)
    run = wait_for(lambda: finished_run(personas.tenant, ticket.number))
    assert run.status == "succeeded", run.error_message
    assert (
        Operation.objects.for_tenant(personas.tenant).filter(operation="unlock_account").count()
        == 1
    )
    call.refresh_from_db()
    assert call.status == "success" and call.retries == 1 and call.verified
    assert ToolCall.objects.for_tenant(personas.tenant).filter(run=run).count() == 1
    assert Ticket.objects.for_tenant(personas.tenant).get(pk=ticket.pk).status == "resolved"


def test_rejected_action_escalates_the_parked_run_on_a_real_worker(
    worker_factory, real_delivery, personas
):
    """Resume the other way: a reviewer rejects; the worker escalates; nothing was applied."""
    from approvals.models import ApprovalRequest
    from approvals.services import decide

    config = agent_config(personas.tenant)
    config.auto_resolve_on_create = True
    config.llm_backend = "offline"
    config.save()
    DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="Robin"
    )
    worker = worker_factory()
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="Need admin rights on my workstation",
        description="Please grant me local admin rights so I can install developer tools myself.",
        source="portal",
    )
    wait_for(
        lambda: (
            Run.objects.for_tenant(personas.tenant)
            .filter(subject_id=ticket.number, status="waiting_approval")
            .exists()
        )
    )
    request = ApprovalRequest.objects.for_tenant(personas.tenant).get(status="pending")
    decide(
        request=request, actor=personas.reviewer, approve=False, comment="Not without a manager."
    )
    run = wait_for(lambda: finished_run(personas.tenant, ticket.number))
    assert run.status == "escalated", (run.error_message, worker.log())
    call = ToolCall.objects.for_tenant(personas.tenant).get(run=run)
    assert call.tool_name == "grant_admin_access" and call.status == "rejected"
    assert "Not without a manager." in call.policy_reason
    assert not Operation.objects.for_tenant(personas.tenant).exists()  # no connector call
    ticket.refresh_from_db()
    assert ticket.status == "escalated"
    # One task up to the park, one after the decision (each chained its states).
    assert run.deliveries == 2
