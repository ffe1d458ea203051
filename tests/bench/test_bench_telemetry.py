"""Telemetry ingest, RCA and run metrics at a million events.

1. A real web process (``manage.py runserver``, DEBUG off) on the bench database; two client
   threads POST batches of runs to /api/v1/agent-runs/batch with a bearer token until
   BENCH_TELEMETRY_EVENTS events (steps + tool calls + guardrail events; default 1,000,000)
   are stored. Printed: events/s, p50/p95 request latency, and the web process's RSS growth
   after the warm-up (psutil).
2. RCA of a 200-event run, offline: p50/p95 over BENCH_REQUESTS analyses.
3. GET /api/v1/agent-runs/metrics?hours=24 and the console page /runs/-/metrics over all
   those events: p50/p95.

Goals (2-core machine): ≥ 5,000 events/s with p95 request < 200 ms, < 50 MB growth; RCA of
200 events < 1 s; metrics p95 < 200 ms. Nothing here asserts a time: the numbers are printed
and written to var/bench/telemetry.json. The asserts are about correctness (every event
stored, one run per run_id).

    make bench PYTEST_ARGS="-k telemetry"
    BENCH_TELEMETRY_EVENTS=100000 make bench PYTEST_ARGS="-k telemetry"
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.test import Client

from tests.celery_worker import worker_database_url

EVENTS = int(os.environ.get("BENCH_TELEMETRY_EVENTS", "1000000"))
RUNS_PER_BATCH = int(os.environ.get("BENCH_TELEMETRY_BATCH", "25"))
EVENTS_PER_RUN = 20  # 10 steps, 8 tool calls, 2 guardrail events
THREADS = 2
REQUESTS = max(30, int(os.environ.get("BENCH_REQUESTS", "50")))
OUT = Path(settings.BASE_DIR) / "var" / "bench" / "telemetry.json"
ROOT = Path(__file__).resolve().parents[2]


def _iso(t: datetime) -> str:
    return t.isoformat()


def make_run(i: int, now: datetime) -> dict:
    start = now - timedelta(seconds=(i * 37) % 86_000)
    steps, calls = [], []
    for s in range(10):
        t = start + timedelta(seconds=s)
        steps.append(
            {
                "step_id": f"s{s}",
                "name": f"step {s}",
                "status": "failure" if (i % 7 == 0 and s == 9) else "success",
                "started_at": _iso(t),
                "ended_at": _iso(t + timedelta(milliseconds=300 + (i * s) % 900)),
                "input_summary": f"input {i % 50}",
                "output_summary": "ok",
                "retries": 0,
            }
        )
        if s < 8:
            failed = i % 7 == 0 and s == 7
            calls.append(
                {
                    "call_id": f"c{s}",
                    "step_id": f"s{s}",
                    "tool_name": f"tool_{s % 4}",
                    "status": "failure" if failed else "success",
                    "args_json": {"q": i % 100, "page": s},
                    "result_summary": "" if failed else "3 rows",
                    "status_code": 429 if failed else 200,
                    "error_class": "HTTPError" if failed else None,
                    "error_message": "Too Many Requests" if failed else None,
                    "latency_ms": 40 + s,
                }
            )
    guards = [
        {
            "event_id": f"g{g}",
            "type": "redaction",
            "message": "email redacted",
            "step_id": f"s{g}",
            "created_at": _iso(start + timedelta(seconds=g)),
        }
        for g in range(2)
    ]
    return {
        "run_id": f"bench-{i}",
        "agent_name": f"agent-{i % 5}",
        "agent_version": f"1.{i % 3}",
        "model": "m",
        "environment": "prod",
        "started_at": _iso(start),
        "ended_at": _iso(start + timedelta(seconds=11)),
        "status": "failure" if i % 7 == 0 else "success",
        "error_type": None,
        "error_message": None,
        "correlation_ids": [f"input-{i % 50}"],
        "steps": steps,
        "tool_calls": calls,
        "guardrail_events": guards,
        "cost": {"tokens_prompt": 100, "tokens_completion": 20, "total_cost_usd": 0.001},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_web(port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": worker_database_url(),
        "DEBUG": "0",
        # One token sends ~1,000 batches a minute here: the per-token flood limit is not what
        # is measured (0: off).
        "API_TOKEN_REQUESTS_PER_MINUTE": "0",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError(f"the web process did not start:\n{log.read_text()[-3000:]}")


def _pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] if values else 0.0


def _ingest(port: int, token: str, batches: list[bytes], rss_probe) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    cursor = iter(range(len(batches)))

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        while True:
            with lock:
                n = next(cursor, None)
            if n is None:
                return
            t = time.perf_counter()
            conn.request("POST", "/api/v1/agent-runs/batch", body=batches[n], headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - t) * 1000
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    errors.append(f"{response.status}: {body[:300]!r}")
            if n % 50 == 0:
                rss_probe()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    assert not errors, errors[:3]
    return {"wall_s": wall, "latencies": latencies}


def _clear(tenant) -> None:
    """Runs of an earlier bench (--reuse-db), children first, one statement each."""
    from django.db import connection

    from agents.models import GuardrailEvent, Run, Step, StepLatencyRollup, ToolCall

    with connection.cursor() as cursor:
        for model in (GuardrailEvent, ToolCall, Step, Run, StepLatencyRollup):
            sql = f'DELETE FROM "{model._meta.db_table}" WHERE tenant_id = %s'  # noqa: S608
            cursor.execute(sql, [tenant.pk])


def test_bench_telemetry(django_db_setup, tmp_path):
    import psutil
    from django.contrib.auth import get_user_model

    from agentops.models import Role, Tenant
    from agentops.services import api_token_create, membership_set
    from agents.models import GuardrailEvent, Run, Step, ToolCall
    from agents.rca.analyser import analyse
    from agents.rca.collect import telemetry_of

    tenant, _ = Tenant.objects.get_or_create(
        slug="telemetry-bench", defaults={"name": "Telemetry bench"}
    )
    # The ingest is measured, not the tier: the bench tenant is on the tier without limits.
    Tenant.objects.filter(pk=tenant.pk).update(tier="enterprise")
    tenant.refresh_from_db()
    user, _ = get_user_model().objects.get_or_create(username="tele-bench")
    membership_set(tenant=tenant, user=user, role=Role.AGENT)
    _, token = api_token_create(tenant=tenant, user=user)
    _clear(tenant)

    runs = EVENTS // EVENTS_PER_RUN
    now = datetime.now(UTC)
    batches = [
        json.dumps(
            {"runs": [make_run(i, now) for i in range(b, min(b + RUNS_PER_BATCH, runs))]}
        ).encode()
        for b in range(0, runs, RUNS_PER_BATCH)
    ]
    port = _free_port()
    web = _start_web(port, tmp_path / "web.log")
    try:
        proc = psutil.Process(web.pid)
        warm = _ingest(port, token, batches[:10], lambda: None)  # warm-up: imports, caches
        baseline = proc.memory_info().rss
        peak = [baseline]
        result = _ingest(port, token, batches[10:], lambda: peak.append(proc.memory_info().rss))
        peak.append(proc.memory_info().rss)
    finally:
        web.terminate()
        web.wait(timeout=20)
    sent_events = (len(batches) - 10) * RUNS_PER_BATCH * EVENTS_PER_RUN
    lat = result["latencies"]
    assert Run.objects.for_tenant(tenant).count() == runs
    stored = sum(m.objects.for_tenant(tenant).count() for m in (Step, ToolCall, GuardrailEvent))
    assert stored == runs * EVENTS_PER_RUN

    # RCA of a 200-event run, offline.
    from agents.telemetry.schemas import parse_run
    from agents.telemetry.services import ingest_runs

    big = make_run(10_000_000, now)
    big["run_id"], big["status"] = "bench-rca-200", "failure"
    big["steps"] = [
        {**s, "step_id": f"b{k}-{s['step_id']}"} for k in range(10) for s in big["steps"]
    ]
    big["tool_calls"] = [
        {**c, "call_id": f"b{k}-{c['call_id']}", "step_id": f"b{k}-{c['step_id']}"}
        for k in range(10)
        for c in big["tool_calls"]
    ][:90]
    big["guardrail_events"] = [
        {**g, "event_id": f"b{k}-{g['event_id']}", "step_id": f"b{k}-{g['step_id']}"}
        for k in range(5)
        for g in big["guardrail_events"]
    ]
    ingest_runs(tenant=tenant, runs=[parse_run(big)])
    rca_run = Run.objects.for_tenant(tenant).get(run_id="bench-rca-200")
    rca_ms = []
    for _ in range(REQUESTS):
        t = time.perf_counter()
        analyse(*telemetry_of(rca_run))
        rca_ms.append((time.perf_counter() - t) * 1000)

    # Metrics over everything ingested.
    client = Client()
    client.force_login(user)
    metrics_ms = {"api": [], "page": []}
    for _ in range(max(10, REQUESTS // 3)):
        t = time.perf_counter()
        assert (
            client.get(
                "/api/v1/agent-runs/metrics", {"hours": 24}, HTTP_AUTHORIZATION=f"Bearer {token}"
            ).status_code
            == 200
        )
        metrics_ms["api"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        assert client.get("/runs/-/metrics").status_code == 200
        metrics_ms["page"].append((time.perf_counter() - t) * 1000)

    report = {
        "events": sent_events,
        "events_per_s": round(sent_events / result["wall_s"]),
        "events_per_request": RUNS_PER_BATCH * EVENTS_PER_RUN,
        "request_p50_ms": round(statistics.median(lat), 1),
        "request_p95_ms": round(_pct(lat, 95), 1),
        "warmup_p50_ms": round(statistics.median(warm["latencies"]), 1),
        "web_rss_growth_mb": round((max(peak) - baseline) / 2**20, 1),
        "rca_200_events_p50_ms": round(statistics.median(rca_ms), 1),
        "rca_200_events_p95_ms": round(_pct(rca_ms, 95), 1),
        "metrics_api_p95_ms": round(_pct(metrics_ms["api"], 95), 1),
        "metrics_page_p95_ms": round(_pct(metrics_ms["page"], 95), 1),
        "stored_events": stored + 200,
        "loadavg": os.getloadavg(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    print("\ntelemetry bench:", json.dumps(report, indent=2))
