"""OpenTelemetry tracing (agentops.tracing): one trace from the HTTP request that opens a ticket
through the Celery steps, model calls and tool calls of its run, checked with the SDK's
in-memory exporter; OTLP export when configured, off by default."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.conf import settings
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agentops import tracing
from agents.connectors.sandbox.models import DirectoryUser
from agents.engine import agent_config
from agents.models import Run, Step, ToolCall


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.configure(span_processor=SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # later tests' spans are dropped, not kept in memory


def hex_trace(span) -> str:
    return format(span.context.trace_id, "032x")


def test_one_ticket_is_one_trace_from_request_to_steps_model_and_tool_calls(
    personas, client_for, spans, django_capture_on_commit_callbacks
):
    config = agent_config(personas.tenant)
    config.auto_resolve_on_create = True
    config.save()
    DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="Robin", locked=True
    )
    client = client_for(personas.requester)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/tickets/new",
            {
                "title": "I'm locked out of my account",
                "description": "Locked after 5 tries.",
                "category": "access",
                "priority": "medium",
            },
        )
    assert response.status_code in (200, 302)
    run = Run.objects.for_tenant(personas.tenant).get()
    assert run.step_count >= 3

    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    [root] = [s for s in finished if s.kind == SpanKind.SERVER]
    assert root.parent is None and "POST" in root.name
    # 1. One trace for everything the run did, and the run knows it. (Work that other code
    # enqueues after commit, such as learning from the resolution, is not the run's.)
    of_the_run = [
        s
        for s in finished
        if s.name.startswith(("agent.", "gen_ai.", "tool ", "run/agents.tasks.advance_run"))
    ]
    assert {hex_trace(s) for s in of_the_run} == {hex_trace(root)}
    assert run.trace_id == hex_trace(root)

    def parent_of(span):
        return by_id[span.parent.span_id]

    def ancestors(span):
        while span.parent is not None:
            span = parent_of(span)
            yield span

    # 2. Each step is a span inside a Celery task span, in the order of the run's steps.
    steps = sorted(
        (s for s in finished if s.name.startswith("agent.step ")), key=lambda s: s.start_time
    )
    recorded = list(Step.objects.for_tenant(personas.tenant).filter(run=run).order_by("seq"))
    assert [s.attributes["agentops.step.state"] for s in steps] == [r.state for r in recorded]
    for step in steps:
        task = parent_of(step)
        assert task.kind == SpanKind.CONSUMER and task.name == "run/agents.tasks.advance_run"
        assert step.attributes["agentops.run.id"] == run.run_id
    # The first step's task descends from the request (through agent.run.start); each later
    # one from the step before it, which enqueued it.
    assert any(a.name == "agent.run.start" for a in ancestors(steps[0]))
    for earlier, later in itertools.pairwise(steps):
        assert earlier in list(ancestors(later))

    # 3. Model calls and tool calls are spans inside their step.
    model_calls = [s for s in finished if s.name == "gen_ai.chat"]
    assert model_calls
    for call in model_calls:
        assert parent_of(call).name.startswith("agent.step ")
        assert call.attributes["gen_ai.system"] == "offline"
    executed = (
        ToolCall.objects.for_tenant(personas.tenant)
        .filter(run=run)
        .exclude(status__in=["proposed", "blocked", "waiting_approval"])
    )
    tool_spans = [s for s in finished if s.name.startswith("tool ")]
    assert sorted(s.attributes["agentops.tool.name"] for s in tool_spans) == sorted(
        c.tool_name for c in executed
    )
    assert "unlock_account" in {s.attributes["agentops.tool.name"] for s in tool_spans}
    for span in tool_spans:
        assert any(a.name.startswith("agent.step ") for a in ancestors(span))
    # 4. The database is traced too (psycopg), under the request and under the steps.
    db_spans = [s for s in finished if s.kind == SpanKind.CLIENT and s.attributes.get("db.system")]
    assert any(any(a.name.startswith("agent.step ") for a in ancestors(s)) for s in db_spans)


def test_a_run_started_outside_a_request_has_its_own_trace(personas, make_ticket, spans):
    from incidents.services import ticket_start_agent

    ticket = make_ticket(personas.tenant, personas.requester, start_agent=False)
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    [start] = [s for s in spans.get_finished_spans() if s.name == "agent.run.start"]
    assert start.parent is None and run.trace_id == hex_trace(start)


def test_without_tracing_runs_have_no_trace_id(personas, make_ticket, monkeypatch):
    from opentelemetry import trace

    from incidents.services import ticket_start_agent

    # The API's no-op tracer: what every process has unless OTLP (or a test) turned it on.
    monkeypatch.setattr(tracing, "tracer", trace.NoOpTracer())
    ticket = make_ticket(personas.tenant, personas.requester, start_agent=False)
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    assert run.trace_id == ""


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _django_process(env_extra: dict) -> subprocess.CompletedProcess:
    code = (
        "import django; django.setup()\n"
        "from opentelemetry import trace\n"
        "from agentops import tracing\n"
        "with tracing.tracer.start_as_current_span('probe-span'):\n"
        "    print('trace', tracing.current_trace_id())\n"
        "provider = trace.get_tracer_provider()\n"
        "getattr(provider, 'force_flush', lambda: None)()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", **env_extra)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_off_by_default_and_exported_by_otlp_when_configured():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    off = _django_process({})
    assert "trace \n" in off.stdout  # no recording span: no trace id

    _Collector.received = []
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        on = _django_process(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
                "OTEL_SERVICE_NAME": "agentops-test",
            }
        )
    finally:
        server.shutdown()
    trace_id = on.stdout.split("trace ", 1)[1].split()[0]
    assert len(trace_id) == 32
    [(path, body)] = _Collector.received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    names = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert names["service.name"] == "agentops-test"
    [span] = resource_spans.scope_spans[0].spans
    assert span.name == "probe-span" and span.trace_id.hex() == trace_id


def test_a_path_the_tracer_cannot_encode_is_served_untraced_not_a_500(personas, client, spans):
    # The Django test client hands PATH_INFO over decoded (an emoji stays one character); the
    # official middleware's URL builder encodes it as Latin-1 and used to raise.
    response = client.get("/api/v1/tickets/%F0%9F%92%A5")
    assert response.status_code in (401, 404)
    assert not [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    traced = client.get("/api/v1/tickets/REQ0000001")
    assert traced.status_code in (401, 404)
    assert [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
