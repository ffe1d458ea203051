"""RCA as a run of our own engine: start (idempotent), follow, read the report, judge it."""

from __future__ import annotations

import pytest

from agents import engine
from agents.models import RcaFeedback, Run
from tests.agents.telemetry.payloads import seed_run

pytestmark = pytest.mark.django_db


def drive(rca_run_id, tenant):
    run = Run.objects.for_tenant(tenant).get(run_id=rca_run_id)
    outcomes = []
    for _ in range(10):
        outcome = engine.advance(run.pk)
        outcomes.append(outcome)
        if outcome not in ("advanced", "model-retry"):
            break
    return outcomes


@pytest.fixture
def stored(api):
    assert api.post(seed_run()).status_code == 201


def start(api, run_id="run-001-sufficient"):
    return api.client.post(f"/api/v1/agent-runs/{run_id}/rca-runs", **api.headers)


def rca_get(api, path):
    return api.client.get(f"/api/v1/rca-runs{path}", **api.headers)


def test_rca_run_goes_through_its_states_and_stores_the_report(api, personas, stored):
    response = start(api)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["created"] is True and body["progress"]["status"] == "queued"
    rca_id = body["rca_run_id"]
    assert start(api).json()["rca_run_id"] == rca_id  # while it runs: the same one
    assert start(api).status_code == 200
    assert drive(rca_id, personas.tenant) == ["advanced", "advanced", "succeeded"]
    got = rca_get(api, f"/{rca_id}").json()
    assert got["status"] == "done" and got["progress"]["pct"] == 100
    assert got["report"]["category"] == "tool_schema_mismatch"
    assert got["report"]["narrative"] == "deterministic"
    run = Run.objects.for_tenant(personas.tenant).get(run_id=rca_id)
    assert [s.name for s in run.steps.all()] == [
        "Collecting evidence",
        "Classifying failure",
        "Generating report",
    ]
    # Unchanged telemetry: the finished report is the answer.
    again = start(api)
    assert again.status_code == 200 and again.json()["rca_run_id"] == rca_id
    # Changed telemetry: a new analysis.
    api.post(seed_run(agent_version="2.1.1"))
    fresh = start(api)
    assert fresh.status_code == 202 and fresh.json()["rca_run_id"] != rca_id
    listed = api.get("/run-001-sufficient/rca-runs").json()["items"]
    assert [i["rca_run_id"] for i in listed] == [fresh.json()["rca_run_id"], rca_id]
    assert rca_get(api, "").json()["count"] == 2


def test_feedback_is_kept_as_a_labelled_case(api, personas, stored):
    rca_id = start(api).json()["rca_run_id"]
    drive(rca_id, personas.tenant)
    post = api.client.post
    url = f"/api/v1/rca-runs/{rca_id}/feedback"
    wrong = post(url, {"correct": False}, content_type="application/json", **api.headers)
    assert wrong.status_code == 400 and "comment" in wrong.json()["fields"]
    bad = post(
        url,
        {"correct": False, "comment": "x", "expected_category": "gremlins"},
        content_type="application/json",
        **api.headers,
    )
    assert bad.status_code == 400
    ok = post(
        url,
        {
            "correct": False,
            "comment": "It was a permissions change",
            "expected_category": "tool_permission",
        },
        content_type="application/json",
        **api.headers,
    )
    assert ok.status_code == 201
    case = RcaFeedback.objects.for_tenant(personas.tenant).get()
    assert case.category == "tool_schema_mismatch" and case.expected_category == "tool_permission"
    assert case.report["evidence_index"] and case.target_run_id == "run-001-sufficient"
    assert post(url, "[1]", content_type="application/json", **api.headers).status_code == 400


def test_rca_routes_are_tenant_isolated_and_role_checked(
    api, outsider_api, api_for, personas, stored
):
    rca_id = start(api).json()["rca_run_id"]
    assert start(outsider_api).status_code == 404
    assert rca_get(outsider_api, f"/{rca_id}").status_code == 404
    assert rca_get(outsider_api, f"/{rca_id}/stream").status_code == 404
    assert rca_get(outsider_api, "").json()["count"] == 0
    assert (
        outsider_api.client.post(
            f"/api/v1/rca-runs/{rca_id}/feedback",
            {"correct": True},
            content_type="application/json",
            **outsider_api.headers,
        ).status_code
        == 404
    )
    auditor = api_for(personas.auditor, personas.tenant)
    assert start(auditor).status_code == 403
    assert rca_get(auditor, f"/{rca_id}").status_code == 200
    requester = api_for(personas.requester, personas.tenant)
    assert rca_get(requester, f"/{rca_id}").status_code == 403
    # A run that is not an RCA is not an RCA run.
    assert rca_get(api, "/run-001-sufficient").status_code == 404


def test_unknown_runs_are_404(api):
    assert start(api, "no-such-run").status_code == 404
    assert rca_get(api, "/no-such-rca").status_code == 404
