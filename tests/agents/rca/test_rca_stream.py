# ruff: noqa: S310  (urllib against the live test server)
"""The SSE stream in a real HTTP client, while a real Celery worker runs the RCA."""

from __future__ import annotations

import json
import urllib.request

import pytest

from agentops.celery import app as celery_app
from agentops.services import api_token_create
from agents.telemetry.schemas import parse_run
from agents.telemetry.services import ingest_runs
from tests.agents.telemetry.payloads import seed_run

pytestmark = pytest.mark.worker


@pytest.fixture
def real_delivery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


def _request(url, token, method="GET"):
    return urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})


def test_sse_stream_follows_the_rca_run_to_done(
    transactional_db, live_server, personas, worker_factory, real_delivery
):
    ingest_runs(tenant=personas.tenant, runs=[parse_run(seed_run())])
    _, token = api_token_create(tenant=personas.tenant, user=personas.agent)
    base = f"{live_server.url}/api/v1"
    with urllib.request.urlopen(
        _request(f"{base}/agent-runs/run-001-sufficient/rca-runs", token, "POST"), timeout=30
    ) as response:
        assert response.status == 202
        rca_id = json.loads(response.read())["rca_run_id"]
    events = []
    with urllib.request.urlopen(
        _request(f"{base}/rca-runs/{rca_id}/stream", token), timeout=60
    ) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        worker = None
        for raw in stream:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            events.append(json.loads(line[6:]))
            if worker is None:  # the first event is seen before any worker exists
                worker = worker_factory("rca")
    assert events[0]["status"] == "queued" and events[0]["pct"] == 5
    assert events[-1] == {**events[-1], "status": "done", "pct": 100, "step": "RCA complete"}
    assert all(set(e) == {"status", "step", "pct", "message", "updated_at"} for e in events)
    pcts = [e["pct"] for e in events]
    assert pcts == sorted(pcts)
    with urllib.request.urlopen(_request(f"{base}/rca-runs/{rca_id}", token), timeout=30) as done:
        assert json.loads(done.read())["report"]["category"] == "tool_schema_mismatch"
