"""Concurrent resends on the real database through the live server, and ingest secrets."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from agents.models import GuardrailEvent, Run, Step, ToolCall
from agents.telemetry.secrets import secret_create, secret_revoke
from tests.agents.telemetry.conftest import Api
from tests.agents.telemetry.payloads import seed_run


def _post(url: str, payload: dict, headers: dict) -> int:
    request = urllib.request.Request(  # noqa: S310 (the live test server)
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_resends_leave_one_run_and_one_set_of_children(live_server, personas):
    _, raw = secret_create(tenant=personas.tenant)
    url = f"{live_server.url}/api/v1/agent-runs"
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def send(i: int):
        # Each resend carries a different number of steps, so a mix of two would show.
        payload = seed_run(agent_version=f"v{i}")
        payload["steps"] = payload["steps"] + [
            {**payload["steps"][0], "step_id": f"extra-{i}-{k}"} for k in range(i)
        ]
        barrier.wait()
        statuses.append(_post(url, payload, {"X-Ingest-Secret": raw}))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses).count(201) == 1 and sorted(statuses).count(200) == 9, statuses
    runs = Run.objects.for_tenant(personas.tenant).filter(run_id="run-001-sufficient")
    assert runs.count() == 1
    run = runs.get()
    winner = int(run.agent_version[1:])
    steps = Step.objects.for_tenant(personas.tenant).filter(run=run)
    assert steps.count() == 4 + winner == run.step_count
    assert sorted(steps.values_list("step_id", flat=True)) == sorted(
        ["step-001", "step-002", "step-003", "step-004"]
        + [f"extra-{winner}-{k}" for k in range(winner)]
    )
    assert ToolCall.objects.for_tenant(personas.tenant).filter(run=run).count() == 3
    assert GuardrailEvent.objects.for_tenant(personas.tenant).filter(run=run).count() == 1
    # The latency rollup counts the stored steps once, whatever the order of the resends.
    from agents.models import StepLatencyRollup

    rolled = StepLatencyRollup.objects.for_tenant(personas.tenant)
    assert sum(rolled.values_list("steps", flat=True)) == 4 + winner
    assert not rolled.filter(steps__lt=0).exists()


@pytest.mark.django_db
def test_two_secrets_work_during_rotation_and_a_revoked_one_is_401(client, personas):
    old, old_raw = secret_create(tenant=personas.tenant, name="old")
    _, new_raw = secret_create(tenant=personas.tenant, name="new", raw="n" * 30)
    with pytest.raises(Exception, match="active already"):
        secret_create(tenant=personas.tenant, name="third")
    assert Api(client, {"HTTP_X_INGEST_SECRET": old_raw}).post(seed_run()).status_code == 201
    assert Api(client, {"HTTP_X_INGEST_SECRET": new_raw}).post(seed_run()).status_code == 200
    secret_revoke(secret=old)
    refused = Api(client, {"HTTP_X_INGEST_SECRET": old_raw}).post(seed_run(run_id="run-late"))
    assert refused.status_code == 401
    assert not Run.objects.for_tenant(personas.tenant).filter(run_id="run-late").exists()
    assert (
        Api(client, {"HTTP_X_INGEST_SECRET": new_raw}).post(seed_run(run_id="x-1")).status_code
        == 201
    )


@pytest.mark.django_db
def test_a_secret_writes_into_its_own_tenant_only_and_cannot_read(client, personas):
    _, raw = secret_create(tenant=personas.other_tenant)
    api = Api(client, {"HTTP_X_INGEST_SECRET": raw})
    assert api.post(seed_run()).status_code == 201
    assert (
        Run.objects.for_tenant(personas.other_tenant).filter(run_id="run-001-sufficient").exists()
    )
    assert not Run.objects.for_tenant(personas.tenant).exists()
    # The secret is an ingest credential: reading needs a bearer token.
    assert api.get().status_code == 401
    assert api.get("/run-001-sufficient").status_code == 401


@pytest.mark.django_db
def test_short_secrets_are_refused(personas):
    with pytest.raises(Exception, match="characters"):
        secret_create(tenant=personas.tenant, raw="short")
