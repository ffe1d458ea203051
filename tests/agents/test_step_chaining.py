"""A worker's task goes straight on to a run's next state (engine.advance(chain=True)): every
state is still checkpointed, but the claim, the broker message and the delivery between two
states are gone. The chain stops where a run parks or ends, at the tenant's step limit, when a
cancel arrives, and after RUN_CHAIN_SECONDS."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import blueprints, engine, services
from agents.blueprints import DONE, Blueprint, Outcome
from agents.connectors.sandbox.models import DirectoryUser, LogLine
from agents.models import AgentConfig, Run, Step


@pytest.fixture
def probe_run(personas):
    from agentops.models import Membership

    DirectoryUser.objects.create(
        tenant=personas.tenant, email="kim@acme.test", display_name="Kim", locked=True
    )
    LogLine.objects.create(
        tenant=personas.tenant, service="auth", level="warning", message="kim locked after 5 tries"
    )
    membership = Membership.objects.select_related("tenant", "user").get(
        user=personas.agent, tenant=personas.tenant
    )
    return services.start_blueprint(
        membership=membership, blueprint="probe", subject_id="kim@acme.test"
    )


def steps(run):
    return list(Step.objects.for_tenant(run.tenant).filter(run=run).order_by("seq"))


def test_one_task_runs_every_state_until_the_run_parks_with_one_claim(probe_run):
    with CaptureQueriesContext(connection) as queries:
        assert engine.advance(probe_run.pk, chain=True) == "parked"
    run = Run.objects.for_tenant(probe_run.tenant).get(pk=probe_run.pk)
    recorded = steps(run)
    assert run.status == "waiting_approval" and run.deliveries == 1
    assert len(recorded) == run.step_count >= 3
    assert [s.seq for s in recorded] == list(range(1, run.step_count + 1))
    # Each state was checkpointed with its own record; none is left running.
    assert all(s.status in ("success", "waiting") and s.ended_at for s in recorded)
    assert [s.step_id for s in recorded][:2] == ["step-001", "step-002"]
    assert recorded[1].name == blueprints.get("probe").step_name(recorded[1].state)
    claims = [q for q in queries.captured_queries if "WITH claimed AS" in q["sql"]]
    assert len(claims) == 1  # the later states were opened by the checkpoints
    assert run.lease_expires_at is None  # parked: nobody holds it


def test_without_a_chain_budget_a_task_runs_one_state_and_hands_the_run_back(probe_run, settings):
    settings.RUN_CHAIN_SECONDS = 0
    assert engine.advance(probe_run.pk, chain=True) == "advanced"
    run = Run.objects.for_tenant(probe_run.tenant).get(pk=probe_run.pk)
    assert run.step_count == 1 and len(steps(run)) == 1
    assert run.status == "running" and run.lease_expires_at is None  # free for the next task


def test_the_chain_stops_at_the_tenant_step_limit(probe_run, personas):
    AgentConfig.objects.for_tenant(personas.tenant).update(max_steps=2)
    assert engine.advance(probe_run.pk, chain=True) == "advanced"
    run = Run.objects.for_tenant(probe_run.tenant).get(pk=probe_run.pk)
    assert run.step_count == 2 and len(steps(run)) == 2
    assert run.lease_expires_at is None
    assert engine.advance(probe_run.pk) == "failed"  # the next claim enforces the limit
    assert (
        "max_steps" in Run.objects.for_tenant(probe_run.tenant).get(pk=probe_run.pk).error_message
    )


class CancelledMidStep(Blueprint):
    """Its first state is where a person's cancel arrives (as request_cancel leaves it for a
    running step: the flag only)."""

    name = "cancelled_mid_step"
    initial = "first"
    states = {"first": "First", "second": "Second"}
    transitions = {"first": ("second",), "second": (DONE,)}

    def state_first(self, ctx) -> Outcome:
        Run.objects.for_tenant(ctx.tenant).filter(pk=ctx.run.pk).update(cancel_requested=True)
        return Outcome("second", summary="first done")

    def state_second(self, ctx) -> Outcome:  # pragma: no cover - must never run
        raise AssertionError("a cancelled run went on")


@pytest.fixture
def cancelling():
    blueprints.register(CancelledMidStep())
    yield
    blueprints.unregister("cancelled_mid_step")


def test_a_cancel_during_a_chained_state_stops_the_chain_and_the_next_claim_cancels(
    personas, cancelling, django_capture_on_commit_callbacks
):
    run = engine.start_run(
        tenant=personas.tenant, blueprint="cancelled_mid_step", actor=personas.agent
    )
    with django_capture_on_commit_callbacks() as sent:
        assert engine.advance(run.pk, chain=True) == "advanced"
    run.refresh_from_db()
    # The opened next step was taken back; the run is free and its task was sent again.
    assert [s.state for s in steps(run)] == ["first"]
    assert run.status == "running" and run.lease_expires_at is None
    assert len(sent) == 1
    assert engine.advance(run.pk, chain=True) == "cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled" and [s.state for s in steps(run)] == ["first"]
