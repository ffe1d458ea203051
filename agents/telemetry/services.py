"""Writing ingested runs: upsert by ``run_id`` per tenant into the runtime's own tables.

One transaction per request. Concurrent resends of a run serialise on a per-run advisory
lock (taken in sorted order, so overlapping batches cannot deadlock); the runs are upserted
with one ``INSERT … ON CONFLICT (tenant, run_id) DO UPDATE``; then the runs' children are
deleted and inserted again (COPY), so a resend replaces them atomically and ten concurrent
resends still leave exactly one set. The step-latency rollup moves with them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

from django.db import connection, transaction
from django.utils import timezone

from agentops import audit
from agents.models import GuardrailEvent, Run, RunStatus, Step, ToolCall
from agents.telemetry import rollup
from agents.telemetry.schemas import RunIn

INGESTED = "ingested"
RUN_STATUS = {
    "success": RunStatus.SUCCEEDED,
    "failure": RunStatus.FAILED,
    "running": RunStatus.RUNNING,
    "cancelled": RunStatus.CANCELLED,
}
# An ingested run is never the engine's to advance: a lease that never expires keeps the
# claim (lease free or expired) and the watchdog (lease expired) away from it.
NEVER = datetime(9999, 1, 1, tzinfo=UTC)
RUN_FIELDS = [
    "origin",
    "agent_name",
    "agent_version",
    "model",
    "environment",
    "status",
    "state",
    "created_at",
    "started_at",
    "ended_at",
    "updated_at",
    "received_at",
    "error_type",
    "error_message",
    "trace_id",
    "correlation_ids",
    "tokens_prompt",
    "tokens_completion",
    "total_cost_usd",
    "latency_ms",
    "step_count",
    "lease_expires_at",
    "telemetry_hash",
    "input",
]


class RunConflict(Exception):
    """The run_id belongs to one of our own runs; telemetry may not overwrite it."""


def telemetry_hash(run: RunIn) -> str:
    canonical = json.dumps(run.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def args_hash(args: dict) -> str:
    return hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()


def _ms(start, end) -> int:
    if start is None or end is None:
        return 0
    return max(0, int((end - start).total_seconds() * 1000))


def _run_row(tenant, item: RunIn, now) -> Run:
    cost = item.cost.total_cost_usd
    return Run(
        tenant=tenant,
        run_id=item.run_id,
        origin=INGESTED,
        agent_name=item.agent_name,
        agent_version=item.agent_version or "",
        model=item.model or "",
        environment=item.environment or "",
        status=RUN_STATUS[item.status],
        state="",
        created_at=item.started_at,
        started_at=item.started_at,
        ended_at=item.ended_at,
        updated_at=now,
        received_at=now,
        error_type=item.error_type or "",
        error_message=item.error_message or "",
        trace_id=item.trace_id or "",
        correlation_ids=item.correlation_ids,
        tokens_prompt=item.cost.tokens_prompt,
        tokens_completion=item.cost.tokens_completion,
        total_cost_usd=Decimal(str(round(cost, 6))) if cost is not None else Decimal(0),
        latency_ms=_ms(item.started_at, item.ended_at),
        step_count=len(item.steps),
        lease_expires_at=NEVER,
        telemetry_hash=telemetry_hash(item),
    )


def _delete_children(run_pks: list[int]) -> None:
    # Children first, in one statement each (the ORM's cascade would load every row first).
    with connection.cursor() as cursor:
        for model in (GuardrailEvent, ToolCall, Step):
            cursor.execute(
                f'DELETE FROM "{model._meta.db_table}" WHERE run_id = ANY(%s)',  # noqa: S608
                [run_pks],
            )


_DEFAULTS: dict = {}


def _row(model, **values) -> SimpleNamespace:
    """A row to COPY into ``model``'s table: ``values`` and every other column's default, as
    ``model(**values)`` would hold them, without the cost of building a model instance (most
    of an ingest's time went there)."""
    defaults = _DEFAULTS.get(model)
    if defaults is None:
        defaults = _DEFAULTS[model] = [
            (f.attname, f.get_default) for f in model._meta.concrete_fields if not f.primary_key
        ]
    for name, default in defaults:
        if name not in values:
            values[name] = default()
    return SimpleNamespace(pk=None, id=None, **values)


def _children(run: Run, item: RunIn, now):
    steps = {
        s.step_id: _row(
            Step,
            tenant_id=run.tenant_id,
            run_id=run.pk,
            seq=i,
            step_id=s.step_id,
            name=s.name,
            status=s.status,
            started_at=s.started_at,
            ended_at=s.ended_at,
            updated_at=now,
            input_summary=s.input_summary or "",
            output_summary=s.output_summary or "",
            detail={"continue_on_error": True} if s.continue_on_error else {},
            retries=s.retries,
            latency_ms=s.latency_ms if s.latency_ms is not None else _ms(s.started_at, s.ended_at),
            tokens_prompt=s.tokens_prompt,
            tokens_completion=s.tokens_completion,
        )
        for i, s in enumerate(item.steps, start=1)
    }
    return steps


def _calls(run: Run, item: RunIn, steps: dict[str, Step]) -> dict[str, ToolCall]:
    calls = {}
    for c in item.tool_calls:
        step = steps.get(c.step_id) if c.step_id else None
        started = c.started_at or (step.started_at if step else run.started_at)
        calls[c.call_id] = _row(
            ToolCall,
            tenant_id=run.tenant_id,
            run_id=run.pk,
            step_id=step.pk if step else None,
            call_id=c.call_id,
            tool_name=c.tool_name,
            status=c.status,
            args_json=c.args_json,
            args_hash=c.args_hash or args_hash(c.args_json),
            result_summary=c.result_summary or "",
            error_class=c.error_class or "",
            error_message=c.error_message or "",
            status_code=c.status_code,
            retries=c.retries,
            latency_ms=c.latency_ms if c.latency_ms is not None else _ms(started, c.ended_at),
            created_at=started,
            ended_at=c.ended_at,
        )
    return calls


def _events(run: Run, item: RunIn, steps, calls) -> list[GuardrailEvent]:
    return [
        _row(
            GuardrailEvent,
            tenant_id=run.tenant_id,
            run_id=run.pk,
            step_id=steps[g.step_id].pk if g.step_id else None,
            tool_call_id=calls[g.call_id].pk if g.call_id else None,
            event_id=g.event_id,
            type=g.type,
            message=g.message,
            created_at=g.created_at,
        )
        for g in item.guardrail_events
    ]


def _copy(model, objs: list) -> None:
    """Insert ``objs`` with COPY: ids first (one nextval round trip), then one COPY stream.

    The ORM's bulk_create spends most of an ingest preparing each value through every field;
    COPY hands psycopg the values as they are (JSON wrapped), several times faster."""
    if not objs:
        return
    from psycopg.types.json import Jsonb

    table = model._meta.db_table
    fields = list(model._meta.concrete_fields)
    json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT nextval(pg_get_serial_sequence('\"{table}\"', 'id')) "  # noqa: S608
            "FROM generate_series(1, %s)",
            [len(objs)],
        )
        for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = obj.id = pk
        columns = ", ".join(f'"{f.column}"' for f in fields)
        with cursor.cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
            for obj in objs:
                copy.write_row(
                    [
                        Jsonb(getattr(obj, f.attname))
                        if f.attname in json_fields
                        else getattr(obj, f.attname)
                        for f in fields
                    ]
                )


_UPSERT = None


def _upsert_statement() -> tuple[str, list]:
    """The upsert's SQL (the same text for any number of runs, so psycopg parses it once) and
    the fields it sends: the rows travel as one JSON array read by ``jsonb_to_recordset``."""
    global _UPSERT
    if _UPSERT is None:
        fields = [f for f in Run._meta.concrete_fields if not f.primary_key]
        columns = ", ".join(f'"{f.column}"' for f in fields)
        record = ", ".join(f'"{f.column}" {f.db_type(connection)}' for f in fields)
        updates = ", ".join(
            f'"{f.column}" = EXCLUDED."{f.column}"' for f in fields if f.name in RUN_FIELDS
        )
        sql = (
            f'INSERT INTO "{Run._meta.db_table}" ({columns}) '  # noqa: S608
            f"SELECT {columns} FROM jsonb_to_recordset(%s::jsonb) AS r({record}) "
            f"ON CONFLICT (tenant_id, run_id) DO UPDATE SET {updates} "
            "RETURNING id, run_id, (xmax = 0)"
        )
        _UPSERT = (sql, fields)
    return _UPSERT


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # numeric reads the exact digits
    return value


def _upsert(rows: list[Run]) -> set[str]:
    """INSERT … ON CONFLICT (tenant, run_id) DO UPDATE; sets each row's pk and returns the
    run_ids that were new (``xmax = 0``: the row version was inserted, not updated)."""
    sql, fields = _upsert_statement()
    records = [{f.column: _json_value(f.pre_save(row, add=True)) for f in fields} for row in rows]
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(records)])
        returned = {run_id: (pk, new) for pk, run_id, new in cursor.fetchall()}
    for row in rows:
        row.pk = returned[row.run_id][0]
    return {run_id for run_id, (_, new) in returned.items() if new}


@transaction.atomic
def ingest_runs(
    *, tenant, runs: list[RunIn], actor=None, via: str = "api", inputs: dict | None = None
) -> list[dict]:
    """Upsert ``runs`` (already validated) for ``tenant``; returns one summary per run.

    ``inputs`` (run_id → JSON) is kept in the run's ``input`` (OTLP keeps its spans there)."""
    runs = sorted(runs, key=lambda r: r.run_id)
    ids = [r.run_id for r in runs]
    scoped = Run.objects.for_tenant(tenant).filter(run_id__in=ids)
    known = dict(scoped.values_list("run_id", "origin"))
    clash = sorted(rid for rid, origin in known.items() if origin != INGESTED)
    if clash:
        raise RunConflict(f"Run ids used by AgentOps' own runs: {', '.join(clash[:10])}")
    # Resends of one run wait for each other from here on (the rollup's counts need it).
    rollup.lock_runs(tenant.pk, ids)
    before = rollup.stored_counts(tenant, ids)
    now = timezone.now()
    rows = [_run_row(tenant, r, now) for r in runs]
    for row in rows:
        row.input = (inputs or {}).get(row.run_id, {})
    inserted = _upsert(rows)
    _delete_children([row.pk for row in rows])
    all_steps, per_run = [], []
    for row, item in zip(rows, runs, strict=True):
        steps = _children(row, item, now)
        all_steps.extend(steps.values())
        per_run.append((row, item, steps))
    _copy(Step, all_steps)
    delta = rollup.payload_counts(rows, {row.pk: list(steps.values()) for row, _, steps in per_run})
    delta.subtract(before)
    rollup.apply(tenant.pk, delta)
    all_calls, call_maps = [], []
    for row, item, steps in per_run:
        calls = _calls(row, item, steps)
        all_calls.extend(calls.values())
        call_maps.append(calls)
    _copy(ToolCall, all_calls)
    events = []
    for (row, item, steps), calls in zip(per_run, call_maps, strict=True):
        events.extend(_events(row, item, steps, calls))
    _copy(GuardrailEvent, events)
    audit.record(
        tenant=tenant,
        actor=actor,
        action="telemetry.ingested",
        target_type="run",
        target_id=ids[0] if len(ids) == 1 else f"{len(ids)} runs",
        target_repr=", ".join(ids[:5])[:200],
        metadata={
            "runs": len(ids),
            "via": via,
            "events": len(all_steps) + len(all_calls) + len(events),
        },
    )
    return [
        {
            "run_id": item.run_id,
            "created": item.run_id in inserted,
            "steps": len(item.steps),
            "tool_calls": len(item.tool_calls),
            "guardrail_events": len(item.guardrail_events),
        }
        for item in runs
    ]
