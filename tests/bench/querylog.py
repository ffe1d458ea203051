"""SQL queries per Celery task, counted inside the worker (bench only).

The pipeline bench starts its worker with ``DJANGO_SETTINGS_MODULE=tests.bench.worker_settings``,
which lists this module in ``CELERY_IMPORTS`` when ``AGENTOPS_BENCH_QUERY_LOG`` names a file.
``task_prerun`` puts a counting ``execute_wrapper`` on the task's database connection and
``task_postrun`` takes it off again and appends one JSON line per task to that file:

    {"task": "agents.tasks.advance_run", "run_id": 17, "eager": false, "result": "advanced",
     "queries": 23, "db_ms": 9.1, "wall_ms": 31.5, "cpu_ms": 20.2, "pid": 4242, "at": 1718000000.1,
     "by_table": {"SELECT agents_run": 2, "UPDATE agents_step": 1, ...}}

Tasks applied eagerly inside another task (``task_always_eager``) nest: each has its own
counter, and the outer task's count includes the inner one's queries. Lines are appended
with one ``write`` on an ``O_APPEND`` descriptor, so prefork children can share the file.
"""

from __future__ import annotations

import contextlib
import cProfile
import json
import os
import re
import time
from collections import Counter

from celery.signals import task_postrun, task_prerun
from django.db import connection

PATH = os.environ.get("AGENTOPS_BENCH_QUERY_LOG", "")
# Also log each statement (first 200 characters) of every task: for finding what to cut.
WITH_SQL = bool(os.environ.get("AGENTOPS_BENCH_QUERY_LOG_SQL"))
# cProfile of the task bodies, dumped (pstats) to this file every 100 tasks.
PROFILE = os.environ.get("AGENTOPS_BENCH_PROFILE", "")
# CPU time (process_time), not wall time: waits on PostgreSQL and Redis do not count.
_profiler = cProfile.Profile(time.process_time) if PROFILE else None
_profiled = 0
_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?([A-Za-z0-9_]+)"?', re.IGNORECASE)


class _Counter:
    def __init__(self, run_id=None):
        self.run_id = run_id
        self.queries = 0
        self.db_seconds = 0.0
        self.by_table: Counter[str] = Counter()
        self.statements: list[str] = []
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.db_seconds += time.perf_counter() - start
            self.queries += 1
            self.by_table[_LABELS.get(sql) or _label(sql)] += 1
            if WITH_SQL:
                self.statements.append(" ".join(sql.split())[:200])


_active: dict[str, _Counter] = {}
# "VERB table" of each statement text seen: the worker sends the same few hundred texts over and
# over, and the regex over a long CTE statement was a few percent of the worker's CPU, which the
# bench then counted as the worker's own.
_LABELS: dict[str, str] = {}


def _label(sql: str) -> str:
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    table = _TABLE.search(sql)
    label = f"{verb} {table.group(1) if table else '-'}"
    if len(_LABELS) < 20_000:
        _LABELS[sql] = label
    return label


@task_prerun.connect
def _start(task_id=None, task=None, **kwargs):
    if not PATH or task_id is None:
        return
    args = kwargs.get("args") or ()
    counter = _Counter(run_id=args[0] if args else None)
    _active[task_id] = counter
    connection.execute_wrappers.append(counter)
    if _profiler is not None:
        _profiler.enable()


def _chained(run, step) -> None:
    """A worker's task went on to the run's next step: the steps so far get their line, and
    the next one starts a count of its own (one line per step, as before chaining)."""
    for task_id, counter in list(_active.items()):
        if counter.run_id == run.pk:
            connection.execute_wrappers.remove(counter)
            _write(counter, "agents.tasks.advance_run", run.pk, "chained", eager=False)
            fresh = _Counter(run_id=run.pk)
            _active[task_id] = fresh
            connection.execute_wrappers.append(fresh)


if PATH:
    from agents.engine.runner import step_hooks

    step_hooks.append(_chained)


@task_postrun.connect
def _stop(task_id=None, task=None, args=None, retval=None, **kwargs):
    global _profiled
    counter = _active.pop(task_id, None)
    if counter is None:
        return
    if _profiler is not None:
        _profiler.disable()
        _profiled += 1
        if _profiled % 10 == 0:  # (a task may chain a whole run: dump often)
            _profiler.dump_stats(PROFILE)
    with contextlib.suppress(ValueError):
        connection.execute_wrappers.remove(counter)
    _write(
        counter,
        getattr(task, "name", "?"),
        args[0] if args else None,
        retval if isinstance(retval, str | int | float | None) else repr(retval),
        eager=bool(getattr(getattr(task, "request", None), "is_eager", False)),
    )


def _write(counter: _Counter, task: str, run_id, result, *, eager: bool) -> None:
    line = {
        "task": task,
        "run_id": run_id,
        "eager": eager,
        "result": result,
        "queries": counter.queries,
        "db_ms": round(counter.db_seconds * 1000, 3),
        "wall_ms": round((time.perf_counter() - counter.started) * 1000, 3),
        "cpu_ms": round((time.process_time() - counter.cpu_started) * 1000, 3),
        "pid": os.getpid(),
        "at": time.time(),
        "by_table": dict(counter.by_table),
    }
    if WITH_SQL:
        line["sql"] = counter.statements
    data = (json.dumps(line, default=str) + "\n").encode()
    fd = os.open(PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
