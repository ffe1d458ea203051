"""Fixtures of the approvals tests: the scripted model and a service-desk run parked on an
approval (optionally for a ticket in a queue)."""

from __future__ import annotations

import pytest

from agents import engine
from agents.connectors.sandbox.models import DirectoryUser
from approvals.models import ApprovalRequest
from incidents.services import ticket_create, ticket_start_agent
from tests.agents.scripted import ScriptedBackend, tool_reply, triage_reply


@pytest.fixture
def model(monkeypatch):
    backend = ScriptedBackend()
    monkeypatch.setattr(engine, "backend_for", lambda config: backend)
    return backend


@pytest.fixture
def park(personas, model):
    """``park(queue=None, step_detail=None)`` → (ticket, run, approval): a service-desk run
    parked on grant_admin_access, waiting for a reviewer."""

    def factory(*, queue=None, step_detail: dict | None = None):
        if not DirectoryUser.objects.for_tenant(personas.tenant).exists():
            DirectoryUser.objects.create(
                tenant=personas.tenant, email=personas.requester.email, display_name="Robin"
            )
        args = {"user_email": personas.requester.email, "reason": "Needs developer tools"}
        model.responses += [triage_reply(), tool_reply(("grant_admin_access", args))]
        ticket = ticket_create(
            tenant=personas.tenant,
            actor=personas.requester,
            title="Need admin",
            description="Please <script>alert('pwn')</script> grant me admin",
            start_agent=False,
        )
        if queue is not None:
            type(ticket).objects.for_tenant(personas.tenant).filter(pk=ticket.pk).update(
                queue=queue
            )
            ticket.queue = queue
        run = ticket_start_agent(ticket=ticket, actor=personas.requester)
        while engine.advance(run.pk) == "advanced":
            if step_detail:  # what a knowledge step would have written (citations)
                run.steps.filter(seq=1).update(detail=step_detail)
        run.refresh_from_db()
        assert run.status == "waiting_approval"
        approval = (
            ApprovalRequest.objects.for_tenant(personas.tenant)
            .filter(subject_type="run", subject_id=str(run.pk))
            .get()
        )
        return ticket, run, approval

    return factory


@pytest.fixture
def parked(park):
    """A service-desk run parked on grant_admin_access, waiting for a reviewer."""
    return park()


def drive(run):
    while engine.advance(run.pk) in ("advanced", "model-retry"):
        pass
    run.refresh_from_db()
