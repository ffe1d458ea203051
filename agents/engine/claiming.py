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
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from agentops import tracing
from agents.engine import sql
from agents.models import AgentConfig, Run, RunStatus, Step

log = logging.getLogger(__name__)


def lease_seconds() -> int:
    return getattr(settings, "RUN_LEASE_SECONDS", 180)


def enqueue(run_id: int, *, countdown: float | None = None) -> None:
    # The run row is the intent; a broker down at commit is left to the sweeper (agents.outbox).
    from agents.outbox import send_after_commit

    # The next step joins this trace (agentops.tracing).
    send_after_commit(run_id, countdown=countdown, trace_context=tracing.capture())


# Called with each claimed run (agents.tasks renews the lease of a long step from here).
claim_hooks: list = []


_CLAIM_SQL = None


def _claim_sql() -> str:
    """One statement: claim the run (UPDATE … RETURNING), read its tenant and agent config,
    and open the step it is about to run (or take back the one a crashed delivery left).

    The step is opened only when the step may run: no cancel requested and under the
    tenant's ``max_steps`` (otherwise the engine finishes the run without a step). Its name
    comes from the blueprints' state names, passed as three parallel arrays.
    """
    global _CLAIM_SQL
    if _CLAIM_SQL is None:
        from agentops.models import Tenant

        User = get_user_model()

        run_table, step_table = Run._meta.db_table, Step._meta.db_table
        max_steps = AgentConfig._meta.get_field("max_steps").default
        seq = "claimed.step_count + 1"
        _CLAIM_SQL = (
            f'WITH claimed AS (UPDATE "{run_table}" SET status = %s, lease_expires_at = %s, '  # noqa: S608
            "deliveries = deliveries + 1, started_at = COALESCE(started_at, %s), updated_at = %s "
            "WHERE id = %s AND status IN (%s, %s) AND origin = 'internal' "
            "AND (lease_expires_at IS NULL OR lease_expires_at < %s) "
            f"RETURNING {sql.columns(Run, run_table)}), "
            f'config AS (SELECT * FROM "{AgentConfig._meta.db_table}" '
            "WHERE tenant_id = (SELECT tenant_id FROM claimed) LIMIT 1), "
            "names AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) "
            "AS n(agent, state, name)), "
            f'opened AS (INSERT INTO "{step_table}" (tenant_id, run_id, seq, step_id, name, '
            "state, status, started_at, updated_at, input_summary, output_summary, detail, "
            "retries, latency_ms, tokens_prompt, tokens_completion, cost_usd) "
            f"SELECT claimed.tenant_id, claimed.id, {seq}, 'step-' || CASE WHEN {seq} < 1000 "
            f"THEN lpad(({seq})::text, 3, '0') ELSE ({seq})::text END, "
            "COALESCE(names.name, claimed.state), claimed.state, 'running', %s, %s, '', '', "
            "'{}'::jsonb, 0, 0, 0, 0, 0 FROM claimed "
            "LEFT JOIN names ON names.agent = claimed.agent_name AND names.state = claimed.state "
            "WHERE NOT claimed.cancel_requested AND claimed.step_count < "
            f"COALESCE((SELECT max_steps FROM config), {int(max_steps)}) "
            # A previous delivery crashed in this step: resume it, counting the retry.
            "ON CONFLICT (run_id, seq) DO UPDATE SET retries = "
            f"\"{step_table}\".retries + 1, status = 'running' "
            f"RETURNING {sql.columns(Step, step_table)}) "
            f"SELECT {sql.columns(Run, 'claimed')}, {sql.columns(Tenant, 't')}, "
            f"{sql.columns(AgentConfig, 'c')}, {sql.columns(Step, 'opened')}, {sql.columns(User, 'u')} "
            f'FROM claimed JOIN "{Tenant._meta.db_table}" t ON t.id = claimed.tenant_id '
            "LEFT JOIN config c ON true LEFT JOIN opened ON true "
            f'LEFT JOIN "{User._meta.db_table}" u ON u.id = claimed.started_by_id'
        )
    return _CLAIM_SQL


def _state_names() -> tuple[list[str], list[str], list[str]]:
    from agents import blueprints

    rows = [
        (bp.name, state, bp.step_name(state))
        for bp in blueprints.all_blueprints()
        for state in bp.states
    ]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def claim(run_id: int) -> Run | None:
    """Take the run for one step. One conditional UPDATE: exactly one task wins.

    The same statement reads the tenant and agent config and opens the step the run is about
    to run (``run._opened_step``; None when a cancel is pending or the run is at its tenant's
    max_steps), so winning and everything a step starts from cost one round trip.
    """
    from agentops.models import Tenant

    User = get_user_model()
    now = timezone.now()
    agents_, states, names = _state_names()
    params = [
        RunStatus.RUNNING,
        now + timedelta(seconds=lease_seconds()),
        now,
        now,
        run_id,
        RunStatus.QUEUED,
        RunStatus.RUNNING,
        now,
        agents_,
        states,
        names,
        now,
        now,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(), params)
        row = cursor.fetchone()
    if row is None:
        return None
    models = (Run, Tenant, AgentConfig, Step, User)
    run, tenant, config, step, started_by = sql.instances(row, *models)
    if config is None:  # the tenant's first run: the config is created with its defaults
        from agents.engine.llm import agent_config

        config = agent_config(tenant)
    config.tenant = tenant
    run.tenant = tenant
    if started_by is not None:
        run.started_by = started_by
    run._claimed_config = config
    if step is not None:
        step.tenant = tenant
        step.run = run
    run._opened_step = step
    for hook in claim_hooks:
        hook(run)
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
