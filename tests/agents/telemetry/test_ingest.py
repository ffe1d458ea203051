"""POST /api/v1/agent-runs: seed 002's payload, upsert by run_id, replace children, reject bad input."""

from __future__ import annotations

import json

import pytest

from agents.models import GuardrailEvent, Run, Step, ToolCall
from tests.agents.telemetry.conftest import Api
from tests.agents.telemetry.payloads import seed_run

pytestmark = pytest.mark.django_db


def _deep(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels):
        value = {"x": value}
    return value


def rows(tenant, run_id):
    run = Run.objects.for_tenant(tenant).get(run_id=run_id)
    return (
        run,
        list(Step.objects.for_tenant(tenant).filter(run=run).values_list("step_id", flat=True)),
        list(ToolCall.objects.for_tenant(tenant).filter(run=run).values_list("call_id", flat=True)),
        list(
            GuardrailEvent.objects.for_tenant(tenant)
            .filter(run=run)
            .values_list("event_id", flat=True)
        ),
    )


def test_seed_payload_is_stored_in_the_runtime_tables(api, personas):
    response = api.post(seed_run())
    assert response.status_code == 201, response.content
    assert response.json() == {
        "run_id": "run-001-sufficient",
        "created": True,
        "steps": 4,
        "tool_calls": 3,
        "guardrail_events": 1,
    }
    run, steps, calls, events = rows(personas.tenant, "run-001-sufficient")
    assert run.origin == "ingested" and run.status == "failed"
    assert (run.agent_name, run.agent_version, run.environment) == (
        "customer-support-agent",
        "2.1.0",
        "prod",
    )
    assert run.correlation_ids == ["req-456", "session-789"] and run.trace_id == "trace-abc-123"
    assert (run.tokens_prompt, run.tokens_completion, float(run.total_cost_usd)) == (
        1250,
        380,
        0.0245,
    )
    assert run.latency_ms == 45_000
    assert steps == ["step-001", "step-002", "step-003", "step-004"]
    assert sorted(calls) == ["call-001", "call-002", "call-003"] and events == ["guard-001"]
    call = ToolCall.objects.for_tenant(personas.tenant).get(run=run, call_id="call-001")
    assert call.step.step_id == "step-002" and call.status_code == 400
    event = GuardrailEvent.objects.for_tenant(personas.tenant).get(run=run)
    assert event.tool_call == call and event.step.step_id == "step-002"


def test_resend_replaces_the_children_and_answers_200(api, personas):
    api.post(seed_run())
    changed = seed_run(status="success", steps=seed_run()["steps"][:2], guardrail_events=[])
    changed["tool_calls"] = [c for c in changed["tool_calls"] if c["step_id"] == "step-002"]
    response = api.post(changed)
    assert response.status_code == 200 and response.json()["created"] is False
    run, steps, calls, events = rows(personas.tenant, "run-001-sufficient")
    assert run.status == "succeeded" and run.step_count == 2
    assert steps == ["step-001", "step-002"] and sorted(calls) == ["call-001", "call-003"]
    assert events == []
    assert Run.objects.for_tenant(personas.tenant).filter(run_id="run-001-sufficient").count() == 1


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda p: p.update(status="exploded"), "status"),
        (lambda p: p["steps"][1].update(ended_at="2024-01-15T10:30:00Z"), "steps[1].ended_at"),
        (lambda p: p.update(ended_at="2024-01-15T10:00:00Z"), "ended_at"),
        (lambda p: p["tool_calls"][2].update(step_id="step-999"), "tool_calls[2].step_id"),
        (
            lambda p: p["guardrail_events"][0].update(call_id="call-999"),
            "guardrail_events[0].call_id",
        ),
        (lambda p: p["steps"][0].update(name="bad\x00name"), "steps[0].name"),
        (lambda p: p["tool_calls"][0]["args_json"].update(q="a\x00b"), "tool_calls[0].args_json.q"),
        (lambda p: p.update(colour="blue"), "colour"),
        (lambda p: p["steps"][0].update(step_id="has space"), "steps[0].step_id"),
        (lambda p: p["tool_calls"][1].update(call_id="call-001"), "tool_calls[1].call_id"),
        (lambda p: p["cost"].update(tokens_prompt=-1), "cost.tokens_prompt"),
        (lambda p: p.pop("run_id"), "run_id"),
        (
            lambda p: p["steps"][0].update(output_summary="half \ud800 a pair"),
            "steps[0].output_summary",
        ),
        (lambda p: p["tool_calls"][0].update(args_json=_deep(40)), "tool_calls[0].args_json"),
        (lambda p: p["cost"].update(total_cost_usd=1_000_000), "cost.total_cost_usd"),
        (lambda p: p["tool_calls"][0].update(status_code="abc"), "tool_calls[0].status_code"),
        (lambda p: p.update(started_at="2024-13-45T00:00:00Z"), "started_at"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_keeps_the_stored_run(api, personas, mutate, field):
    assert api.post(seed_run()).status_code == 201
    before = rows(personas.tenant, "run-001-sufficient")
    payload = seed_run(agent_version="9.9.9")
    mutate(payload)
    response = api.post(payload)
    assert response.status_code == 400, response.content
    fields = response.json()["fields"]
    assert any(f == field or f.startswith(field + ".") for f in fields), fields
    after = rows(personas.tenant, "run-001-sufficient")
    assert after[0].agent_version == "2.1.0" and after[1:] == before[1:]
    assert after[0].telemetry_hash == before[0].telemetry_hash


def test_too_many_children_is_a_400(api):
    step = seed_run()["steps"][0]
    payload = seed_run(
        steps=[{**step, "step_id": f"s-{i}"} for i in range(5001)],
        tool_calls=[],
        guardrail_events=[],
    )
    response = api.post(payload)
    assert response.status_code == 400 and "steps" in response.json()["fields"]


@pytest.mark.parametrize("body", ["{not json", "[1, 2", '{"run_id": NaN}', "[" * 100_000, ""])
def test_malformed_bodies_are_400(api, body):
    response = api.post(body)
    assert response.status_code == 400
    assert response.json()["error"] in ("malformed_json", "validation_error")


def test_non_object_body_is_a_400(api):
    response = api.post([1, 2])
    assert response.status_code == 400 and "body" in response.json()["fields"]


def test_oversized_body_is_413_and_stores_nothing(api, personas, settings):
    settings.TELEMETRY_MAX_RUN_BYTES = 2048
    payload = seed_run()
    payload["steps"][0]["output_summary"] = "x" * 4000
    response = api.post(payload)
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert not Run.objects.for_tenant(personas.tenant).filter(run_id="run-001-sufficient").exists()


def test_a_run_id_of_our_own_runs_is_a_409(api, personas):
    Run.objects.create(tenant=personas.tenant, run_id="run-mine", agent_name="service_desk")
    response = api.post(seed_run(run_id="run-mine"))
    assert response.status_code == 409
    assert Run.objects.for_tenant(personas.tenant).get(run_id="run-mine").origin == "internal"


def test_ingested_running_run_is_never_claimed_by_the_engine(api, personas):
    from agents import engine

    api.post(seed_run(status="running", ended_at=None))
    run = Run.objects.for_tenant(personas.tenant).get(run_id="run-001-sufficient")
    assert run.status == "running"
    assert engine.claim(run.pk) is None
    assert engine.watchdog(stale_queued_seconds=0) == 0


def test_missing_or_wrong_credentials_are_401_and_store_nothing(client, personas):
    for headers in (
        {},
        {"HTTP_AUTHORIZATION": "Bearer ao_x_y"},
        {"HTTP_X_INGEST_SECRET": "nope" * 8},
    ):
        response = Api(client, headers).post(seed_run())
        assert response.status_code == 401
    assert not Run.objects.unscoped("test: nothing stored anywhere").exists()


def test_roles_that_may_not_write_get_403(api_for, personas):
    for user in (personas.requester, personas.auditor, personas.reviewer):
        assert api_for(user, personas.tenant).post(seed_run()).status_code == 403
    assert not Run.objects.for_tenant(personas.tenant).exists()


def test_batch_ingests_all_runs_or_none(api, personas):
    runs = [seed_run(run_id=f"run-b-{i}") for i in range(3)] + [seed_run("insufficient")]
    response = api.post({"runs": runs}, "/batch")
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 4
    assert Run.objects.for_tenant(personas.tenant).filter(origin="ingested").count() == 4
    assert Step.objects.for_tenant(personas.tenant).count() == 3 * 4 + 2
    bad = [seed_run(run_id="run-new-1"), seed_run(run_id="run-new-2", status="nope")]
    response = api.post({"runs": bad}, "/batch")
    assert response.status_code == 400 and "runs[1].status" in response.json()["fields"]
    assert not Run.objects.for_tenant(personas.tenant).filter(run_id="run-new-1").exists()


def test_batch_limits(api):
    one = seed_run()
    too_many = api.post(json.dumps({"runs": [one] * 501}), "/batch")
    assert too_many.status_code == 400 and "runs" in too_many.json()["fields"]
    twice = api.post({"runs": [one, one]}, "/batch")
    assert twice.status_code == 400 and "runs[1].run_id" in twice.json()["fields"]
    assert api.post({"runs": []}, "/batch").status_code == 400
    assert api.post({"items": [one]}, "/batch").status_code == 400


def test_same_run_id_in_two_tenants_are_two_runs(api, outsider_api, personas):
    assert api.post(seed_run()).status_code == 201
    assert outsider_api.post(seed_run(agent_version="7")).status_code == 201
    ours = Run.objects.for_tenant(personas.tenant).get(run_id="run-001-sufficient")
    theirs = Run.objects.for_tenant(personas.other_tenant).get(run_id="run-001-sufficient")
    assert ours.pk != theirs.pk and ours.agent_version == "2.1.0" and theirs.agent_version == "7"
