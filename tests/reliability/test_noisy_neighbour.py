"""§5.7 Noisy neighbour: tenant A floods the ticket API (and through it the pipeline) while
tenant B works. A is held to its per-tenant limit (429 with Retry-After, so at most its limit
of tickets reaches the pipeline); B is never refused and its p95 stays within 25 % of the quiet
figure measured in the same test, before and after the flood (plus 10 ms of slack for a loaded
2-core machine), in one of two rounds of flood (a stall of the host spoils one round's p95; a
tenant that really slows the other spoils both).

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
from collections import Counter

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


def _open_ticket(base: str, token: str) -> dict:
    request = urllib.request.Request(  # noqa: S310 - our own server
        base + "/api/v1/tickets",
        data=json.dumps({"title": "Printer jam", "description": "Tray 2."}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def test_a_flooding_tenant_gets_429_and_the_other_keeps_its_latency(
    worker_factory, real_delivery, personas, tmp_path
):
    a, b = personas.tenant, personas.other_tenant
    for tenant in (a, b):
        agent_on_every_ticket(tenant)
    quotas.limits_set(tenant=a, actor=personas.admin, api_requests_per_minute=A_LIMIT)
    # B works within an allowance of its own (its 300-500 timed requests fall in 3-4 minutes).
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
        # Up to two rounds of flood: a stall of this 2-core host (it drifts two-fold within a
        # day; B's quiet p95 has read anywhere from 17 to 69 ms) can spoil the 5th-slowest of
        # one round's 100 samples; a tenant that really slows the other spoils both rounds.
        flood_started, rounds, counts, b_ticket = time.time(), [], Counter(), None
        for _round in range(2):
            flood = subprocess.Popen(
                # The attacker's client is not part of the system under test: on this one
                # machine it runs at the lowest CPU priority, as if on a machine of its own.
                [*FLOOD, base, a_token, "14", "40"],
                stdout=subprocess.PIPE,
            )
            time.sleep(1)
            loud = p95(base, b_token)
            if b_ticket is None:
                b_ticket = _open_ticket(base, b_token)
            out, _ = flood.communicate(timeout=60)
            counts.update(json.loads(out))
            # Quiet again, after the flood: the quiet figure is the slower of the two that
            # bracket the flood (one taken a minute before measured the drift as often).
            quiet_after = p95(base, b_token)
            rounds.append((quiet, quiet_after, loud))
            if loud <= max(quiet, quiet_after) * 1.25 + 0.010:
                break
            quiet = quiet_after
        # The limit is per calendar minute: a flood across a minute's end gets two allowances.
        windows = int(time.time() // 60) - int(flood_started // 60) + 1
    finally:
        stop_process(web)

    assert counts.get("429", 0) >= 100 and counts["retry_after"] == counts["429"]
    accepted = counts.get("201", 0)
    assert 0 < accepted <= A_LIMIT * windows  # only A's allowance reached the pipeline
    assert Ticket.objects.for_tenant(a).count() == accepted
    described = "; ".join(
        f"quiet {before * 1000:.1f} ms before and {after * 1000:.1f} ms after, loud "
        f"{loud * 1000:.1f} ms"
        for before, after, loud in rounds
    )
    quiet_before, quiet_after, loud = rounds[-1]
    assert loud <= max(quiet_before, quiet_after) * 1.25 + 0.010, f"B's p95: {described}"
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
    print(f"noisy neighbour: B p95 {described}; A {dict(counts)}")
