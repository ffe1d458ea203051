"""One trace across processes: the console request (this process, in-memory exporter) and the
run's steps on a real Celery worker (another process, exporting by OTLP/HTTP to a local
collector). The trace context travels in the task headers through the real broker."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agentops import tracing
from agents.connectors.sandbox.models import DirectoryUser
from agents.engine import agent_config
from agents.models import Run


class Collector(BaseHTTPRequestHandler):
    spans: list = []
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        with self.lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.spans.extend(scope.spans)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    Collector.spans = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


@pytest.mark.worker
def test_the_request_and_the_workers_steps_are_one_trace(
    worker_factory, real_delivery, personas, client_for, collector
):
    spans = InMemorySpanExporter()
    tracing.configure(span_processor=SimpleSpanProcessor(spans))
    config = agent_config(personas.tenant)
    config.auto_resolve_on_create = True
    config.llm_backend = "offline"
    config.save()
    DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="Robin", locked=True
    )
    worker = worker_factory(
        OTEL_EXPORTER_OTLP_ENDPOINT=collector,
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_SERVICE_NAME="agentops-worker",
    )
    response = client_for(personas.requester).post(
        "/tickets/new",
        {
            "title": "I'm locked out of my account",
            "description": "Locked after 5 tries.",
            "category": "access",
            "priority": "medium",
        },
    )
    assert response.status_code == 302

    def finished():
        run = Run.objects.for_tenant(personas.tenant).first()
        return run if run is not None and not run.is_active else None

    run = wait_for(finished)
    assert run.status == "succeeded", (run.error_message, worker.log())
    [server] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    trace_id = format(server.context.trace_id, "032x")
    assert run.trace_id == trace_id
    publish = [
        s
        for s in spans.get_finished_spans()
        if s.kind == SpanKind.PRODUCER and format(s.context.trace_id, "032x") == trace_id
    ]
    assert publish, "the request published no traced task"

    def worker_steps():
        with Collector.lock:
            steps = [s for s in Collector.spans if s.name.startswith("agent.step ")]
        return steps if len(steps) >= run.step_count else None

    steps = wait_for(worker_steps, timeout=30)
    assert {s.trace_id.hex() for s in steps} == {trace_id}
    with Collector.lock:
        received = list(Collector.spans)
    tasks = {s.span_id: s for s in received if s.name == "run/agents.tasks.advance_run"}
    assert len(tasks) == run.deliveries
    # The first step's task span is a child of the request's publish span, across processes.
    first_task = min(tasks.values(), key=lambda s: s.start_time_unix_nano)
    assert first_task.parent_span_id in {s.context.span_id.to_bytes(8, "big") for s in publish}
    assert {s.name for s in received} >= {"gen_ai.chat", "tool unlock_account"}
    spans.shutdown()
