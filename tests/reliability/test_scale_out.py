"""§5.8 Scale-out on one machine, as the README's "Running on more than one machine" lays it
out: two web processes (gunicorn, as `make run` starts it) and three Celery workers on the same
PostgreSQL and Redis. Under load, one web process is SIGKILLed with requests in flight to it,
and one worker too. Nothing is lost (every ticket sent has a finished run) and nothing is done
twice (one ticket per delivery, one connector operation per run).

A request cut in the middle is ambiguous to its client: the ticket may or may not have been
committed. So the clients here are what retries safely: senders of signed webhooks
(``POST /api/v1/webhooks/generic/<endpoint>``, Standard Webhooks), whose ``webhook-id`` the
intake stores under a unique constraint. A client whose request dies sends the same delivery
(same id) to the other web process, as a load balancer's retry would; the intake answers
``duplicate: true`` with the ticket when the first attempt had committed, and creates it when
it had not. The bearer-token ticket API has no idempotency key, so it is not the client here.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from agents.connectors.sandbox.models import Operation
from agents.models import Run
from agents.sweeper import sweep
from incidents.intake import signatures
from incidents.intake.models import WebhookDelivery, WebhookEndpoint
from incidents.models import Ticket
from tests.reliability.conftest import (
    LEASE,
    Supervisor,
    agent_on_every_ticket,
    locked_requesters,
    runs_of,
    spawn_web,
    stop_process,
    unfinished,
    wait_for,
    wait_web,
)

pytestmark = pytest.mark.worker

PER_TENANT = 12
CLIENTS = 4  # deliveries in flight at once
KILL_AFTER = 6  # deliveries answered before web process 0 dies (with requests in flight)
SECRET = "whsec_" + "c2NhbGUtb3V0LXRlc3Qtc2VjcmV0LTAxMjM0NTY3"
# What a client sees of a process killed under its request (reset, closed without an answer)
# or of a port nobody serves any more (refused). HTTPError, an answer, is caught before.
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


class Balancer:
    """The clients' side: web process ``i % 2`` first, the other one when that fails; counts
    the requests in flight per process and those cut by a kill."""

    def __init__(self, webs):
        self.bases = [base for _proc, base in webs]
        self.alive = [True, True]
        self.in_flight = [0, 0]
        self.cut = 0  # requests that reached a process which died before answering
        self.answered = 0
        self.lock = threading.Lock()

    def _post(self, web: int, path: str, body: bytes, headers: dict) -> dict:
        request = urllib.request.Request(  # noqa: S310 - our own server
            self.bases[web] + path,
            data=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        with self.lock:
            self.in_flight[web] += 1
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                assert response.status == 200, response.status
                return json.loads(response.read())
        finally:
            with self.lock:
                self.in_flight[web] -= 1

    def deliver(self, index: int, path: str, body: bytes, msg_id: str) -> tuple[dict, int]:
        """One delivery, retried with the same webhook-id until a process answers it.
        Returns (the answer, attempts)."""
        first = index % 2 if self.alive[index % 2] else 1
        for attempt, web in enumerate([first, 1 - first, 1, 1], start=1):
            # Signed afresh per attempt (a fresh timestamp), the id stays: that is the key.
            headers = signatures.sign_generic(
                SECRET, body, msg_id=msg_id, timestamp=int(time.time())
            )
            try:
                answer = self._post(web, path, body, headers)
            except urllib.error.HTTPError:
                raise  # an answer, not a lost request: the test fails with it
            except TRANSPORT_ERRORS as exc:
                refused = isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)
                with self.lock:
                    self.cut += not refused
                continue
            with self.lock:
                self.answered += 1
            return answer, attempt
        raise AssertionError(f"delivery {msg_id} was never answered")


def test_two_web_processes_and_three_workers_lose_nothing_when_one_of_each_dies_under_load(
    worker_factory, real_delivery, personas, tmp_path, monkeypatch
):
    sends = []  # (tenant, path, body, webhook-id)
    for tenant in (personas.tenant, personas.other_tenant):
        agent_on_every_ticket(tenant)
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant, provider="generic", name="Service portal", secret=SECRET
        )
        path = f"/api/v1/webhooks/generic/{endpoint.public_id}"
        for i, user in enumerate(locked_requesters(tenant, PER_TENANT)):
            payload = {
                "type": "ticket.created",
                "data": {
                    "id": f"portal-{tenant.slug}-{i}",
                    "title": "I'm locked out of my account",
                    "description": "It says my account is locked.",
                    "requester_email": user.email,
                },
            }
            sends.append((tenant, path, json.dumps(payload).encode(), f"msg_{tenant.slug}_{i}"))
    # Interleave the tenants, so both are in flight when the processes die.
    sends = [s for pair in zip(sends[:PER_TENANT], sends[PER_TENANT:], strict=True) for s in pair]
    phases = {"start": time.monotonic()}
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    # The web processes boot while the workers start (each start waits for a ping).
    webs = [spawn_web(tmp_path / f"web{i}.log") for i in range(2)]
    workers = Supervisor(worker_factory, size=3, env={"RUN_LEASE_SECONDS": str(LEASE)})
    balancer = Balancer(webs)
    try:
        workers.fill()
        for proc, base in webs:
            wait_web(proc, base)
        phases["up"] = time.monotonic()
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            futures = [
                pool.submit(balancer.deliver, i, path, body, msg_id)
                for i, (_tenant, path, body, msg_id) in enumerate(sends)
            ]
            # Kill web process 0 (its whole gunicorn group) while it holds requests.
            wait_for(
                lambda: balancer.answered >= KILL_AFTER and balancer.in_flight[0] > 0,
                timeout=30,
                interval=0.002,
                what="requests in flight to web process 0",
            )
            os.killpg(webs[0][0].pid, signal.SIGKILL)
            balancer.alive[0] = False
            webs[0][0].wait(timeout=10)
            workers.kill_one()
            answers = [future.result(timeout=60) for future in futures]
        phases["answered"] = time.monotonic()
        tickets = {personas.tenant: [], personas.other_tenant: []}
        for (tenant, *_), (answer, _attempts) in zip(sends, answers, strict=True):
            assert answer["ticket"], answer
            tickets[tenant].append(Ticket.objects.for_tenant(tenant).get(number=answer["ticket"]))
        wait_for(
            lambda: not sweep(grace_seconds=LEASE) and unfinished(tickets) == 0,
            timeout=60,
            interval=0.5,
            what="every run to finish",
        )
        phases["finished"] = time.monotonic()
    finally:
        for proc, _ in webs:
            stop_process(proc)

    print(  # a report (pytest -s), not an assertion: timings on a shared machine are noise
        "\nscale-out: services up {:.1f} s, {} deliveries answered {:.1f} s later ({} cut in "
        "flight and sent again), every run finished {:.1f} s later".format(
            phases["up"] - phases["start"],
            len(answers),
            phases["answered"] - phases["up"],
            balancer.cut,
            phases["finished"] - phases["answered"],
        )
    )
    # The kill was under load: at least one request died in flight and was sent again.
    assert balancer.cut >= 1, "no request was in flight when web process 0 died"
    assert sum(attempts > 1 for _answer, attempts in answers) >= balancer.cut
    assert workers.kills == 1
    for tenant, ts in tickets.items():
        # None lost, none twice: one ticket per delivery, each delivery stored once.
        assert len({t.pk for t in ts}) == len(ts) == PER_TENANT
        assert Ticket.objects.for_tenant(tenant).count() == PER_TENANT
        assert WebhookDelivery.objects.for_tenant(tenant).count() == PER_TENANT
        runs = runs_of(tenant, ts)
        assert len(runs) == PER_TENANT and {r.status for r in runs} == {"succeeded"}
        ops = Operation.objects.for_tenant(tenant).filter(operation="unlock_account")
        assert ops.count() == PER_TENANT  # one effect per run, however often redelivered
    assert Run.objects.unscoped("the test counts every run").count() == 2 * PER_TENANT
