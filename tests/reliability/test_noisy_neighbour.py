"""§5.7 Noisy neighbour: tenant A floods the ticket API (and through it the pipeline) while
tenant B works. A is held to its per-tenant limit (429 with Retry-After, so at most its limit
of tickets reaches the pipeline); B is never refused and its p95 stays within 25 % of the quiet
figure measured in the same test, before and after the flood (plus 10 ms of slack for a loaded
2-core machine).

Real parts: gunicorn as `make run` starts it (2 processes of 4 threads), a real worker, A's
flood from a process of its own at 40 requests/s (forty times a minute's limit of 10 each
second), B's requests from this process, timed one by one.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

import pytest

from agentops import quotas
from agentops.services import api_token_create
from agents.models import Run
from incidents.models import Ticket
from tests.reliability.conftest import (
    agent_on_every_ticket,
    start_web,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.worker

A_LIMIT = 10  # A's API requests per minute (a tenant override)
SAMPLES = 100  # p95 of 100 is the 5th slowest: not at the mercy of one or two stray samples
FLOOD = ["nice", "-n", "19", sys.executable, "-m", "tests.reliability.flood"]


def timed_get(base: str, token: str) -> float:
    request = urllib.request.Request(  # noqa: S310 - our own server
        base + "/api/v1/tickets", headers={"Authorization": f"Bearer {token}"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        assert response.status == 200  # B is never refused
        response.read()
    return time.perf_counter() - started


def p95(base: str, token: str) -> float:
    samples = []
    for _ in range(SAMPLES):
        samples.append(timed_get(base, token))
        time.sleep(0.1)
    return statistics.quantiles(samples, n=20)[-1]


def test_a_flooding_tenant_gets_429_and_the_other_keeps_its_latency(
    worker_factory, real_delivery, personas, tmp_path
):
    a, b = personas.tenant, personas.other_tenant
    for tenant in (a, b):
        agent_on_every_ticket(tenant)
    quotas.limits_set(tenant=a, actor=personas.admin, api_requests_per_minute=A_LIMIT)
    # B works within an allowance of its own (its ~300 timed requests fall in three minutes).
    quotas.limits_set(tenant=b, actor=personas.admin, api_requests_per_minute=10_000)
    _, a_token = api_token_create(tenant=a, user=personas.agent)
    _, b_token = api_token_create(tenant=b, user=personas.outsider)
    worker = worker_factory("pipeline")
    # In a deployment the pipeline's workers run on machines of their own (README, "Running on
    # more than one machine"); on this one 2-core machine the worker yields the CPU to the web
    # processes (as the flood's client does), so B's figure measures tenant isolation rather
    # than two roles sharing two cores.
    os.setpriority(os.PRIO_PROCESS, worker.process.pid, 10)
    web, base = start_web(tmp_path / "web.log")
    try:
        for _ in range(5):  # warm both web processes
            timed_get(base, b_token)
        quiet = p95(base, b_token)

        flood_started = time.time()
        flood = subprocess.Popen(
            # The attacker's client is not part of the system under test: on this one machine
            # it runs at the lowest CPU priority, as if it were on a machine of its own.
            [*FLOOD, base, a_token, "14", "40"],
            stdout=subprocess.PIPE,
        )
        time.sleep(1)
        loud = p95(base, b_token)
        b_ticket = json.loads(
            urllib.request.urlopen(  # noqa: S310
                urllib.request.Request(  # noqa: S310
                    base + "/api/v1/tickets",
                    data=json.dumps({"title": "Printer jam", "description": "Tray 2."}).encode(),
                    headers={
                        "Authorization": f"Bearer {b_token}",
                        "Content-Type": "application/json",
                    },
                ),
                timeout=30,
            ).read()
        )
        out, _ = flood.communicate(timeout=60)
        # The limit is per calendar minute: a flood across a minute's end gets two allowances.
        windows = int(time.time() // 60) - int(flood_started // 60) + 1
        # Quiet again, after the flood: this machine's speed drifts (two-fold within a day, and
        # B's quiet p95 here has read anywhere from 27 to 69 ms), so one quiet figure taken a
        # minute before the loud one measured the drift as often as the flood. The quiet
        # figure is the slower of the two that bracket the flood.
        quiet_after = p95(base, b_token)
    finally:
        stop_process(web)
    counts = json.loads(out)

    assert counts.get("429", 0) >= 100 and counts["retry_after"] == counts["429"]
    accepted = counts.get("201", 0)
    assert 0 < accepted <= A_LIMIT * windows  # only A's allowance reached the pipeline
    assert Ticket.objects.for_tenant(a).count() == accepted
    quiet_before, quiet = quiet, max(quiet, quiet_after)
    assert loud <= quiet * 1.25 + 0.010, (
        f"B's p95: quiet {quiet_before * 1000:.1f} ms before and {quiet_after * 1000:.1f} ms "
        f"after, loud {loud * 1000:.1f} ms"
    )
    # B's work goes through the pipeline too, behind at most A's allowance.
    run = wait_for(
        lambda: (
            Run.objects.for_tenant(b)
            .filter(subject_id=b_ticket["number"], status__in=["succeeded", "escalated"])
            .first()
        ),
        timeout=120,
        what="B's run to finish",
    )
    assert run is not None
    print(
        f"noisy neighbour: B p95 quiet {quiet_before * 1000:.1f} / {quiet_after * 1000:.1f} ms "
        f"(before / after), under flood {loud * 1000:.1f} ms; "
        f"A {counts}"
    )
