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


def warm_up() -> None:
    """Load at start what every worker's first ticket would otherwise load mid-step: the
    offline triage model (2.3 s of unpickling and scikit-learn imports, measured in the
    pipeline bench) and the URL patterns notifications link to. A prefork worker does this
    once in the parent, before it forks, so its pool processes share the pages. A failure
    here only costs the first ticket the time again."""
    import logging

    try:
        from django.urls import get_resolver

        from incidents.nlu.model import get_model

        get_model()
        get_resolver()._populate()
    except Exception:  # the worker must start regardless
        logging.getLogger(__name__).warning("worker warm-up failed", exc_info=True)
