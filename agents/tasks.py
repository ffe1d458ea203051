"""Celery tasks of the agent runtime. Thin: load by id, call the engine."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from datetime import timedelta

import kombu.exceptions
import redis.exceptions
from celery import Task, shared_task
from celery.signals import task_prerun
from django.db import connection
from django.utils import timezone

from agentops.postgres.statements import Statements
from agents import engine
from agents.engine.claiming import claim_hooks
from agents.models import Run, RunStatus

log = logging.getLogger(__name__)

# A broker that is down or restarting, as kombu and redis-py report it.
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError)


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
    try:
        worker = not self.request.is_eager
        with asynchronous_commit(bounded=worker), lease_heartbeat(enabled=worker):
            # A worker goes straight on to the run's next states (engine.advance).
            return engine.advance(run_id, chain=worker)
    except BROKER_ERRORS as exc:
        # The broker went away (typically in an after-commit send of this step's work). The
        # run is not broken: its checkpoint is in PostgreSQL and the sweeper sends it again
        # once the broker is back. Failing it here would escalate a healthy ticket.
        log.warning("run %s: broker unavailable (%s); left to the sweeper", run_id, exc)
        return "broker-unavailable"


# --------------------------------------------------------------------------- lease heartbeat

_heartbeat = threading.local()


class LeaseHeartbeat(threading.Thread):
    """Renews the lease of the run this worker claimed while its step runs, so a step longer
    than the lease is never handed to a second worker (two executions of one run at once).

    Fenced by the claim's delivery count: the renewal matches only while the run is still this
    delivery's (``deliveries`` unchanged, status running), so it can never revive a lease that
    another worker has since taken. If the worker process dies, the heartbeat dies with it, the
    lease expires and the sweeper hands the run on. A step that hangs is stopped by the task's
    time limit (CELERY_TASK_TIME_LIMIT), which kills the process, and with it the heartbeat.
    """

    def __init__(self, run_id: int, deliveries: int):
        super().__init__(name=f"lease-heartbeat-{run_id}", daemon=True)
        self.run_id = run_id
        self.deliveries = deliveries
        self.stopped = threading.Event()

    def run(self) -> None:
        from django.db import connection as thread_connection

        seconds = engine.lease_seconds()
        try:
            while not self.stopped.wait(max(seconds / 3.0, 0.2)):
                with thread_connection.cursor() as cursor:
                    cursor.execute(
                        f'UPDATE "{Run._meta.db_table}" SET lease_expires_at = %s '  # noqa: S608
                        "WHERE id = %s AND deliveries = %s AND status = %s AND lease_expires_at IS NOT NULL",
                        [
                            timezone.now() + timedelta(seconds=seconds),
                            self.run_id,
                            self.deliveries,
                            RunStatus.RUNNING,
                        ],
                    )
                    if cursor.rowcount == 0:
                        return  # the step is over (or the run is no longer ours)
        except Exception:  # the lease then simply expires; never break the step itself
            log.exception("lease heartbeat of run %s stopped", self.run_id)
        finally:
            thread_connection.close()


def _start_heartbeat(run) -> None:
    if getattr(_heartbeat, "armed", False):
        beat = LeaseHeartbeat(run.pk, run.deliveries)
        _heartbeat.thread = beat
        beat.start()


claim_hooks.append(_start_heartbeat)


@contextmanager
def lease_heartbeat(*, enabled: bool):
    """Arm the heartbeat for the claim made inside the block; stop it when the step is done."""
    _heartbeat.armed = enabled
    _heartbeat.thread = None
    try:
        yield
    finally:
        _heartbeat.armed = False
        beat = getattr(_heartbeat, "thread", None)
        _heartbeat.thread = None
        if beat is not None:
            beat.stopped.set()
            beat.join(timeout=10)


@contextmanager
def asynchronous_commit(*, bounded: bool = False):
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

    ``bounded`` (a worker's step, not an eager one inside a request or test): every statement
    of the step is also bounded by the connectors' deadline (``statement_timeout``), set on
    the session, so the sandbox connector's ``deadline`` finds it in place and needs no
    ``set_config`` round trip per call (five a run). A step's own statements take
    milliseconds; one that waits seconds on a lock is better cancelled and retried.

    The settings stay on the worker's connection between steps (set once per connection, not
    per step); any other task that runs on that connection puts them back first
    (``_synchronous_for_other_tasks``).
    """
    raw = connection.connection
    if raw is None or getattr(connection, "_agentops_async_commit", None) is not raw:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
        connection._agentops_async_commit = connection.connection
    if bounded and getattr(connection, "_agentops_session_timeout", (None,))[0] is not raw:
        from agents.connectors.base import deadline_setting

        value = deadline_setting()
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", [value])
        connection._agentops_session_timeout = (connection.connection, value)
    yield


@task_prerun.connect
def _synchronous_for_other_tasks(sender=None, **kwargs):
    """Every task but a run's step commits synchronously, as web requests do, and has no
    statement deadline of the steps'."""
    if getattr(sender, "name", "") == advance_run_task.name:
        return
    raw = getattr(connection, "_agentops_async_commit", None)
    if raw is not None and raw is connection.connection and not connection.in_atomic_block:
        # One round trip, two commands (one pipeline: a single string of two is refused
        # once statements are bound server-side).
        Statements(("RESET synchronous_commit", None), ("RESET statement_timeout", None)).execute()
    connection._agentops_async_commit = None
    connection._agentops_session_timeout = (None,)


@shared_task(name="agents.tasks.watchdog")
def watchdog_task() -> int:
    return engine.watchdog()


@shared_task(name="agents.tasks.sweep_runs", ignore_result=True)
def sweep_runs_task() -> int:
    """Beat: send again every unfinished run whose task was lost (agents.sweeper)."""
    from agents.sweeper import sweep

    return len(sweep())
