"""Structured logs: one JSON object per line in production, readable lines in development.

structlog (the maintained structured-logging library, with first-class stdlib integration) is
the formatter of every handler in settings LOGGING, so the lines Django, Celery and our own
``logging.getLogger(__name__)`` calls write get the same shape as structlog's own loggers:

    {"event": "...", "level": "warning", "logger": "...", "timestamp": "...",
     "request_id": "...", "tenant": "acme", "user": "alex", "run_id": "run_...",
     "trace_id": "..."}

The context (request id, tenant, user, run id) lives in contextvars bound by
``RequestContextMiddleware`` (web), by the Celery signal receivers below (workers) and by the
engine around a step (``agentops.tracing.traced_advance``); the trace id is read from the
current OpenTelemetry span. Every value is redacted (``agentops.redaction``) after the context
is merged, so a secret bound as context or passed as a keyword never reaches a line either.
"""

from __future__ import annotations

import re
import uuid

import structlog
from django.core.signals import request_finished
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars

from agentops.redaction import redact, redact_value

CONTEXT_KEYS = ("request_id", "tenant", "user", "run_id", "trace_id")
REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def add_trace_ids(logger, method_name, event_dict):
    """The current OpenTelemetry span's trace and span id, when one is recording."""
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_context.span_id, "016x"))
    return event_dict


def add_context_keys(logger, method_name, event_dict):
    """Every line carries every context key (null when not known), so queries can rely on them."""
    for key in CONTEXT_KEYS:
        event_dict.setdefault(key, None)
    return event_dict


# Identifiers we generate ourselves (hex or our own formats), never a person's text: a random
# trace id can hold a run of digits that passes the card-number check and was "redacted".
_OWN_IDS = {
    "trace_id": re.compile(r"[0-9a-f]{32}"),
    "span_id": re.compile(r"[0-9a-f]{16}"),
    "run_id": re.compile(r"run-[0-9a-f]{16}"),
}


def redact_event(logger, method_name, event_dict):
    """Redact the message, every bound value and the rendered exception."""
    for key, value in list(event_dict.items()):
        if key in ("exc_info", "_record", "_from_structlog"):
            continue
        shape = _OWN_IDS.get(key)
        if shape is not None and isinstance(value, str) and shape.fullmatch(value):
            continue  # ours, and plainly an identifier (anything else is still redacted)
        if isinstance(value, str):
            event_dict[key] = redact(value).text
        elif isinstance(value, (dict, list)):
            event_dict[key] = redact_value(value)[0]
        elif value is not None and not isinstance(value, (int, float, bool)):
            event_dict[key] = redact(str(value)).text
    return event_dict


def _shared_processors() -> list:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        add_context_keys,
    ]


def formatter(renderer: str = "json") -> structlog.stdlib.ProcessorFormatter:
    """The formatter of settings LOGGING's handlers (``"()"`` factory): json or console."""
    if renderer == "json":
        final = [
            structlog.processors.format_exc_info,
            redact_event,
            structlog.processors.JSONRenderer(),
        ]
    else:
        final = [
            structlog.processors.format_exc_info,
            redact_event,
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )


def configure_structlog() -> None:
    """structlog's own loggers hand their events to the stdlib handlers (one path for all)."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def request_id_from(value: str | None) -> str:
    """A caller's X-Request-ID when it is a sane token, else a new one."""
    if value and _SAFE_REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Binds request id, tenant and user for every line logged during the request (after
    TenantMiddleware), and answers with the request id so a caller can quote it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        user = getattr(request, "user", None)
        tenant = getattr(request, "tenant", None)
        clear_contextvars()
        bind_contextvars(
            request_id=request.request_id,
            tenant=tenant.slug if tenant is not None else None,
            user=user.get_username() if user is not None and user.is_authenticated else None,
        )
        # Cleared when the response is finished (request_finished, below), not here: Django
        # logs a 4xx/5xx response after the middleware chain has returned.
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        return response


def _request_finished(**kwargs):
    clear_contextvars()


request_finished.connect(_request_finished, dispatch_uid="agentops.logging_config.clear")


def run_context(run):
    """Context manager: lines logged inside carry the run's id and tenant (engine steps)."""
    return bound_contextvars(run_id=run.run_id, tenant=run.tenant.slug)


def _task_prerun(task_id=None, task=None, **kwargs):
    if getattr(getattr(task, "request", None), "is_eager", False):
        return  # inline in the caller: keep the caller's context
    clear_contextvars()
    bind_contextvars(request_id=task_id, task=getattr(task, "name", None))


def _task_postrun(task=None, **kwargs):
    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    clear_contextvars()


def _worker_handlers(logger=None, **kwargs):
    """A worker replaces the root logger's handlers: give them the configured formatter."""
    from django.conf import settings

    fmt = formatter(getattr(settings, "LOG_FORMAT", "json"))
    for handler in getattr(logger, "handlers", []):
        handler.setFormatter(fmt)


def connect_celery_signals() -> None:
    """Called once from agentops.celery: task context and worker log format."""
    from celery.signals import (
        after_setup_logger,
        after_setup_task_logger,
        task_postrun,
        task_prerun,
    )

    task_prerun.connect(_task_prerun, weak=False)
    task_postrun.connect(_task_postrun, weak=False)
    after_setup_logger.connect(_worker_handlers, weak=False)
    after_setup_task_logger.connect(_worker_handlers, weak=False)


def get_logger(name: str):
    return structlog.stdlib.get_logger(name)
