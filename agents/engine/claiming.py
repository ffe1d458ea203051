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
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from agents.models import AgentConfig, Run, RunStatus

log = logging.getLogger(__name__)


def lease_seconds() -> int:
    return getattr(settings, "RUN_LEASE_SECONDS", 180)


def enqueue(run_id: int, *, countdown: float | None = None) -> None:
    from agents.tasks import advance_run_task

    def send():
        if countdown:
            advance_run_task.apply_async((run_id,), countdown=countdown)
        else:
            advance_run_task.delay(run_id)

    transaction.on_commit(send)


_CLAIM_SQL = None


def _columns(model, alias: str) -> str:
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


def _claim_sql() -> str:
    """UPDATE … RETURNING the whole run row, joined with its tenant and agent config: the
    claim and everything a step reads before it starts cost one round trip."""
    global _CLAIM_SQL
    if _CLAIM_SQL is None:
        from agentops.models import Tenant

        table = Run._meta.db_table
        _CLAIM_SQL = (
            f'WITH claimed AS (UPDATE "{table}" SET status = %s, lease_expires_at = %s, '  # noqa: S608
            "deliveries = deliveries + 1, started_at = COALESCE(started_at, %s), updated_at = %s "
            "WHERE id = %s AND status IN (%s, %s) AND origin = 'internal' "
            "AND (lease_expires_at IS NULL OR lease_expires_at < %s) "
            f"RETURNING {_columns(Run, table)}) "
            f"SELECT {_columns(Run, 'claimed')}, {_columns(Tenant, 't')}, "
            f"{_columns(AgentConfig, 'c')} FROM claimed "
            f'JOIN "{Tenant._meta.db_table}" t ON t.id = claimed.tenant_id '
            f'LEFT JOIN "{AgentConfig._meta.db_table}" c ON c.tenant_id = claimed.tenant_id'
        )
    return _CLAIM_SQL


def _instances(row, *models) -> list:
    """Split one joined row into model instances (None for a LEFT JOIN that found nothing)."""
    found, at = [], 0
    for model in models:
        fields = model._meta.concrete_fields
        values = row[at : at + len(fields)]
        at += len(fields)
        if values[0] is None:  # the primary key: no row joined
            found.append(None)
            continue
        found.append(model.from_db(connection.alias, [f.attname for f in fields], values))
    return found


def _convert(row, *models) -> tuple:
    """Apply the backend's and the fields' converters (JSON, arrays …) as the ORM would."""
    fields = [f for model in models for f in model._meta.concrete_fields]
    out = []
    for field, value in zip(fields, row, strict=True):
        converters = connection.ops.get_db_converters(field) + field.get_db_converters(connection)
        for converter in converters:
            value = converter(value, field, connection)
        out.append(value)
    return tuple(out)


def claim(run_id: int) -> Run | None:
    """Take the run for one step. One conditional UPDATE: exactly one task wins.

    The UPDATE returns the claimed row joined with its tenant and agent config, so winning
    and reading everything a step starts from cost one round trip.
    """
    from agentops.models import Tenant

    now = timezone.now()
    params = [
        RunStatus.RUNNING,
        now + timedelta(seconds=lease_seconds()),
        now,
        now,
        run_id,
        RunStatus.QUEUED,
        RunStatus.RUNNING,
        now,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(), params)
        row = cursor.fetchone()
    if row is None:
        return None
    run, tenant, config = _instances(
        _convert(row, Run, Tenant, AgentConfig), Run, Tenant, AgentConfig
    )
    if config is None:  # the tenant's first run: the config is created with its defaults
        from agents.engine.llm import agent_config

        config = agent_config(tenant)
    config.tenant = tenant
    run.tenant = tenant
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
