"""Step latencies of ingested runs, counted per hour, agent, version and 1% latency bucket.

The ingest moves a resent run's old counts out and its new ones in, in the same transaction
and under a per-run advisory lock (so two resends of one run never both subtract, or both add,
the same steps). The metrics then read a few hundred rows for a p95 instead of every step.
Buckets are computed in Python on both sides, so a subtraction always meets its addition.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from datetime import UTC, datetime

from django.db import connection

from agents.models import Run, Step, StepLatencyRollup

BASE = 1.01  # buckets 1% wide: a p95 within half a percent
_LOG_BASE = math.log(BASE)


# The same bucket in SQL, for reading our own runs' steps live (never to subtract: the
# rollup's own counts are always bucketed in Python).
SQL_BUCKET = "CASE WHEN {0} <= 0 THEN 0 ELSE 1 + floor(ln({0}) / ln(1.01))::int END"


def bucket(ms: int) -> int:
    return 0 if ms <= 0 else 1 + int(math.log(ms) / _LOG_BASE)


def bucket_ms(b: int) -> int:
    """The bucket's representative latency: the geometric middle of [BASE^(b-1), BASE^b)."""
    return 0 if b <= 0 else round(BASE ** (b - 0.5))


def percentile(counts: Counter, q: float = 0.95) -> int | None:
    """Nearest-rank percentile of bucketed counts (within half a bucket)."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank, seen = math.ceil(q * total), 0
    for b in sorted(counts):
        seen += counts[b]
        if seen >= rank:
            return bucket_ms(b)
    return bucket_ms(max(counts))


def hour_of(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def lock_runs(tenant_id: int, run_ids: list[str]) -> None:
    """Transaction-scoped advisory locks on (tenant, run_id), taken in one sorted statement."""
    keys = sorted(
        int.from_bytes(hashlib.sha256(f"{tenant_id}:{r}".encode()).digest()[:8], "big", signed=True)
        for r in run_ids
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) k", [keys])


def stored_counts(tenant, run_ids: list[str]) -> Counter:
    """What the stored versions of these ingested runs contribute now."""
    runs = dict(
        (pk, (hour_of(created), agent, version))
        for pk, created, agent, version in Run.objects.for_tenant(tenant)
        .filter(run_id__in=run_ids, origin="ingested")
        .values_list("pk", "created_at", "agent_name", "agent_version")
    )
    counts: Counter = Counter()
    if not runs:
        return counts
    steps = Step.objects.for_tenant(tenant).filter(run_id__in=list(runs))
    for run_pk, ms in steps.values_list("run_id", "latency_ms").iterator(chunk_size=5000):
        counts[(*runs[run_pk], bucket(ms))] += 1
    return counts


def payload_counts(rows: list[Run], steps_by_run: dict) -> Counter:
    """What the runs about to be stored will contribute (``steps_by_run``: run pk → steps)."""
    counts: Counter = Counter()
    for row in rows:
        key = (hour_of(row.created_at), row.agent_name, row.agent_version)
        for step in steps_by_run.get(row.pk, ()):
            counts[(*key, bucket(step.latency_ms))] += 1
    return counts


def apply(tenant_id: int, delta: Counter) -> None:
    """Add ``delta`` (negative to take counts out) in key order; empty rows are removed."""
    items = sorted((k, n) for k, n in delta.items() if n)
    if not items:
        return
    table = StepLatencyRollup._meta.db_table
    rows = [(hour, agent, version, b, n) for (hour, agent, version, b), n in items]
    columns = list(zip(*rows, strict=True))
    with connection.cursor() as cursor:
        # Parallel arrays: the same statement text for any number of rows (parsed once).
        cursor.execute(
            f'INSERT INTO "{table}" (tenant_id, hour, agent_name, agent_version, bucket, steps) '  # noqa: S608
            "SELECT %s, * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::int[], "
            "%s::bigint[]) ON CONFLICT (tenant_id, hour, agent_name, agent_version, bucket) "
            f'DO UPDATE SET steps = "{table}".steps + EXCLUDED.steps',
            [tenant_id, *(list(c) for c in columns)],
        )
        cursor.execute(f'DELETE FROM "{table}" WHERE tenant_id = %s AND steps = 0', [tenant_id])  # noqa: S608
