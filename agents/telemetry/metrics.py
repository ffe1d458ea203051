"""Run metrics over a time window: totals, per agent and version, per hour, failing tools.

Plain SQL aggregates on the tenant's rows. The p95 step latency comes from bucketed counts
(within half a percent): the ingested steps' hourly rollup plus our own runs' steps counted live,
so it does not read every step of the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from agents.models import Run, Step, StepLatencyRollup, ToolCall
from agents.rca.blueprint import NAME as RCA
from agents.telemetry import rollup

RUN = Run._meta.db_table
STEP = Step._meta.db_table
CALL = ToolCall._meta.db_table
ROLLUP = StepLatencyRollup._meta.db_table


@dataclass
class Window:
    tenant_id: int
    hours: int
    origin: str = ""  # "", "internal" or "ingested"

    @property
    def since(self):
        return timezone.now() - timedelta(hours=self.hours)

    def where(self, alias: str = "r") -> tuple[str, list]:
        sql = f"{alias}.tenant_id = %s AND {alias}.created_at >= %s AND {alias}.agent_name <> %s"
        params: list = [self.tenant_id, self.since, RCA]
        if self.origin:
            sql += f" AND {alias}.origin = %s"
            params.append(self.origin)
        return sql, params


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _rate(ok: int, total: int) -> float | None:
    return round(100 * ok / total, 2) if total else None


# One scan of the runs and one of their steps, each grouped three ways at once: per agent and
# version, per hour, and in all. GROUPING(agent, version, hour) tells the sets apart.
BY_AGENT, BY_HOUR, ALL = 1, 6, 7
SETS = "GROUPING SETS ((r.agent_name, r.agent_version), (h), ())"


def _grouped(w: Window) -> tuple[dict, dict]:
    where, params = w.where()
    head = "GROUPING(r.agent_name, r.agent_version, h), r.agent_name, r.agent_version, h"
    runs = _rows(
        f"SELECT {head}, count(*), count(*) FILTER (WHERE r.status = 'succeeded'), "  # noqa: S608
        "count(*) FILTER (WHERE r.status IN ('failed', 'escalated')), "
        f"coalesce(sum(r.total_cost_usd), 0) FROM (SELECT *, date_trunc('hour', created_at) h "
        f"FROM {RUN}) r WHERE {where} GROUP BY {SETS}",
        params,
    )
    counts = {(g, a, v, h): rest for g, a, v, h, *rest in runs}
    return counts, _p95(w)


def _p95(w: Window) -> dict:
    """p95 step latency per (GROUPING code, agent, version, hour), from bucketed counts: the
    ingested steps' rollup (whole hours of the window) and our own runs' steps, bucketed
    live; summed three ways and ranked in SQL, so only the answers come back."""
    parts, params = [], []
    if w.origin in ("", "ingested"):
        parts.append(
            f"SELECT hour, agent_name, agent_version, bucket, steps AS n FROM {ROLLUP} "  # noqa: S608
            "WHERE tenant_id = %s AND hour >= %s AND agent_name <> %s"
        )
        params += [w.tenant_id, rollup.hour_of(w.since), RCA]
    if w.origin in ("", "internal"):
        where, internal = Window(w.tenant_id, w.hours, "internal").where()
        parts.append(
            f"SELECT date_trunc('hour', r.created_at), r.agent_name, r.agent_version, "  # noqa: S608
            f"{rollup.SQL_BUCKET.format('s.latency_ms')}, count(*) FROM {STEP} s "
            f"JOIN {RUN} r ON r.id = s.run_id WHERE {where} GROUP BY 1, 2, 3, 4"
        )
        params += internal
    keys = "g, agent_name, agent_version, hour"
    rows = _rows(
        f"WITH counted(hour, agent_name, agent_version, bucket, n) AS ({' UNION ALL '.join(parts)}), "  # noqa: S608
        "summed AS (SELECT GROUPING(agent_name, agent_version, hour) g, agent_name, agent_version, "
        "hour, bucket, sum(n) n FROM counted GROUP BY GROUPING SETS "
        "((agent_name, agent_version, bucket), (hour, bucket), (bucket))), "
        f"ranked AS (SELECT *, sum(n) OVER (PARTITION BY {keys} ORDER BY bucket) cum, "
        f"sum(n) OVER (PARTITION BY {keys}) total FROM summed) "
        f"SELECT DISTINCT ON ({keys}) {keys}, bucket FROM ranked "
        f"WHERE cum >= ceil(0.95 * total) ORDER BY {keys}, bucket",
        params,
    )
    return {(g, a, v, h): rollup.bucket_ms(b) for g, a, v, h, b in rows}


def _ms(value) -> int | None:
    return round(value) if value is not None else None


def per_agent(counts: dict, p95: dict) -> list[dict]:
    rows = sorted(((k, v) for k, v in counts.items() if k[0] == BY_AGENT), key=lambda kv: -kv[1][0])
    return [
        {
            "agent_name": a,
            "agent_version": v,
            "runs": n,
            "failed": failed,
            "success_rate": _rate(ok, n),
            "total_cost_usd": float(cost),
            "p95_step_latency_ms": _ms(p95.get((g, a, v, h))),
        }
        for (g, a, v, h), (n, ok, failed, cost) in rows[:100]
    ]


def per_hour(w: Window, counts: dict, p95: dict) -> list[dict]:
    by_hour = {k[3]: v for k, v in counts.items() if k[0] == BY_HOUR}
    latency = {k[3]: v for k, v in p95.items() if k[0] == BY_HOUR}
    start = w.since.replace(minute=0, second=0, microsecond=0)
    out = []
    for i in range(w.hours + 1):
        hour = start + timedelta(hours=i)
        n, _, failed, cost = by_hour.get(hour, (0, 0, 0, 0))
        out.append(
            {
                "hour": hour,
                "runs": n,
                "failed": failed,
                "total_cost_usd": float(cost),
                "p95_step_latency_ms": _ms(latency.get(hour)),
            }
        )
    return out


def failing_tools(w: Window, limit: int = 10) -> list[dict]:
    where, params = w.where()
    rows = _rows(
        f"SELECT c.tool_name, count(*) FROM {CALL} c JOIN {RUN} r ON r.id = c.run_id "  # noqa: S608
        f"WHERE {where} AND c.status IN ('failure', 'blocked') GROUP BY 1 "
        "ORDER BY 2 DESC, 1 LIMIT %s",
        [*params, limit],
    )
    return [{"tool": tool, "count": n} for tool, n in rows]


def failure_categories(w: Window) -> list[dict]:
    """The category of the latest RCA report of each analysed run in the window."""
    where, params = w.where("t")
    rows = _rows(
        f"SELECT category, count(*) FROM (SELECT DISTINCT ON (a.subject_id) "  # noqa: S608
        f"a.result -> 'report' ->> 'category' AS category FROM {RUN} a "
        f"JOIN {RUN} t ON t.tenant_id = a.tenant_id AND t.run_id = a.subject_id "
        f"WHERE a.tenant_id = %s AND a.agent_name = %s AND a.subject_type = 'run' "
        f"AND a.status = 'succeeded' AND {where} "
        "ORDER BY a.subject_id, a.created_at DESC) latest GROUP BY 1 ORDER BY 2 DESC",
        [w.tenant_id, RCA, *params],
    )
    return [{"category": c or "unknown", "count": n} for c, n in rows]


def overview(*, tenant, hours: int = 24, origin: str = "") -> dict:
    w = Window(tenant_id=tenant.pk, hours=hours, origin=origin)
    counts, p95 = _grouped(w)
    total, ok, _, cost = next((v for k, v in counts.items() if k[0] == ALL), (0, 0, 0, 0))
    overall = next((v for k, v in p95.items() if k[0] == ALL), None)
    return {
        "hours": hours,
        "origin": origin or "all",
        "total_runs": total,
        "success_rate": _rate(ok, total),
        "top_failing_tools": failing_tools(w),
        "p95_step_latency_ms": _ms(overall),
        "total_cost_usd": round(float(cost), 6),
        "per_agent": per_agent(counts, p95),
        "per_hour": per_hour(w, counts, p95),
        "failure_categories": failure_categories(w),
    }
