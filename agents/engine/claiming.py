"""Delivery and claiming: which task may run a run's next step, and who picks up dead ones.

A task claims its run with one conditional ``UPDATE … RETURNING`` (status active, lease free
or expired): exactly one task wins, and winning and reading the run cost one round trip. The
lease lets the watchdog re-enqueue runs whose worker died. Lock order everywhere: a run's
pending approval requests, then the run (as a reviewer's decision takes them).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.query import RawQuerySet
from django.utils import timezone

from agentops import tracing
from agents.models import AgentConfig, Run, RunStatus

log = logging.getLogger(__name__)


def lease_seconds() -> int:
    return getattr(settings, "RUN_LEASE_SECONDS", 180)


def enqueue(run_id: int, *, countdown: float | None = None) -> None:
    from agents.tasks import advance_run_task

    trace_context = tracing.capture()  # the next step joins this trace (agentops.tracing)

    def send():
        with tracing.restored(trace_context):
            _send()

    def _send():
        if countdown:
            advance_run_task.apply_async((run_id,), countdown=countdown)
        else:
            advance_run_task.delay(run_id)

    transaction.on_commit(send)


_CLAIM_SQL = None


def _claim_sql() -> str:
    """UPDATE … RETURNING the whole run row: the claim and the read in one round trip."""
    global _CLAIM_SQL
    if _CLAIM_SQL is None:
        table = Run._meta.db_table
        columns = ", ".join(f'"{f.column}"' for f in Run._meta.concrete_fields)
        _CLAIM_SQL = (
            f'UPDATE "{table}" SET status = %s, lease_expires_at = %s, '  # noqa: S608
            "deliveries = deliveries + 1, started_at = COALESCE(started_at, %s), updated_at = %s "
            "WHERE id = %s AND status IN (%s, %s) AND origin = 'internal' "
            "AND (lease_expires_at IS NULL OR lease_expires_at < %s) "
            f"RETURNING {columns}"
        )
    return _CLAIM_SQL


def claim(run_id: int) -> Run | None:
    """Take the run for one step. One conditional UPDATE: exactly one task wins.

    The UPDATE returns the claimed row (converted by the ORM like any query), so winning and
    reading the run cost one round trip; the tenant comes with the agent config (one join).
    """
    now = timezone.now()
    rows = list(
        RawQuerySet(
            _claim_sql(),
            model=Run,
            params=[
                RunStatus.RUNNING,
                now + timedelta(seconds=lease_seconds()),
                now,
                now,
                run_id,
                RunStatus.QUEUED,
                RunStatus.RUNNING,
                now,
            ],
        )
    )
    if not rows:
        return None
    run = rows[0]
    config = (
        AgentConfig.objects.unscoped("the claimed run's tenant")
        .select_related("tenant")
        .filter(tenant_id=run.tenant_id)
        .first()
    )
    if config is None:  # the tenant's first run: the config is created with its defaults
        from agentops.models import Tenant
        from agents.engine.llm import agent_config

        config = agent_config(Tenant.objects.get(pk=run.tenant_id))
    run.tenant = config.tenant
    run._claimed_config = config
    return run


def release(run: Run, **fields) -> None:
    fields.setdefault("lease_expires_at", None)
    fields.setdefault("updated_at", timezone.now())
    Run.objects.for_tenant(run.tenant).filter(pk=run.pk).update(**fields)


def watchdog(*, stale_queued_seconds: int = 60) -> int:
    """Re-enqueue runs whose worker died (lease expired) or whose task never arrived."""
    now = timezone.now()
    stale = (
        Run.objects.unscoped("watchdog scans every tenant")
        .filter(origin="internal")
        .filter(
            Q(status=RunStatus.RUNNING, lease_expires_at__lt=now)
            | Q(
                status=RunStatus.RUNNING,
                lease_expires_at__isnull=True,
                updated_at__lt=now - timedelta(seconds=stale_queued_seconds),
            )
            | Q(
                status=RunStatus.QUEUED,
                updated_at__lt=now - timedelta(seconds=stale_queued_seconds),
            )
        )
    )
    ids = list(stale.values_list("pk", flat=True)[:500])
    from agents.tasks import advance_run_task

    for run_id in ids:
        advance_run_task.delay(run_id)
    if ids:
        log.warning("watchdog re-enqueued %d runs: %s", len(ids), ids[:20])
    return len(ids)
