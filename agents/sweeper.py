"""The sweeper: PostgreSQL decides which runs are unfinished, and each one whose task was lost
is sent again (a beat task, ``agents.tasks.sweep_runs``, every ``RUN_SWEEP_EVERY_SECONDS``).

A run is swept when it is queued or between steps (no lease) and nothing has touched it for
``RUN_SWEEP_GRACE_SECONDS``, or when the lease of the worker running it has expired (the
worker died; a live worker renews its lease while a step runs, ``agents.tasks``). That covers
a broker restarted or flushed mid-run, a broker down at commit (``agents.outbox``) and a
killed worker. Runs parked for a person's decision are not swept: nothing is lost there.

Safe to run twice at once and on several machines: the selection locks its rows with
``FOR UPDATE SKIP LOCKED`` and stamps ``updated_at``, so each lost run is sent once per grace
period, and a duplicate message is harmless anyway (the claim lets one delivery win).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agents.models import Run, RunStatus

log = logging.getLogger(__name__)

BATCH = 500

_SWEEP_SQL = (
    'UPDATE "{table}" SET updated_at = %s WHERE id IN ('
    "SELECT id FROM \"{table}\" WHERE origin = 'internal' AND status IN (%s, %s) "
    "AND (lease_expires_at IS NULL OR lease_expires_at < %s) AND updated_at < %s "
    "ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id"
)


def sweep(*, grace_seconds: float | None = None, batch: int = BATCH) -> list[int]:
    """Send again every unfinished run whose task was lost; return their ids (oldest first)."""
    from agents import outbox

    grace = settings.RUN_SWEEP_GRACE_SECONDS if grace_seconds is None else grace_seconds
    swept: list[int] = []
    while True:
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                _SWEEP_SQL.format(table=Run._meta.db_table),
                [
                    now,
                    RunStatus.QUEUED,
                    RunStatus.RUNNING,
                    now,
                    now - timedelta(seconds=grace),
                    batch,
                ],
            )
            ids = [row[0] for row in cursor.fetchall()]
        for run_id in ids:
            if not outbox.send(run_id):
                # The broker is still down: un-stamp nothing, the next sweep tries again.
                _unstamp(ids[ids.index(run_id) :], grace)
                log.warning("sweeper: broker down, %d runs wait for the next sweep", len(ids))
                return swept
            swept.append(run_id)
        if len(ids) < batch:
            break
    if swept:
        log.warning("sweeper re-sent %d unfinished runs: %s", len(swept), swept[:20])
    return swept


def _unstamp(ids: list[int], grace: float) -> None:
    """Make runs we could not send eligible again at the next sweep."""
    earlier = timezone.now() - timedelta(seconds=grace + 1)
    Run.objects.unscoped("the sweeper spans every tenant").filter(pk__in=ids).update(
        updated_at=earlier
    )
