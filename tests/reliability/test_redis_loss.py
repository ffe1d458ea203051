"""§5.2 Redis restarted mid-run, and (the negative control) flushed mid-run: PostgreSQL's
sweeper sends every unfinished run again, and no run is lost.

Restart: Redis goes down for two seconds while ten runs (two tenants) are in flight, then comes
back with what it saved. Steps that finish meanwhile cannot publish their next task (the outbox
logs it and carries on); the worker reconnects; the sweeper (beat, here every half second)
re-sends what was lost. Flush: every message and every unacknowledged delivery is erased. The
control shows the loss is real — with no sweep the work stops with runs unfinished — and
then one sweep brings every run to its end.
"""

from __future__ import annotations

import time

import pytest

from agentops import localservices
from agents.connectors.sandbox.models import Operation
from agents.resilience import redis_client
from agents.sweeper import sweep
from tests.reliability.conftest import (
    LEASE,
    agent_on_every_ticket,
    locked_requesters,
    open_locked_out_ticket,
    reconnect,
    runs_of,
    unfinished,
    wait_for,
)

pytestmark = pytest.mark.worker

PER_TENANT = 5


@pytest.fixture
def in_flight(worker_factory, real_delivery, personas):
    """Ten tickets (five per tenant) whose runs are under way on one slow-ish worker."""
    if not localservices.uses_local_redis():
        pytest.fail("this test restarts the embedded Redis; unset REDIS_URL", pytrace=False)
    worker = worker_factory(
        "w", RUN_LEASE_SECONDS=str(LEASE), AGENTOPS_FAULT_SLEEP_AFTER_TOOL="0.4"
    )
    tickets = {}
    for tenant in (personas.tenant, personas.other_tenant):
        agent_on_every_ticket(tenant)
        requesters = locked_requesters(tenant, PER_TENANT)
        tickets[tenant] = [open_locked_out_ticket(tenant, r) for r in requesters]
    wait_for(lambda: unfinished(tickets) <= 2 * PER_TENANT - 2, what="two runs to finish")
    assert unfinished(tickets) > 0, "everything finished before the fault; slow the worker"
    return worker, tickets


def progress(tickets) -> list[tuple]:
    return sorted(
        (r.pk, r.status, r.step_count)
        for tenant, ts in tickets.items()
        for r in runs_of(tenant, ts)
    )


def progress_detail(tickets) -> list[tuple]:
    return [
        (r.pk, r.status, r.state, r.step_count, r.deliveries, r.lease_expires_at, r.updated_at)
        for tenant, ts in tickets.items()
        for r in runs_of(tenant, ts)
        if r.is_active
    ]


def assert_nothing_lost(tickets) -> None:
    for tenant, ts in tickets.items():
        runs = runs_of(tenant, ts)
        assert len(runs) == len(ts)
        assert {r.status for r in runs} == {"succeeded"}, [
            (r.status, r.error_type, r.error_message, r.traceback[-4000:])
            for r in runs
            if r.status != "succeeded"
        ]
        ops = Operation.objects.for_tenant(tenant).filter(operation="unlock_account")
        assert ops.count() == len(ts)  # one unlock per run, none twice


def test_redis_restarted_mid_run_loses_no_run(in_flight):
    worker, tickets = in_flight
    localservices.stop_redis()
    time.sleep(2)
    localservices.ensure_redis()
    reconnect()
    deadline = time.monotonic() + 90
    while unfinished(tickets) and time.monotonic() < deadline:
        sweep(grace_seconds=LEASE)  # a send while Redis is still down waits for the next
        time.sleep(0.5)
    assert unfinished(tickets) == 0, (progress_detail(tickets), worker.log(25))
    assert_nothing_lost(tickets)


def test_redis_flushed_mid_run_only_the_sweeper_saves_the_runs(in_flight):
    _, tickets = in_flight
    redis_client().flushdb()  # the queue and the unacknowledged deliveries are gone
    # Negative control: without a sweep, the work stops short.
    last, still_since = progress(tickets), time.monotonic()
    while time.monotonic() - still_since < 4:
        time.sleep(0.5)
        now = progress(tickets)
        if now != last:
            last, still_since = now, time.monotonic()
    lost = unfinished(tickets)
    assert lost > 0, "the flush lost nothing: the control did not control anything"
    wait_for(lambda: not sweep(grace_seconds=LEASE) and unfinished(tickets) == 0, timeout=90)
    assert_nothing_lost(tickets)
