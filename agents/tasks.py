"""Celery tasks of the agent runtime. Thin: load by id, call the engine."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from agents import engine

log = logging.getLogger(__name__)


class RunTask(Task):
    """On an unexpected failure the run is marked failed with the traceback (never left hanging)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if args:
            engine.mark_failed(int(args[0]), type(exc).__name__, str(exc), str(einfo))


@shared_task(
    base=RunTask,
    name="agents.tasks.advance_run",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(ConnectionError, TimeoutError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def advance_run_task(self, run_id: int) -> str:
    return engine.advance(run_id)


@shared_task(name="agents.tasks.watchdog")
def watchdog_task() -> int:
    return engine.watchdog()
