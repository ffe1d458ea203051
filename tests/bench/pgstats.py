"""PostgreSQL's own account of a bench run (opt-in: ``AGENTOPS_BENCH_PG_STATEMENTS=1``).

Where PostgreSQL spends its CPU per ticket, as the server counts it:

- the statements by total execution time (``pg_stat_statements``, nested statements too: the
  triggers' and plpgsql functions' own queries show up as their own lines),
- plpgsql functions and triggers by total time (``track_functions = 'pl'``),
- the hot tables' writes: rows inserted and updated, how many updates were HOT (no index
  touched), and index scans,
- commits (each one flushes WAL).

``pg_stat_statements`` must be loaded when the server starts: ``python -m agentops.devstack
bench`` with the variable set does it for the embedded server (``ALTER SYSTEM`` and a restart,
once: ``agentops.localservices.PG_STATEMENTS_SETTINGS``; ``=off`` takes them away again, unset
or 0 leaves the server as it is); on a server of your own, add it to
``shared_preload_libraries``. Its bookkeeping costs PostgreSQL some CPU: compare runs made
with the same setting. The figures go to
var/bench/pipeline-pg-SCENARIO.json and the top lines are printed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ENABLED = os.environ.get("AGENTOPS_BENCH_PG_STATEMENTS", "") not in ("", "0", "off")
TOP = int(os.environ.get("AGENTOPS_BENCH_PG_STATEMENTS_TOP", "25"))


def _owner_connection():
    """The bench database as its owner (the bench's own connection may run as the app role,
    which may not reset or read every backend's statistics)."""
    import psycopg
    from django.conf import settings
    from django.db import connection
    from psycopg.conninfo import make_conninfo

    url = make_conninfo(settings.DATABASE_MIGRATION_URL, dbname=connection.settings_dict["NAME"])
    return psycopg.connect(url, autocommit=True)


def _counters(cur) -> dict:
    cur.execute(
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_newpage_upd, n_tup_del, "
        "coalesce(idx_scan, 0), seq_scan FROM pg_stat_user_tables"
    )
    tables = {
        row[0]: dict(
            zip(
                ("ins", "upd", "hot_upd", "newpage_upd", "del", "idx_scan", "seq_scan"),
                row[1:],
                strict=True,
            )
        )
        for row in cur.fetchall()
    }
    cur.execute(
        "SELECT schemaname || '.' || funcname, calls, total_time, self_time "
        "FROM pg_stat_user_functions"
    )
    functions = {
        row[0]: dict(zip(("calls", "total_ms", "self_ms"), row[1:], strict=True)) for row in cur
    }
    cur.execute(
        "SELECT xact_commit, xact_rollback, blks_hit, blks_read, tup_inserted, tup_updated, "
        "sessions FROM pg_stat_database WHERE datname = current_database()"
    )
    keys = ("commits", "rollbacks", "blks_hit", "blks_read", "ins", "upd", "sessions")
    database = dict(zip(keys, cur.fetchone(), strict=True))
    cur.execute("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal")
    wal = dict(zip(("records", "fpi", "bytes"), (int(x) for x in cur.fetchone()), strict=True))
    return {"tables": tables, "functions": functions, "database": database, "wal": wal}


def start() -> dict | None:
    """Reset this database's statement statistics; the cumulative counters so far."""
    if not ENABLED:
        return None
    with _owner_connection() as conn, conn.cursor() as cur:
        cur.execute("SHOW shared_preload_libraries")
        if "pg_stat_statements" not in cur.fetchone()[0]:
            raise RuntimeError(
                "AGENTOPS_BENCH_PG_STATEMENTS=1 needs pg_stat_statements in "
                "shared_preload_libraries (python -m agentops.devstack bench sets it on the "
                "embedded server)"
            )
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        cur.execute(
            "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
            "WHERE datname = current_database()), 0)"
        )
        cur.execute("SELECT pg_stat_force_next_flush()")
        return _counters(cur)


def _diff(after: dict, before: dict) -> dict:
    return {k: round(v - before.get(k, 0), 3) for k, v in after.items()}


def _cpu_by_process(cur, cpu_before: dict, cpu_after: dict) -> dict:
    """PostgreSQL CPU seconds between the bench's two snapshots, by kind of process: the
    backends by database, user and client (the worker's connections name themselves with
    PGAPPNAME), the background processes by type; a backend that exited meanwhile has no name."""
    cur.execute(
        "SELECT pid, backend_type, coalesce(datname, ''), coalesce(usename, ''), "
        "coalesce(application_name, '') FROM pg_stat_activity"
    )
    mine = {pid: " ".join(x for x in rest if x) for pid, *rest in cur.fetchall()}
    cur.execute("SELECT pg_backend_pid()")
    mine[cur.fetchone()[0]] = "(this report)"
    out: dict[str, float] = {}
    for pid, cpu in cpu_after["postgres"].items():
        label = mine.get(pid, "exited meanwhile")
        out[label] = out.get(label, 0.0) + cpu - cpu_before["postgres"].get(pid, 0.0)
    return {k: round(v, 3) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v}


def report(
    before: dict | None,
    scenario: str,
    n: int,
    out_dir: Path,
    cpu: tuple[dict, dict] | None = None,
) -> dict | None:
    """What the server did for the ``n`` tickets since ``start()``: printed and written.
    ``cpu``: the bench's CPU snapshots before and after, to split PostgreSQL's share."""
    if before is None:
        return None
    cpu_split = {}
    time.sleep(1.5)  # other backends flush their table and function counters within a second
    with _owner_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_stat_force_next_flush()")
        after = _counters(cur)  # (this backend's own counters flush at commit/exit)
        if cpu is not None:
            cpu_split = _cpu_by_process(cur, *cpu)
        cur.execute(
            """
            SELECT calls, round(total_exec_time::numeric, 2), round(mean_exec_time::numeric, 4),
                   rows, shared_blks_hit, shared_blks_read, shared_blks_dirtied,
                   wal_records, toplevel, query
            FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY total_exec_time DESC
            """
        )
        keys = ("calls", "total_ms", "mean_ms", "rows", "blks_hit", "blks_read", "dirtied")
        keys += ("wal_records", "toplevel", "query")
        statements = [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]
    for s in statements:
        s["total_ms"], s["mean_ms"] = float(s["total_ms"]), float(s["mean_ms"])
        s["query"] = " ".join(s["query"].split())
    top_level_ms = sum(s["total_ms"] for s in statements if s["toplevel"])
    tables = {}
    for name, counts in after["tables"].items():
        delta = _diff(counts, before["tables"].get(name, {}))
        if any(delta.values()):
            tables[name] = delta
    functions = {}
    for name, counts in after["functions"].items():
        delta = _diff(counts, before["functions"].get(name, {}))
        if delta["calls"]:
            functions[name] = delta
    result = {
        "tickets": n,
        "statements_total_exec_ms_per_ticket": round(top_level_ms / n, 3),
        "statement_calls_per_ticket": round(
            sum(s["calls"] for s in statements if s["toplevel"]) / n, 2
        ),
        "cpu_s_by_process": cpu_split,
        "database": _diff(after["database"], before["database"]),
        "wal": _diff(after["wal"], before["wal"]),
        "tables": dict(sorted(tables.items(), key=lambda kv: -kv[1]["upd"] - kv[1]["ins"])),
        "functions": dict(sorted(functions.items(), key=lambda kv: -kv[1]["total_ms"])),
        "statements": statements,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"pipeline-pg-{scenario}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    _print(result, n)
    print(f"   written: {out}")
    return result


def _print(r: dict, n: int) -> None:
    db, wal = r["database"], r["wal"]
    print(
        f"   PostgreSQL (pg_stat_statements): {r['statements_total_exec_ms_per_ticket']} ms "
        f"execution per ticket in {r['statement_calls_per_ticket']} top-level statements; "
        f"{db['commits'] / n:.1f} commits, {wal['records'] / n:.0f} WAL records, "
        f"{wal['bytes'] / n / 1024:.1f} KiB WAL, {wal['fpi'] / n:.1f} full-page images per ticket"
    )
    if r["cpu_s_by_process"]:
        split = ", ".join(f"{k}: {v * 1000 / n:.1f}" for k, v in r["cpu_s_by_process"].items())
        print(f"   PostgreSQL CPU ms per ticket by process: {split}")
    print(f"   sessions opened: {db['sessions']}")
    print("   top statements by total time (ms/ticket, calls/ticket, rows/call, nested=*):")
    for s in r["statements"][:TOP]:
        rows = s["rows"] / s["calls"] if s["calls"] else 0
        print(
            f"     {s['total_ms'] / n:7.3f} {s['calls'] / n:6.2f} {rows:6.1f} "
            f"{' ' if s['toplevel'] else '*'} {s['query'][:150]}"
        )
    print("   functions and triggers (ms/ticket total, self; calls/ticket):")
    for name, f in list(r["functions"].items())[:12]:
        print(
            f"     {f['total_ms'] / n:7.3f} {f['self_ms'] / n:7.3f} {f['calls'] / n:6.2f}  {name}"
        )
    print("   table writes per ticket (inserted, updated, of them HOT, index scans):")
    for name, t in list(r["tables"].items())[:15]:
        print(
            f"     {t['ins'] / n:6.2f} {t['upd'] / n:6.2f} {t['hot_upd'] / n:6.2f} "
            f"{t['idx_scan'] / n:7.2f}  {name}"
        )
