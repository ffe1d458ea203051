"""§5.8 Scale-out on one machine, as the README's "Running on more than one machine" lays it
out: two web processes (gunicorn, as `make run` starts it) and three Celery workers on the same
PostgreSQL and Redis. Mid-load one web process and one worker are SIGKILLed; the client (a
load balancer's part) sends the next requests to the surviving web process, the sweeper (beat)
hands the dead worker's run on. Nothing is lost (every ticket accepted has a finished run) and
nothing is done twice (one ticket per request, one connector operation per run).

The web process is killed between requests: a request cut in the middle of a POST is ambiguous
to any client without an idempotency key, which the ticket API does not take (yet).
"""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request

import pytest

from agentops.services import api_token_create
from agents.connectors.sandbox.models import Operation
from agents.models import Run
from agents.sweeper import sweep
from incidents.models import Ticket
from tests.reliability.conftest import (
    LEASE,
    Supervisor,
    agent_on_every_ticket,
    locked_requesters,
    runs_of,
    start_web,
    stop_process,
    unfinished,
    wait_for,
)

pytestmark = pytest.mark.worker

PER_TENANT = 12
KILL_AT = 8  # requests sent before one web process and one worker die


def post_ticket(base: str, token: str) -> dict:
    request = urllib.request.Request(  # noqa: S310 - our own server
        base + "/api/v1/tickets",
        data=json.dumps(
            {"title": "I'm locked out of my account", "description": "Locked."}
        ).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        assert response.status == 201
        return json.loads(response.read())


def test_two_web_processes_and_three_workers_lose_nothing_when_one_of_each_dies(
    worker_factory, real_delivery, personas, tmp_path, monkeypatch
):
    people = []
    for tenant in (personas.tenant, personas.other_tenant):
        agent_on_every_ticket(tenant)
        for user in locked_requesters(tenant, PER_TENANT):
            people.append((tenant, user, api_token_create(tenant=tenant, user=user)[1]))
    workers = Supervisor(worker_factory, size=3, env={"RUN_LEASE_SECONDS": str(LEASE)})
    workers.fill()
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    webs = [start_web(tmp_path / f"web{i}.log") for i in range(2)]
    alive = [True, True]
    tickets = {personas.tenant: [], personas.other_tenant: []}
    try:
        for i, (tenant, _user, token) in enumerate(people):
            if i == KILL_AT:
                os.killpg(webs[0][0].pid, signal.SIGKILL)
                webs[0][0].wait(timeout=10)
                alive[0] = False
                workers.kill_one()
            choice = i % 2 if alive[i % 2] else 1
            try:
                created = post_ticket(webs[choice][1], token)
            except urllib.error.URLError as exc:  # refused: the balancer tries the other one
                assert isinstance(exc.reason, ConnectionRefusedError), exc
                created = post_ticket(webs[1][1], token)
            tickets[tenant].append(Ticket.objects.for_tenant(tenant).get(number=created["number"]))
            sweep(grace_seconds=LEASE)
        wait_for(
            lambda: not sweep(grace_seconds=LEASE) and unfinished(tickets) == 0,
            timeout=150,
            interval=0.5,
            what="every run to finish",
        )
    finally:
        for proc, _ in webs:
            stop_process(proc)

    assert workers.kills == 1
    for tenant, ts in tickets.items():
        assert Ticket.objects.for_tenant(tenant).count() == len(ts) == PER_TENANT  # none twice
        runs = runs_of(tenant, ts)
        assert len(runs) == PER_TENANT and {r.status for r in runs} == {"succeeded"}
        ops = Operation.objects.for_tenant(tenant).filter(operation="unlock_account")
        assert ops.count() == PER_TENANT  # one effect per run, however often redelivered
    assert Run.objects.unscoped("the test counts every run").count() == 2 * PER_TENANT
