"""The analyser on hand-written runs of every category, with decoys and thin telemetry.

Runs go in through the ingest service and come out through the same timeline the API serves,
so the analyser reads exactly what a real sender's run becomes.
"""

from __future__ import annotations

import time

import pytest

from agents.rca.analyser import analyse, check_citations
from agents.rca.collect import telemetry_of
from agents.telemetry.schemas import parse_run
from agents.telemetry.services import ingest_runs
from tests.agents.rca.builders import RunBuilder
from tests.agents.telemetry.payloads import seed_run

pytestmark = pytest.mark.django_db


def report_for(tenant, *payloads):
    """Ingest the payloads; analyse the last one."""
    ingest_runs(tenant=tenant, runs=[parse_run(p) for p in payloads])
    from agents.models import Run

    run = Run.objects.for_tenant(tenant).get(run_id=payloads[-1]["run_id"])
    report = analyse(*telemetry_of(run))
    assert check_citations(report) == []
    for h in report["hypotheses"]:
        assert h["evidence_ids"], h
    return report


def index_roles(report):
    return {e["ref_id"]: e["attributes"].get("role") for e in report["evidence_index"]}


def test_seed_schema_mismatch(personas):
    r = report_for(personas.tenant, seed_run())
    assert r["category"] == "tool_schema_mismatch" and not r["insufficient_evidence"]
    top = r["hypotheses"][0]
    assert {"ev_tool_call-001", "ev_guard_guard-001"} <= set(top["evidence_ids"])
    assert top["confidence"] == "high" and r["root_evidence_id"] == "ev_tool_call-001"
    assert r["action_items"][0]["type"] == "code_change"


def test_seed_insufficient_evidence(personas):
    r = report_for(personas.tenant, seed_run("insufficient"))
    assert r["insufficient_evidence"] is True and r["category"] == "unknown"
    assert "generic" in r["insufficient_reason"] and r["hypotheses"] == []
    assert {a["type"] for a in r["action_items"]} >= {"monitoring", "code_change"}


def _one_failure(**call):
    b = RunBuilder("r-1", error_type="AgentError", error_message="The agent could not finish")
    b.step("Plan")
    b.step("Act", "failure")
    b.call(call.pop("tool", "crm_api"), "failure", **call)
    return b.build()


@pytest.mark.parametrize(
    "call, expected",
    [
        ({"code": 429, "error_class": "HTTPError", "error": "Too Many Requests"}, "rate_limited"),
        # A quota message under a 403 is a rate limit, not a permission problem.
        (
            {"code": 403, "error_class": "HTTPError", "error": "Daily quota exceeded for project"},
            "rate_limited",
        ),
        # Throttling under a 400 is a rate limit, not a schema problem.
        (
            {"code": 400, "error_class": "BadRequest", "error": "Request throttled, slow down"},
            "rate_limited",
        ),
        (
            {"code": 403, "error_class": "Forbidden", "error": "Missing scope orders:read"},
            "tool_permission",
        ),
        ({"code": 401, "error_class": "AuthError", "error": "Invalid token"}, "tool_permission"),
        ({"error_class": "ReadTimeout", "error": "Timed out after 30s"}, "timeout"),
        # A latency that hits the deadline with no error class is a timeout too.
        ({"ms": 9_980}, "timeout"),
        # A 200 whose body then fails to parse: the response shape changed.
        (
            {"code": 200, "error_class": "KeyError", "error": "'items' while parsing response"},
            "tool_schema_mismatch",
        ),
        (
            {"code": 422, "error_class": "ValidationError", "error": "field 'email' is required"},
            "tool_schema_mismatch",
        ),
        (
            {"code": 500, "error_class": "NullPointerException", "error": "at Handler.java:42"},
            "unknown",
        ),
    ],
)
def test_failures_are_classified_by_message_and_behaviour(personas, call, expected):
    r = report_for(personas.tenant, _one_failure(**call))
    assert r["category"] == expected, r["scores"]
    assert r["insufficient_evidence"] is False
    assert r["root_evidence_id"] == "ev_tool_c1"


def test_recovered_error_is_a_decoy_and_the_later_failure_is_the_cause(personas):
    b = RunBuilder("r-decoy", error_type="ToolError", error_message="crm_api call failed")
    b.step("Fetch orders")
    b.call("orders_api", "failure", code=429, error_class="HTTPError", error="Too Many Requests")
    b.call("orders_api", "success", result="3 orders")
    b.step("Update CRM", "failure")
    b.call(
        "crm_api",
        "failure",
        code=403,
        error_class="Forbidden",
        error="Permission denied for crm:write",
    )
    r = report_for(personas.tenant, b.build())
    assert r["category"] == "tool_permission", r["scores"]
    assert r["root_evidence_id"] == "ev_tool_c3"
    assert index_roles(r)["c1"] == "recovered"
    assert "ev_tool_c1" not in r["hypotheses"][0]["evidence_ids"]


def test_continue_on_error_step_is_not_the_cause(personas):
    b = RunBuilder("r-coe", error_type="ToolCallError", error_message="Tool call failed")
    b.step("Enrich (optional)", "failure", coe=True)
    b.call("enrichment_api", "failure", error_class="ReadTimeout", error="timed out")
    b.step("Create invoice", "failure")
    b.call(
        "billing_api",
        "failure",
        code=400,
        error_class="ValidationError",
        error="Missing required field: 'currency'",
    )
    r = report_for(personas.tenant, b.build())
    assert r["category"] == "tool_schema_mismatch", r["scores"]
    assert index_roles(r)["c1"] == "tolerated" and r["root_evidence_id"] == "ev_tool_c2"


def test_the_failure_the_run_error_names_wins_over_an_earlier_one(personas):
    b = RunBuilder("r-named", error_type="PermissionError", error_message="crm_api: access denied")
    b.step("Look up", "failure")
    b.call("geo_api", "failure", error_class="ServiceError", error="upstream unavailable")
    b.step("Write", "failure")
    b.call("crm_api", "failure", code=403, error_class="Forbidden", error="access denied")
    r = report_for(personas.tenant, b.build())
    assert r["category"] == "tool_permission" and r["root_evidence_id"] == "ev_tool_c2"


def test_same_call_same_result_repeated_is_a_planner_loop(personas):
    b = RunBuilder(
        "r-loop", error_type="AgentStopped", error_message="Stopped: max iterations reached"
    )
    b.step("Think", "failure", ms=5000)
    for _ in range(5):
        b.call("get_ticket", args={"id": 7}, result="status: open")
    r = report_for(personas.tenant, b.build())
    assert r["category"] == "planner_loop" and r["hypotheses"][0]["confidence"] == "high"
    assert len(r["hypotheses"][0]["evidence_ids"]) >= 5


def test_different_empty_queries_are_empty_retrieval_not_a_loop(personas):
    b = RunBuilder(
        "r-empty", error_type="AnswerError", error_message="Could not answer the question"
    )
    b.step("Retrieve")
    for q in ("vpn error 809", "vpn 809 windows", "l2tp vpn fails"):
        b.call("kb_search", args={"query": q}, result="No results")
    b.step("Answer", "failure", output="No context to answer from")
    r = report_for(personas.tenant, b.build())
    assert r["category"] == "retrieval_empty", r["scores"]
    assert r["scores"]["planner_loop"] == 0


def test_the_same_empty_query_repeated_is_a_loop(personas):
    b = RunBuilder(
        "r-empty-loop", error_type="AgentStopped", error_message="Stopped after 12 steps"
    )
    b.step("Retrieve", "failure")
    for _ in range(4):
        b.call("kb_search", args={"query": "vpn"}, result="No results")
    r = report_for(personas.tenant, b.build())
    assert r["category"] == "planner_loop", r["scores"]


def _regression_pair(correlation_ids=("input-42",), input_summary="How do I reset MFA?"):
    base = RunBuilder("r-base", version="1.9.0", status="success", correlation_ids=correlation_ids)
    base.step("Draft answer", input_summary=input_summary, output="Steps to reset MFA …")
    new = RunBuilder(
        "r-new",
        version="2.0.0",
        error_type="EvalFailed",
        error_message="Answer rejected by the evaluator",
        correlation_ids=correlation_ids,
    )
    new.step(
        "Draft answer",
        "failure",
        input_summary=input_summary,
        output="Answer off-topic (score 0.2)",
    )
    return base.build(), new.build()


def test_new_version_failing_where_the_baseline_passed_is_a_prompt_regression(personas):
    r = report_for(personas.tenant, *_regression_pair())
    assert r["category"] == "prompt_regression", r["scores"]
    assert "ev_baseline_r-base" in r["hypotheses"][0]["evidence_ids"]


def test_baseline_found_by_same_first_input_without_correlation_ids(personas):
    r = report_for(personas.tenant, *_regression_pair(correlation_ids=()))
    assert r["category"] == "prompt_regression"


def test_no_baseline_no_regression_claim(personas):
    _, new = _regression_pair()
    r = report_for(personas.tenant, new)
    assert r["category"] != "prompt_regression" and r["scores"]["prompt_regression"] == 0


def test_a_successful_run_has_nothing_to_explain(personas):
    r = report_for(personas.tenant, seed_run(status="success"))
    assert r["insufficient_evidence"] is True and "succeeded" in r["insufficient_reason"]


def test_a_generic_error_and_a_generic_failed_step_are_insufficient(personas):
    b = RunBuilder("r-thin", error_message="error")
    b.step("Do it", "failure", output="failed")
    r = report_for(personas.tenant, b.build())
    assert r["insufficient_evidence"] is True and r["category"] == "unknown"


def test_rca_of_a_200_event_run_takes_under_a_second(personas):
    b = RunBuilder("r-big", error_type="ToolCallError", error_message="billing_api failed")
    for i in range(60):
        b.step(f"step {i}")
        b.call("orders_api", args={"page": i}, result=f"{i} orders")
        b.call("geo_api", args={"page": i}, result="ok")
    b.step("Bill", "failure")
    b.call(
        "billing_api",
        "failure",
        code=400,
        error_class="ValidationError",
        error="Missing required field: 'currency'",
    )
    payload = b.build()
    ingest_runs(tenant=personas.tenant, runs=[parse_run(payload)])
    from agents.models import Run

    run = Run.objects.for_tenant(personas.tenant).get(run_id="r-big")
    started = time.perf_counter()
    report = analyse(*telemetry_of(run))
    assert time.perf_counter() - started < 1.0
    assert report["category"] == "tool_schema_mismatch"
