"""Fixtures of the telemetry tests: bearer-token API clients per persona."""

from __future__ import annotations

import json

import pytest

from agentops.services import api_token_create

API = "/api/v1/agent-runs"


class Api:
    """The Django test client with one set of auth headers on every request."""

    def __init__(self, client, headers: dict):
        self.client = client
        self.headers = headers

    def get(self, path: str = "", **params):
        return self.client.get(API + path, params, **self.headers)

    def post(self, payload, path: str = ""):
        body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        return self.client.post(API + path, body, content_type="application/json", **self.headers)


@pytest.fixture
def api_for(client):
    def make(user, tenant):
        _, raw = api_token_create(tenant=tenant, user=user)
        return Api(client, {"HTTP_AUTHORIZATION": f"Bearer {raw}"})

    return make


@pytest.fixture
def api(personas, api_for):
    """An agent of acme (may write and read)."""
    return api_for(personas.agent, personas.tenant)


@pytest.fixture
def outsider_api(personas, api_for):
    return api_for(personas.outsider, personas.other_tenant)


@pytest.fixture
def ingest():
    """Store a payload through the service (validated exactly as the API does)."""
    from agents.telemetry.schemas import parse_run
    from agents.telemetry.services import ingest_runs

    def store(tenant, payload):
        ingest_runs(tenant=tenant, runs=[parse_run(payload)])
        from agents.models import Run

        return Run.objects.for_tenant(tenant).get(run_id=payload["run_id"])

    return store
