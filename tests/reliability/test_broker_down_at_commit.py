"""§5.3 The broker is down when a ticket commits: the ticket and its run's task intent are
stored together or not at all (the run row is the outbox, agents.outbox), the person gets a
201, and the task runs when the broker is back (the sweeper sends it)."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.db import transaction

from agentops import localservices
from agentops.services import api_token_create
from agents.models import Run
from agents.resilience import redis_client
from agents.sweeper import sweep
from incidents.models import Ticket
from tests.reliability.conftest import (
    agent_on_every_ticket,
    locked_requesters,
    open_locked_out_ticket,
    reconnect,
    wait_for,
)

pytestmark = pytest.mark.worker


@pytest.fixture
def broker_down():
    if not localservices.uses_local_redis():
        pytest.fail("this test stops the embedded Redis; unset REDIS_URL", pytrace=False)
    localservices.stop_redis()
    try:
        yield
    finally:
        localservices.ensure_redis()
        reconnect()


def test_a_ticket_opened_while_the_broker_is_down_runs_when_it_returns(
    worker_factory, real_delivery, personas, client, broker_down
):
    tenant = personas.tenant
    agent_on_every_ticket(tenant)
    agent_on_every_ticket(personas.other_tenant)
    [requester] = locked_requesters(tenant, 1)
    _, token = api_token_create(tenant=tenant, user=requester)

    started = time.monotonic()
    response = client.post(
        "/api/v1/tickets",
        data={"title": "I'm locked out of my account", "description": "Locked after a typo."},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 201, response.content  # not a 500 after the commit
    assert time.monotonic() - started < 30  # the request did not hang on the broker
    number = response.json()["number"]
    ticket = Ticket.objects.for_tenant(tenant).get(number=number)
    run = Run.objects.for_tenant(tenant).get(subject_id=number)
    assert run.status == "queued" and run.step_count == 0  # the intent, stored with the ticket
    assert sweep(grace_seconds=0) == []  # the sweeper cannot send it yet either…
    run.refresh_from_db()
    assert run.status == "queued"

    localservices.ensure_redis()  # the broker returns
    reconnect()
    worker = worker_factory("after-outage")
    # …and sends it once the broker is back (beat would do this within RUN_SWEEP_EVERY_SECONDS).
    wait_for(lambda: sweep(grace_seconds=0) == [run.pk], timeout=20, what="the sweep")
    run = wait_for(
        lambda: Run.objects.for_tenant(tenant).filter(pk=run.pk, status="succeeded").first(),
        what="the run to finish",
    )
    # The straight path (triage, diagnose, plan, compliance, resolve), chained by one task.
    assert (run.deliveries, run.step_count) == (1, 5), worker.log()
    ticket.refresh_from_db()
    assert ticket.status == "resolved"


def test_a_ticket_whose_transaction_fails_leaves_neither_ticket_nor_intent(
    worker_factory, real_delivery, personas
):
    tenant = personas.tenant
    agent_on_every_ticket(tenant)
    [requester] = locked_requesters(tenant, 1)
    worker_factory("w")
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    with pytest.raises(RuntimeError), transaction.atomic():
        ticket = open_locked_out_ticket(tenant, requester)
        assert Run.objects.for_tenant(tenant).filter(subject_id=ticket.number).exists()
        raise RuntimeError("the database refused the commit")
    assert not Ticket.objects.for_tenant(tenant).exists()
    assert not Run.objects.for_tenant(tenant).exists()
    assert redis_client().llen(queue) == 0  # and no task for a run that never existed
    assert sweep(grace_seconds=0) == []
