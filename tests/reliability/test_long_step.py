"""§5.5 A step longer than the lease: never two concurrent executions of one run.

The worker running the resolve step pauses 7 s after the connector acted, more than three
times its 2 s lease. Meanwhile the sweeper runs with no grace at all and the broker delivers
duplicate messages for the run to a second, idle worker (at-least-once delivery does that).
The lease heartbeat keeps the lease ahead of the clock, so the run is never claimed twice:
every step was claimed exactly once and opened once, and the connector acted once.
"""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.utils import timezone

from agents.connectors.sandbox.models import Operation
from agents.models import Run, Step, ToolCall
from agents.resilience import redis_client
from agents.sweeper import sweep
from agents.tasks import advance_run_task
from tests.reliability.conftest import (
    agent_on_every_ticket,
    locked_requesters,
    open_locked_out_ticket,
    wait_for,
)

pytestmark = pytest.mark.worker

LEASE = 2
STEP_PAUSE = 7


def test_a_step_longer_than_its_lease_is_never_run_twice_at_once(
    worker_factory, real_delivery, personas
):
    tenant = personas.tenant
    agent_on_every_ticket(tenant)
    agent_on_every_ticket(personas.other_tenant)
    [requester] = locked_requesters(tenant, 1)
    slow = worker_factory(
        "slow", RUN_LEASE_SECONDS=str(LEASE), AGENTOPS_FAULT_SLEEP_AFTER_TOOL=str(STEP_PAUSE)
    )
    ticket = open_locked_out_ticket(tenant, requester)
    wait_for(
        lambda: Operation.objects.for_tenant(tenant).filter(operation="unlock_account").exists(),
        what="the connector to act in the resolve step",
    )
    idle = worker_factory("idle", RUN_LEASE_SECONDS=str(LEASE))
    run = Run.objects.for_tenant(tenant).get(subject_id=ticket.number)
    queue = settings.CELERY_TASK_DEFAULT_QUEUE

    # While the long step runs: sweep with no grace and send duplicates, past 3 leases.
    checked_past_lease = 0
    claimed_at = run.updated_at
    while Run.objects.for_tenant(tenant).get(pk=run.pk).is_active:
        current = Run.objects.for_tenant(tenant).get(pk=run.pk)
        if current.state == "resolve" and current.status == "running":
            assert sweep(grace_seconds=0) == []  # a live step's lease is never expired
            advance_run_task.delay(run.pk)  # a duplicate delivery, taken by the idle worker
            if (timezone.now() - claimed_at).total_seconds() > LEASE + 1:
                assert current.lease_expires_at > timezone.now()  # renewed by the heartbeat
                checked_past_lease += 1
        time.sleep(0.5)
    wait_for(lambda: redis_client().llen(queue) == 0, what="the idle worker to drain duplicates")

    run.refresh_from_db()
    assert run.status == "succeeded", (run.error_message, slow.log(), idle.log())
    assert checked_past_lease >= 3  # the test really looked while the step outlived its lease
    steps = list(Step.objects.for_tenant(tenant).filter(run=run))
    assert [s.state for s in steps] == ["triage", "diagnose", "plan", "compliance", "resolve"]
    # One task chained the steps: no duplicate delivery ever got a claim.
    assert run.deliveries == 1 and run.step_count == len(steps)
    assert [s.retries for s in steps] == [0] * len(steps)  # and opened once
    call = ToolCall.objects.for_tenant(tenant).get(run=run)
    assert call.retries == 0 and call.status == "success"
    assert Operation.objects.for_tenant(tenant).filter(operation="unlock_account").count() == 1
