"""Celery tasks of the agent runtime. Thin: load by id, call the engine."""

from __future__ import annotations

import logging
from contextlib import contextmanager

from celery import Task, shared_task
from celery.signals import task_prerun
from django.db import connection

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
    # Nobody waits on a step's return value (the run row is the result): storing it in the
    # result backend cost a Redis round trip and a serialisation per step.
    ignore_result=True,
)
def advance_run_task(self, run_id: int) -> str:
    with asynchronous_commit():
        return engine.advance(run_id)


@contextmanager
def asynchronous_commit():
    """Commit a step's transactions without waiting for the WAL flush (``synchronous_commit``
    off, for this task only).

    A commit that waits for fdatasync costs about 6 ms on these disks, and a step commits
    three to five times, so durability waits were a third of a run's wall time. Turning it off
    is safe here because of what a run already guarantees against a worker crash: if
    PostgreSQL itself crashes, it loses at most the last few hundred milliseconds of commits,
    always a suffix (never one in the middle), so the run row falls back to an earlier
    checkpoint and the step is done again; tool calls carry idempotency keys (the sandbox
    connector records them in the same database, external systems dedupe on them), so a
    re-done step never applies an effect twice. Tickets, approvals and audit written by web
    requests keep synchronous commits.

    The setting stays on the worker's connection between steps (set once per connection, not
    twice per step); any other task that runs on that connection puts it back first
    (``_synchronous_for_other_tasks``).
    """
    raw = connection.connection
    if raw is None or getattr(connection, "_agentops_async_commit", None) is not raw:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
        connection._agentops_async_commit = connection.connection
    yield


@task_prerun.connect
def _synchronous_for_other_tasks(sender=None, **kwargs):
    """Every task but a run's step commits synchronously, as web requests do."""
    if getattr(sender, "name", "") == advance_run_task.name:
        return
    raw = getattr(connection, "_agentops_async_commit", None)
    if raw is not None and raw is connection.connection and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")
    connection._agentops_async_commit = None


@shared_task(name="agents.tasks.watchdog")
def watchdog_task() -> int:
    return engine.watchdog()
