"""§5.4 A poison task: the worker process exits in the middle of the resolve step, every time.

A supervisor restarts the worker after each death and the sweeper hands the run on once its
lease expired, as in production. After RUN_DEAD_LETTER_AFTER (3 here) lost deliveries the next
delivery dead-letters the step instead of running it: the run fails saying so, the ticket goes
to people with a note, and nothing loops (no further worker dies, nothing is re-sent).
"""

from __future__ import annotations

import time

import pytest

from agents.connectors.sandbox.models import Operation
from agents.models import Run, Step
from agents.sweeper import sweep
from incidents.models import Comment, Ticket
from tests.reliability.conftest import (
    Supervisor,
    agent_on_every_ticket,
    locked_requesters,
    open_locked_out_ticket,
)

pytestmark = pytest.mark.worker

LEASE = 2
DEAD_LETTER_AFTER = 3


def test_a_poison_step_is_dead_lettered_and_the_ticket_escalated(
    worker_factory, real_delivery, personas
):
    tenant = personas.tenant
    agent_on_every_ticket(tenant)
    [requester] = locked_requesters(tenant, 1)
    supervisor = Supervisor(
        worker_factory,
        size=1,
        env={
            "RUN_LEASE_SECONDS": str(LEASE),
            "RUN_DEAD_LETTER_AFTER": str(DEAD_LETTER_AFTER),
            "AGENTOPS_FAULT_EXIT_AFTER_TOOL": "1",
        },
    )
    supervisor.fill()
    ticket = open_locked_out_ticket(tenant, requester)
    deaths = 0
    deadline = time.monotonic() + 90
    run = None
    while time.monotonic() < deadline:
        run = Run.objects.for_tenant(tenant).get(subject_id=ticket.number)
        if not run.is_active:
            break
        if supervisor.workers[0].process.poll() is not None:
            deaths += 1
            supervisor.fill()  # the process manager restarts the dead worker
        sweep(grace_seconds=LEASE)
        time.sleep(0.3)
    assert run is not None and not run.is_active, supervisor.logs()

    assert run.status == "failed" and run.error_type == "DeadLettered", run.error_message
    assert "delivered 4 times" in run.error_message
    assert deaths == DEAD_LETTER_AFTER  # each lost delivery killed the worker once, no more
    resolve = Step.objects.for_tenant(tenant).get(run=run, state="resolve")
    assert resolve.status == "failure" and resolve.retries == DEAD_LETTER_AFTER
    ticket = Ticket.objects.for_tenant(tenant).get(pk=ticket.pk)
    assert ticket.status == "escalated"
    note = Comment.objects.for_tenant(tenant).filter(ticket=ticket).order_by("-id").first()
    assert note is not None and "DeadLettered" in note.body
    # The connector applied the unlock once, whatever the number of deliveries.
    assert Operation.objects.for_tenant(tenant).filter(operation="unlock_account").count() == 1

    # No loop: nothing is re-sent, the worker stays alive, the run stays failed.
    deliveries = run.deliveries
    time.sleep(LEASE + 1)
    assert sweep(grace_seconds=0) == []
    time.sleep(1)
    assert supervisor.workers[0].process.poll() is None
    run.refresh_from_db()
    assert run.status == "failed" and run.deliveries == deliveries
