"""OTLP/HTTP traces: spans from the real opentelemetry-sdk exporter, and OTLP JSON by hand."""

from __future__ import annotations

import json

import pytest

from agents.models import Run, Step, ToolCall
from agents.rca.analyser import analyse
from agents.rca.collect import telemetry_of
from agents.telemetry.secrets import secret_create

URL = "/api/v1/otlp/v1/traces"


@pytest.mark.django_db(transaction=True)
def test_spans_from_the_real_sdk_exporter_become_one_run(live_server, personas):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    _, raw = secret_create(tenant=personas.tenant)
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "travel-svc", "deployment.environment.name": "staging"}
        )
    )
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}{URL}", headers={"X-Ingest-Secret": raw}, timeout=30
    )
    # One export per ended span: the trace arrives in four requests and must be merged.
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    agent = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "travel-agent",
        "gen_ai.agent.version": "3.1.0",
        "gen_ai.conversation.id": "conv-77",
    }
    with tracer.start_as_current_span("invoke_agent travel-agent", attributes=agent) as root:
        trace_id = format(root.get_span_context().trace_id, "032x")
        with tracer.start_as_current_span(
            "chat claude",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "claude-x",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool flights_api",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "flights_api",
                "gen_ai.tool.call.arguments": json.dumps({"from": "ZRH", "to": "LIS"}),
                "http.response.status_code": 429,
                "error.type": "RateLimitError",
            },
        ) as tool:
            tool.add_event("guardrail.retry_budget", {"message": "retry budget exhausted"})
            tool.set_status(Status(StatusCode.ERROR, "Too Many Requests: rate limit exceeded"))
        with tracer.start_as_current_span(
            "chat claude", attributes={"gen_ai.operation.name": "chat"}
        ):
            pass
        root.set_status(Status(StatusCode.ERROR, "flights_api failed"))
    assert provider.force_flush()
    provider.shutdown()

    run = Run.objects.for_tenant(personas.tenant).get(run_id=f"otel-{trace_id}")
    assert (run.origin, run.agent_name, run.agent_version, run.environment, run.model) == (
        "ingested",
        "travel-agent",
        "3.1.0",
        "staging",
        "claude-x",
    )
    assert run.status == "failed" and run.error_message == "flights_api failed"
    assert (run.tokens_prompt, run.tokens_completion) == (120, 30)
    assert run.correlation_ids == ["conv-77"] and run.trace_id == trace_id
    assert Step.objects.for_tenant(personas.tenant).filter(run=run).count() == 2
    call = ToolCall.objects.for_tenant(personas.tenant).get(run=run)
    assert (call.tool_name, call.status, call.status_code, call.error_class) == (
        "flights_api",
        "failure",
        429,
        "RateLimitError",
    )
    assert call.args_json == {"from": "ZRH", "to": "LIS"} and call.step.name == "chat claude"
    assert run.guardrail_events.get().type == "guardrail.retry_budget"
    assert analyse(*telemetry_of(run))["category"] == "rate_limited"


def _span(span_id, name, *, parent="", attrs=None, error="", start=1, end=2):
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + start * 1_000_000),
        "endTimeUnixNano": str(1_700_000_000_000_000_000 + end * 1_000_000),
        "attributes": [
            {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
            for k, v in (attrs or {}).items()
        ],
    }
    if error:
        span["status"] = {"code": 2, "message": error}
    return span


def _doc(*spans):
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [{"spans": list(spans)}],
            }
        ]
    }


@pytest.mark.django_db
def test_otlp_json_by_hand_with_a_bearer_token(api, outsider_api, personas):
    tool = _span(
        "00f067aa0ba902b7",
        "execute_tool search",
        parent="00f067aa0ba902b6",
        attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "kb_search"},
        start=2,
        end=3,
    )
    response = api.client.post(
        URL, json.dumps(_doc(tool)), content_type="application/json", **api.headers
    )
    assert response.status_code == 200, response.content
    run = Run.objects.for_tenant(personas.tenant).get(
        run_id="otel-5b8efff798038103d269b633813fc60c"
    )
    assert run.status == "running"  # the root span has not arrived yet
    root = _span(
        "00f067aa0ba902b6", "agent", attrs={"gen_ai.agent.name": "kb-agent"}, end=9, error="boom"
    )
    api.client.post(URL, json.dumps(_doc(root)), content_type="application/json", **api.headers)
    run.refresh_from_db()
    assert run.status == "failed" and run.agent_name == "kb-agent"
    assert ToolCall.objects.for_tenant(personas.tenant).filter(run=run).count() == 1
    assert not Run.objects.for_tenant(personas.other_tenant).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, content_type, status",
    [
        ("{nope", "application/json", 400),
        (json.dumps({"resourceSpans": "x"}), "application/json", 400),
        (json.dumps(_doc({**_span("1", "x"), "spanId": "!!"})), "application/json", 400),
        (
            json.dumps(_doc({**_span("00f067aa0ba902b7", "x"), "startTimeUnixNano": "soon"})),
            "application/json",
            400,
        ),
        (b"\x0a\xff\xff\xff", "application/x-protobuf", 400),
        (
            json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [1, 2]}]}]}),
            "application/json",
            400,
        ),
        (
            json.dumps(_doc({**_span("00f067aa0ba902b7", "x", attrs={"k": "a\u0000b"})})),
            "application/json",
            400,
        ),
    ],
)
def test_bad_otlp_is_a_400(api, body, content_type, status):
    response = api.client.post(URL, body, content_type=content_type, **api.headers)
    assert response.status_code == status, response.content
    assert not Run.objects.unscoped("test").exists()


@pytest.mark.django_db
def test_otlp_needs_credentials(client):
    response = client.post(URL, json.dumps(_doc()), content_type="application/json")
    assert response.status_code == 401
