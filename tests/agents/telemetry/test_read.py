"""GET /api/v1/agent-runs: list with filters, one run, the merged timeline; tenant isolation."""

from __future__ import annotations

import pytest

from tests.agents.telemetry.payloads import seed_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(api):
    api.post(seed_run())
    api.post(seed_run("insufficient"))
    api.post(seed_run(run_id="run-003", agent_version="2.2.0", status="success", environment="dev"))


def ids(response):
    assert response.status_code == 200, response.content
    return [item["run_id"] for item in response.json()["items"]]


def test_list_filters(api, stored):
    assert set(ids(api.get())) == {"run-001-sufficient", "run-002-insufficient", "run-003"}
    assert ids(api.get(agent="data-processor")) == ["run-002-insufficient"]
    assert ids(api.get(version="2.2.0")) == ["run-003"]
    assert ids(api.get(environment="staging")) == ["run-002-insufficient"]
    assert set(ids(api.get(status="failure"))) == {"run-001-sufficient", "run-002-insufficient"}
    assert ids(api.get(status="success")) == ["run-003"]
    assert ids(api.get(since="2024-01-15T10:45:00Z")) == ["run-002-insufficient"]
    assert set(ids(api.get(until="2024-01-15T10:45:00Z", origin="ingested"))) == {
        "run-001-sufficient",
        "run-003",
    }
    assert ids(api.get(origin="internal")) == []
    assert api.get(status="exploded").status_code == 400
    assert api.get(since="yesterday").status_code == 400


def test_detail_has_counts_and_seed_fields(api, stored):
    body = api.get("/run-001-sufficient").json()
    assert body["counts"] == {"steps": 4, "tool_calls": 3, "guardrail_events": 1}
    assert body["status"] == "failure" and body["origin"] == "ingested"
    assert body["cost"] == {
        "tokens_prompt": 1250,
        "tokens_completion": 380,
        "total_cost_usd": 0.0245,
    }
    assert api.get("/run-002-insufficient").json()["cost"]["total_cost_usd"] is None


def test_timeline_merges_items_in_time_order(api, stored):
    items = api.get("/run-001-sufficient/timeline").json()["items"]
    order = [(i["type"], i["id"]) for i in items]
    assert order == [
        ("step", "step-001"),
        ("step", "step-002"),
        ("tool_call", "call-001"),
        ("tool_call", "call-003"),
        ("guardrail", "guard-001"),
        ("step", "step-003"),
        ("tool_call", "call-002"),
        ("step", "step-004"),
    ]
    times = [i["at"] for i in items]
    assert times == sorted(times)
    assert (
        items[2]["evidence_id"] == "ev_tool_call-001"
        and items[4]["evidence_id"] == "ev_guard_guard-001"
    )
    assert items[2]["error_message"].startswith("Missing required field")


def test_another_tenants_runs_are_404_and_never_listed(api, outsider_api, stored):
    assert outsider_api.get("/run-001-sufficient").status_code == 404
    assert outsider_api.get("/run-001-sufficient/timeline").status_code == 404
    assert ids(outsider_api.get()) == []
    assert api.get("/no-such-run").status_code == 404


def test_requesters_may_not_read_runs(api_for, personas, stored):
    requester = api_for(personas.requester, personas.tenant)
    assert requester.get().status_code == 403
    assert requester.get("/run-001-sufficient").status_code in (403, 404)
