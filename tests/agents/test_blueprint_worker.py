"""A loop blueprint on real Celery workers: every turn through the broker (chaining off), a decision resumes it,
and a worker killed right after the tool acted loses nothing and repeats nothing."""

from __future__ import annotations

import os
import signal

import pytest

from agentops.models import Membership
from agents import engine, services
from agents.connectors.sandbox.models import DirectoryUser, LogLine, Operation
from agents.models import Run, ToolCall
from approvals.models import ApprovalRequest
from approvals.services import decide
from tests.agents.test_run_worker import wait_for

pytestmark = pytest.mark.worker


def run_in(tenant, status):
    return Run.objects.for_tenant(tenant).filter(agent_name="probe", status=status).first()


def test_a_worker_killed_after_the_unlock_resumes_elsewhere_and_unlocks_once(
    worker_factory, real_delivery, personas
):
    kim = DirectoryUser.objects.create(
        tenant=personas.tenant, email="kim@acme.test", display_name="Kim", locked=True
    )
    LogLine.objects.create(
        tenant=personas.tenant, service="auth", level="warning", message="locked"
    )
    first = worker_factory("first", RUN_CHAIN_SECONDS="0")  # no chaining: each turn a task
    membership = Membership.objects.select_related("tenant", "user").get(
        user=personas.agent, tenant=personas.tenant
    )
    services.start_blueprint(membership=membership, blueprint="probe", subject_id=kim.email)
    run = wait_for(lambda: run_in(personas.tenant, "waiting_approval"))
    assert run.deliveries == run.step_count == 5  # one task per checkpoint, through the broker
    first.stop()

    doomed = worker_factory("doomed", AGENTOPS_FAULT_SLEEP_AFTER_TOOL="60", RUN_LEASE_SECONDS="2")
    request = ApprovalRequest.objects.for_tenant(personas.tenant).get(status="pending")
    decide(request=request, actor=personas.reviewer, approve=True)
    wait_for(
        lambda: (
            Operation.objects.for_tenant(personas.tenant)
            .filter(operation="unlock_account")
            .exists()
        )
    )
    os.killpg(doomed.process.pid, signal.SIGKILL)
    doomed.process.wait(timeout=10)
    call = ToolCall.objects.for_tenant(personas.tenant).get(tool_name="unlock_account")
    assert call.status == "running"

    worker_factory("rescuer")
    wait_for(lambda: engine.watchdog() > 0, timeout=15, interval=0.5)
    run = wait_for(lambda: run_in(personas.tenant, "succeeded"))
    assert run.result["summary"] == "kim@acme.test: unlocked."
    assert (
        Operation.objects.for_tenant(personas.tenant).filter(operation="unlock_account").count()
        == 1
    )
    call.refresh_from_db()
    assert call.status == "success" and call.retries == 1 and call.verified
    kim.refresh_from_db()
    assert kim.locked is False
