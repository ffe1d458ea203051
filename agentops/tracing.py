"""OpenTelemetry tracing: one trace from the HTTP request through a run's Celery steps, model
calls and tool calls.

Off by default. ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
turns it on and exports with the official OTLP/HTTP exporter, which reads the standard
``OTEL_*`` variables (headers, timeout, compression); ``OTEL_SERVICE_NAME`` names the process.
The official instrumentations do the plumbing: Django (a server span per request), Celery (the
trace context travels in the task's headers, so the worker's steps join the request's trace)
and psycopg (a span per query). The engine adds its own spans with the decorators below:
``agent.run.start``, ``agent.step <state>``, ``gen_ai.chat`` and ``tool <name>``.

When tracing is off every helper here is a no-op through the API's non-recording spans, so
the engine pays one attribute lookup per step.
"""

from __future__ import annotations

import functools
import os
import threading
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace

_lock = threading.Lock()
_state = {"provider": None, "instrumented": False}
tracer = trace.get_tracer("agentops")


def enabled_by_env() -> bool:
    return (
        bool(
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
        and os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true"
    )


def configure(*, span_processor=None) -> bool:
    """Install the SDK's tracer provider and the instrumentations, once per process.

    Without arguments: only when OTLP is configured (``enabled_by_env``), with a batching OTLP
    exporter. With ``span_processor`` (tests: a SimpleSpanProcessor over the SDK's in-memory
    exporter) that processor is added whatever the environment says. Returns whether tracing
    is on."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    if span_processor is None and not enabled_by_env() and _state["provider"] is None:
        return False
    with _lock:
        if _state["provider"] is None:
            provider = TracerProvider(
                resource=Resource.create(
                    {"service.name": os.environ.get("OTEL_SERVICE_NAME", "agentops")}
                )
            )
            if enabled_by_env():
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
                from opentelemetry.sdk.trace.export import BatchSpanProcessor

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(provider)
            _state["provider"] = provider
        if span_processor is not None:
            _state["provider"].add_span_processor(span_processor)
        _instrument()
    return True


def _instrument() -> None:
    if _state["instrumented"]:
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    DjangoInstrumentor().instrument(excluded_urls="healthz,metrics,static/.*")
    from django.conf import settings

    from agentops.tracing_django import OFFICIAL, SAFE

    # The same middleware, serving a path it cannot encode untraced instead of failing.
    settings.MIDDLEWARE = [SAFE if m == OFFICIAL else m for m in settings.MIDDLEWARE]
    CeleryInstrumentor().instrument()
    PsycopgInstrumentor().instrument(skip_dep_check=True)
    # Django sets its own cursor class on each new connection (client-side binding), which
    # replaces the instrumentor's: wrap Django's class instead, on every connection.
    from django.db import connections
    from django.db.backends.signals import connection_created

    connection_created.connect(_trace_connection, dispatch_uid="agentops.tracing.psycopg")
    for wrapper in connections.all(initialized_only=True):
        if wrapper.connection is not None:
            _trace_connection(connection=wrapper)
    _state["instrumented"] = True


def _trace_connection(sender=None, connection=None, **kwargs) -> None:
    """A span per query on this Django connection, keeping Django's cursor class."""
    try:  # the instrumentation's own traced cursor class, built over Django's
        from opentelemetry.instrumentation.psycopg import _new_cursor_factory
    except ImportError:  # a later release renamed it: queries go untraced, nothing breaks
        return
    raw = getattr(connection, "connection", None)
    if raw is None or getattr(raw, "_agentops_traced", False):
        return
    raw.cursor_factory = _new_cursor_factory(base_factory=raw.cursor_factory)
    raw._agentops_traced = True


def current_trace_id() -> str:
    """The current span's trace id (32 hex digits), or "" when nothing is being traced."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


# -- hooks the engine calls -----------------------------------------------------------------


def traced(name: str):
    """Decorator: run the function in a span named ``name`` (a child of the current one)."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            with tracer.start_as_current_span(name):
                return fn(*args, **kwargs)

        return inner

    return wrap


def capture():
    """The current context, to restore where work continues later (an on-commit enqueue)."""
    return otel_context.get_current()


@contextmanager
def restored(ctx):
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def traced_advance(fn):
    """Decorator of ``engine.advance(run_id)``: a span per step; the step's log context (run
    id, tenant) is bound by ``step_opened`` and dropped when the step ends."""
    from structlog.contextvars import bind_contextvars, clear_contextvars, get_contextvars

    @functools.wraps(fn)
    def inner(run_id, *args, **kwargs):
        before = get_contextvars()
        with tracer.start_as_current_span("agent.step") as span:
            span.set_attribute("agentops.run.pk", run_id)
            try:
                outcome = fn(run_id, *args, **kwargs)
            finally:
                clear_contextvars()
                bind_contextvars(**before)
            span.set_attribute("agentops.step.outcome", str(outcome))
            return outcome

    return inner


def step_opened(run, step) -> None:
    """Name the step's span after its state and bind the run to the step's log lines."""
    from structlog.contextvars import bind_contextvars

    bind_contextvars(run_id=run.run_id, tenant=run.tenant.slug)
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"agent.step {step.state}")
        span.set_attributes(
            {
                "agentops.run.id": run.run_id,
                "agentops.run.agent": run.agent_name,
                "agentops.tenant": run.tenant.slug,
                "agentops.step.seq": step.seq,
                "agentops.step.state": step.state,
            }
        )


def traced_model_call(fn):
    """Decorator of ``StepContext.complete``: a GenAI client span with model and usage."""

    @functools.wraps(fn)
    def inner(self, *args, **kwargs):
        with tracer.start_as_current_span("gen_ai.chat", kind=trace.SpanKind.CLIENT) as span:
            response = fn(self, *args, **kwargs)
            if span.is_recording():
                usage = getattr(response, "usage", None)
                span.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.system": str(getattr(response, "backend", "") or ""),
                        "gen_ai.request.model": str(getattr(response, "model", "") or ""),
                        "gen_ai.usage.input_tokens": int(getattr(usage, "input_tokens", 0) or 0),
                        "gen_ai.usage.output_tokens": int(getattr(usage, "output_tokens", 0) or 0),
                    }
                )
            return response

    return inner


def traced_tool_call(fn):
    """Decorator of the engine's ``execute(call)``: a span per tool execution."""

    @functools.wraps(fn)
    def inner(self, call, *args, **kwargs):
        with tracer.start_as_current_span(f"tool {call.tool_name}") as span:
            span.set_attribute("agentops.tool.name", call.tool_name)
            span.set_attribute("agentops.tool.call_id", str(call.call_id))
            result = fn(self, call, *args, **kwargs)
            span.set_attribute("agentops.tool.status", str(result.status))
            return result

    return inner
