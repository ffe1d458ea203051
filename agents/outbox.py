"""The transactional outbox of agent runs: the intent to run a step is a row, sending it is a
side effect after commit that may fail without losing anything.

The intent is the run row itself. ``start_run`` writes the run (``queued``) in the same
transaction as the ticket that caused it, and every step checkpoints the run's next state in
the transaction that records the step; so a ticket and its run's task intent are committed
together or not at all, whatever the broker is doing. The Celery message is only the
notification "look at run 42": it is sent after commit (``send_after_commit``) and, when the
broker is down or the process dies before sending, the sweeper (``agents.sweeper``) finds the
unfinished run in PostgreSQL and sends it again once the broker is back. A duplicate message is
harmless: the claim (one conditional UPDATE) lets exactly one delivery run a step.

A failed send never fails the request or task that committed the intent: the ticket exists and
its run will be delivered, so the person who opened it gets a 201, not a 500.
"""

from __future__ import annotations

import logging

from django.db import transaction

log = logging.getLogger(__name__)


def send(run_id: int, *, countdown: float | None = None) -> bool:
    """Publish ``advance_run_task(run_id)`` now; False (logged) when the broker is unreachable.

    Publishing tries once and briefly: the sweeper, not a blocked web request, retries.
    Eager mode (tests not about delivery) runs the task inline, and its errors propagate.
    """
    from agents.tasks import advance_run_task

    options = {"countdown": countdown} if countdown else {}
    if advance_run_task.app.conf.task_always_eager:
        advance_run_task.apply_async((run_id,), **options)
        return True
    try:
        advance_run_task.apply_async(
            (run_id,),
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
            **options,
        )
    except Exception as exc:  # any broker failure: the intent is safe in PostgreSQL
        log.warning(
            "run %s: the broker did not take the task (%s: %s); the sweeper will send it",
            run_id,
            type(exc).__name__,
            exc,
        )
        return False
    return True


def send_after_commit(run_id: int, *, countdown: float | None = None, trace_context=None) -> None:
    """Send the run's task once the transaction that stored its intent has committed (inside
    the trace that enqueued it, when tracing is on)."""
    from agentops import tracing

    def after_commit():
        if trace_context is None:
            send(run_id, countdown=countdown)
            return
        with tracing.restored(trace_context):
            send(run_id, countdown=countdown)

    transaction.on_commit(after_commit)
