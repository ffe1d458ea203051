"""An incident on a real Celery worker: generated, diagnosed, remediated after a reviewer's
approval and resolved, every step through the broker."""

from __future__ import annotations

import pytest

from agentops.celery import app as celery_app
from agents.engine import agent_config
from agents.models import Run
from approvals.models import ApprovalRequest
from approvals.services import decide
from incidents.incident_scenarios import generate_incident
from incidents.models import Ticket
from tests.agents.test_run_worker import wait_for

pytestmark = pytest.mark.worker


@pytest.fixture
def real_delivery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


def run_in(tenant, status):
    return (
        Run.objects.for_tenant(tenant).filter(agent_name="incident_response", status=status).first()
    )


def test_a_bad_deploy_is_rolled_back_and_resolved_on_a_real_worker(
    worker_factory, real_delivery, personas
):
    config = agent_config(personas.tenant)
    config.llm_backend = "offline"
    config.save()
    worker_factory()
    ticket = generate_incident(tenant=personas.tenant, actor=None, scenario="bad_deploy")
    run = wait_for(lambda: run_in(personas.tenant, "waiting_approval"))
    # One task chained every state up to the approval (each checkpointed).
    assert run.deliveries == 1 and run.step_count > 1
    request = ApprovalRequest.objects.for_tenant(personas.tenant).get(status="pending")
    assert request.action == "rollback_deploy"
    assert request.arguments["to_version"] == "4.2.0"
    decide(request=request, actor=personas.reviewer, approve=True)
    run = wait_for(lambda: run_in(personas.tenant, "succeeded"))
    assert run.result["report"]["root_cause"]["fault"] == "bad_deploy"
    ticket = Ticket.objects.for_tenant(personas.tenant).get(pk=ticket.pk)
    assert ticket.status == "resolved" and "Root cause: a bad deploy" in ticket.resolution_notes
