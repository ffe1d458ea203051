"""The Celery application. Settings come from Django settings under the CELERY_ namespace."""

import os

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_postrun,
    task_prerun,
    worker_init,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops.settings")

app = Celery("agentops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Structured logs in workers too: task context on every line, the configured formatter on the
# worker's own handlers (agentops.logging_config).
from agentops.logging_config import connect_celery_signals  # noqa: E402

connect_celery_signals()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(sender=None, **kwargs):
    """Around each task what Django does around each request: close database connections
    older than CONN_MAX_AGE or broken, keep the others (settings.CELERY_DB_REUSE_MAX)."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # inline in the caller (tests): its connection and transaction are not ours
    from django.db import close_old_connections

    close_old_connections()


@after_setup_logger.connect
@after_setup_task_logger.connect
def redact_worker_logs(logger=None, **kwargs):
    """A worker replaces the root logger's handlers with its own: give them the same
    redacting filter as settings LOGGING, so no secret reaches a worker's log either."""
    from agentops.redaction import RedactingFilter

    for handler in getattr(logger, "handlers", []):
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


@worker_init.connect
def on_worker_init(sender=None, **kwargs):
    from django.conf import settings

    if getattr(settings, "WORKER_WARM_UP", True):
        warm_up()


# Modules a step imports on first use (inside functions), loaded at start instead: in the
# pipeline bench each pool process spent ~0.1 s of its first tickets importing them.
WARM_MODULES = (
    "agents.connectors.sandbox.connector",
    "agents.connectors.sandbox.operations",
    "knowledge.triage_model",
)


def warm_up() -> None:
    """Load at start what every worker's first ticket would otherwise load mid-step: the
    offline triage model (2.3 s of unpickling and scikit-learn imports, measured in the
    pipeline bench), the URL patterns notifications link to, the modules steps import on
    first use (``WARM_MODULES``, the connector backends) and the regular expressions Django
    compiles on first use (its e-mail validator's: ~0.1 s per process). A prefork worker does
    this once in the parent, before it forks, so its pool processes share the pages. A
    failure here only costs the first ticket the time again."""
    import importlib
    import logging

    try:
        from django.core.validators import validate_email
        from django.urls import get_resolver
        from django.utils.module_loading import import_string

        from agents.connectors.base import CONNECTOR_BACKENDS
        from incidents.nlu.model import get_model

        get_model()
        get_resolver()._populate()
        for name in WARM_MODULES:
            importlib.import_module(name)
        for path in sorted(set(CONNECTOR_BACKENDS.values())):
            import_string(path)
        validate_email("warm-up@example.com")
    except Exception:  # the worker must start regardless
        logging.getLogger(__name__).warning("worker warm-up failed", exc_info=True)
