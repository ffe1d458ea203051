"""Structured logs (agentops.logging_config): JSON lines with request id, tenant, user, run id
and trace id, redacted; readable console lines in development."""

from __future__ import annotations

import io
import json
import logging
from contextlib import contextmanager

import pytest
import structlog
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentops import logging_config, tracing
from agentops.redaction import RedactingFilter

CANARY = "sk-ant-Canary0LogLine0Secret77"


@contextmanager
def captured(renderer="json"):
    """The handler settings LOGGING installed, writing to a buffer with the given renderer."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactingFilter) for f in h.filters)
    )
    stream = io.StringIO()
    old_stream = handler.setStream(stream)
    old_formatter = handler.formatter
    handler.setFormatter(logging_config.formatter(renderer))
    try:
        yield stream
    finally:
        handler.setStream(old_stream)
        handler.setFormatter(old_formatter)


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_request_logs_json_with_request_id_tenant_and_user_and_no_secret(personas, client_for):
    client = client_for(personas.agent)
    with captured() as stream:
        response = client.get(f"/no-such-page/{CANARY}/", headers={"X-Request-ID": "req-12345678"})
    assert response.status_code == 404
    assert response["X-Request-ID"] == "req-12345678"
    records = lines(stream)
    not_found = [r for r in records if r["logger"] == "django.request"]
    assert not_found, records
    line = not_found[0]
    assert line["level"] == "warning"
    assert line["request_id"] == "req-12345678"
    assert line["tenant"] == "acme" and line["user"] == "alex"
    assert "/no-such-page/" in line["event"]
    for key in logging_config.CONTEXT_KEYS:
        assert key in line
    assert CANARY not in stream.getvalue()


def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(client):
    first = client.get("/healthz-nope", headers={"X-Request-ID": "bad id\nwith newline"})
    second = client.get("/healthz-nope")
    for response in (first, second):
        assert len(response["X-Request-ID"]) == 32
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_bound_values_keywords_and_tracebacks_are_redacted():
    log = structlog.stdlib.get_logger("agentops.test")
    with captured() as stream, structlog.contextvars.bound_contextvars(user=f"robin {CANARY}"):
        log.warning("reset for %s", f"password: {CANARY}", detail={"token": CANARY})
        try:
            raise RuntimeError(f"connect failed with api key {CANARY}")
        except RuntimeError:
            logging.getLogger("agentops.test").exception("step failed")
    written = stream.getvalue()
    assert CANARY not in written
    records = lines(stream)
    assert records[0]["event"].startswith("reset for")
    assert "[REDACTED" in records[0]["detail"]["token"]
    assert "RuntimeError" in records[1]["exception"]


def test_every_line_of_an_agent_step_names_the_run_and_the_trace(
    personas, make_ticket, monkeypatch
):
    from agents import engine
    from agents.blueprints.base import Blueprint
    from incidents.services import ticket_start_agent

    original = Blueprint.run_state

    def run_state(self, state, ctx):  # something inside a step logs, with a secret in it
        logging.getLogger("incidents.pipeline").warning("in %s: password=%s", state, CANARY)
        return original(self, state, ctx)

    monkeypatch.setattr(Blueprint, "run_state", run_state)
    exporter = InMemorySpanExporter()
    tracing.configure(span_processor=SimpleSpanProcessor(exporter))
    ticket = make_ticket(personas.tenant, personas.requester, start_agent=False)
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    with captured() as stream:
        for _ in range(10):
            if engine.advance(run.pk) != "advanced":
                break
        logging.getLogger("incidents.pipeline").warning("after the run")
    records = lines(stream)
    in_steps = [r for r in records if r["event"].startswith("in ")]
    assert len(in_steps) >= 2, records
    assert {r["run_id"] for r in in_steps} == {run.run_id}
    assert {r["tenant"] for r in in_steps} == {"acme"}
    step_spans = {
        (format(s.context.trace_id, "032x"), format(s.context.span_id, "016x"))
        for s in exporter.get_finished_spans()
        if s.name.startswith("agent.step ")
    }
    assert {(r["trace_id"], r["span_id"]) for r in in_steps} <= step_spans
    assert records[-1]["event"] == "after the run" and records[-1]["run_id"] is None
    assert CANARY not in stream.getvalue()
    exporter.clear()


@pytest.mark.parametrize("renderer", ["console"])
def test_development_output_is_a_readable_line_not_json(renderer):
    with captured(renderer) as stream:
        logging.getLogger("agentops.test").warning("queue %s is slow", "triage")
    text = stream.getvalue()
    assert "queue triage is slow" in text and "warning" in text
    assert not text.lstrip().startswith("{")


def test_a_workers_own_handlers_get_the_structured_formatter(settings):
    from celery.signals import after_setup_logger

    import agentops.celery  # noqa: F401  (connects the receivers)

    settings.LOG_FORMAT = "json"
    logger = logging.Logger("worker-json")
    stream = io.StringIO()
    logger.addHandler(logging.StreamHandler(stream))
    after_setup_logger.send(
        sender=None, logger=logger, loglevel=logging.INFO, logfile=None, format=""
    )
    logger.warning("task done, token=%s", CANARY)
    [line] = lines(stream)
    assert line["event"].startswith("task done") and line["level"] == "warning"
    assert CANARY not in stream.getvalue()


def test_our_own_identifiers_are_never_mistaken_for_secrets():
    """A random trace id can hold a digit run that passes the card-number check; it is ours,
    so it stays whole. Text in any other field is still redacted."""
    from agentops.logging_config import redact_event

    trace = "8e4111111111111111e38def756cc833"  # 4111 1111 1111 1111 passes the Luhn check
    event = redact_event(
        None,
        "info",
        {"trace_id": trace, "span_id": "b82d734e12216a9b", "event": "card 4111111111111111"},
    )
    assert event["trace_id"] == trace and event["span_id"] == "b82d734e12216a9b"
    assert "4111111111111111" not in event["event"]
    spoofed = redact_event(None, "info", {"trace_id": "card 4111111111111111"})
    assert "4111111111111111" not in spoofed["trace_id"]
