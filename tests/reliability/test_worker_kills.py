"""§5.1 Workers SIGKILLed at random moments across 50 tickets (two tenants): every run reaches
a terminal state within the lease plus a margin once the killing stops, each idempotency key is
applied by the connector once, and no run is left stuck.

Two workers run at all times (a supervisor restarts the killed ones). Each pauses after the
connector acted and shows it (``AGENTOPS_FAULT_MARK_DIR``); the chaos waits for a worker in
that pause and kills it at a random moment in it or just after (while it records the call or
takes its next step), so the kills land in the work however fast the pipeline has become.
PostgreSQL's sweeper (the beat task ``agents.tasks.sweep_runs``; here called as beat would,
every half second) hands a dead worker's runs on once their lease has expired.
"""

from __future__ import annotations

import random
import time

import pytest

from agents.connectors.sandbox.models import DirectoryUser, Operation
from agents.models import Run, Step, ToolCall
from agents.sweeper import sweep
from tests.reliability.conftest import (
    LEASE,
    Supervisor,
    agent_on_every_ticket,
    locked_requesters,
    open_locked_out_ticket,
    runs_of,
    unfinished,
)

pytestmark = pytest.mark.worker

TICKETS = {"acme": 35, "globex": 15}  # 50 in all, the figure
KILLS = 6
CHAOS_LIMIT = 120  # seconds: a pipeline that never reaches a tool call must not hang the test
PAUSE = 0.6  # seconds a worker waits after a tool call was applied, before recording it
MARGIN = 45  # seconds after the last kill for the remaining steps on a loaded 2-core machine


def test_fifty_tickets_survive_random_sigkills(worker_factory, real_delivery, personas, tmp_path):
    tenants = {"acme": personas.tenant, "globex": personas.other_tenant}
    people = {}
    for slug, tenant in tenants.items():
        agent_on_every_ticket(tenant)
        people[slug] = locked_requesters(tenant, TICKETS[slug])
    # Each tool call pauses 0.6 s after it is applied: the window the chaos aims at.
    marks = tmp_path / "fault-marks"
    marks.mkdir()
    supervisor = Supervisor(
        worker_factory,
        size=2,
        env={
            "RUN_LEASE_SECONDS": str(LEASE),
            "AGENTOPS_FAULT_SLEEP_AFTER_TOOL": str(PAUSE),
            "AGENTOPS_FAULT_MARK_DIR": str(marks),
        },
        mark_dir=marks,
    )
    supervisor.fill()
    tickets = {tenant: [] for tenant in tenants.values()}
    for slug, tenant in tenants.items():
        for requester in people[slug]:
            tickets[tenant].append(open_locked_out_ticket(tenant, requester))

    # Chaos: wait for a worker in the pause after a tool call, kill it somewhere in that pause
    # or just after it, start a replacement without waiting for it to boot, sweep as beat would.
    rng = random.Random(11)
    last_sweep = 0.0
    chaos_ends = time.monotonic() + CHAOS_LIMIT
    while supervisor.kills < KILLS and unfinished(tickets) and time.monotonic() < chaos_ends:
        if time.monotonic() - last_sweep >= 0.5:
            sweep(grace_seconds=LEASE)
            last_sweep = time.monotonic()
        busy = supervisor.in_fault_pause()
        if not busy:
            time.sleep(0.05)
            continue
        time.sleep(rng.uniform(0.0, PAUSE + 0.3))
        supervisor.kill(rng.choice(busy))
        supervisor.fill(wait=False)
    # Calm: within lease + margin every run is finished.
    deadline = time.monotonic() + LEASE + MARGIN
    while unfinished(tickets) and time.monotonic() < deadline:
        sweep(grace_seconds=LEASE)
        supervisor.fill()
        time.sleep(0.5)

    print(f"worker kills: {supervisor.kills}")
    assert supervisor.kills == KILLS, "the work finished before the chaos was done"
    runs = [run for tenant, ts in tickets.items() for run in runs_of(tenant, ts)]
    stuck = [(r.subject_id, r.status, r.state) for r in runs if r.is_active]
    assert len(runs) == 50 and not stuck, (stuck, supervisor.logs())
    assert {r.status for r in runs} == {"succeeded"}, [
        (r.subject_id, r.status, r.error_message) for r in runs if r.status != "succeeded"
    ]
    for tenant, ts in tickets.items():
        calls = list(ToolCall.objects.for_tenant(tenant).filter(run__in=runs_of(tenant, ts)))
        keys = [c.idempotency_key for c in calls if c.tool_name == "unlock_account"]
        assert len(keys) == len(ts) == len(set(keys))  # one unlock per run, one key each
        operations = Operation.objects.for_tenant(tenant).filter(operation="unlock_account")
        # The connector applied each key exactly once, however often a step was redelivered.
        assert sorted(operations.values_list("idempotency_key", flat=True)) == sorted(keys)
        assert not DirectoryUser.objects.for_tenant(tenant).filter(locked=True).exists()
    # The kills really interrupted steps: a step taken back by another delivery counts a
    # retry (a task chains a run's states, so deliveries alone no longer show it).
    retaken = Step.objects.unscoped("the test's runs").filter(run__in=runs, retries__gt=0)
    assert retaken.count() >= 1
    assert Run.objects.unscoped("the test counts every run").count() == 50
