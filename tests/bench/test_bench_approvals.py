"""Approvals under load: 10,000 pending requests, 20 reviewers deciding at once.

Each reviewer is a thread with its own database connection (BENCH_MODE=processes: a forked
process each). It reads the top of its queue
through the real selector (``approvals.selectors.approval_queue``: priority, then SLA due) —
mostly "assigned to me", one time in five (BENCH_SHARED) and once its own is empty the shared
"all pending" — picks one of the first few, so reviewers collide as real ones do, and decides it through ``approvals.services.decide`` (row lock + status check, four-eyes,
audit, handler). A loser gets ``DecisionConflict`` and reads the queue again.

Printed and written to var/bench/approvals.json: decisions/s, decision latency (p50/p95/p99
of the ``decide`` call, lock waits included), conflicts; and, before that, auto-assignment of
500 requests opened concurrently through ``request_approval`` (creations/s, load balance).
Asserted: zero double decisions — one handler call and one decision audit row per request,
every request decided — and the tenant's audit hash chain intact.

    AGENTOPS_BENCH=1 .venv/bin/python -m pytest tests/bench/test_bench_approvals.py -q -s -p no:cacheprovider
    BENCH_APPROVALS=2000 BENCH_REVIEWERS=8 ...   smaller / different runs
    BENCH_MODE=processes ...                     reviewers as forked processes, not threads
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

PENDING = int(os.environ.get("BENCH_APPROVALS", "10000"))
REVIEWERS = int(os.environ.get("BENCH_REVIEWERS", "20"))
CREATED_BY_SERVICE = min(500, PENDING)  # opened concurrently through request_approval
TOP = 3  # a reviewer picks among the first few of the queue
SHARED = float(os.environ.get("BENCH_SHARED", "0.2"))  # how often they work the shared top
# Reviewers as threads of one process (default) or as forked processes (BENCH_MODE=processes).
MODE = os.environ.get("BENCH_MODE", "threads")
OUT = (
    Path(settings.BASE_DIR)
    / "var"
    / "bench"
    / ("approvals.json" if MODE == "threads" else f"approvals-{MODE}.json")
)
HANDLER = "bench.approvals.count"

_calls: Counter = Counter()
_calls_lock = threading.Lock()


def _count_call(request) -> None:
    with _calls_lock:
        _calls[request.pk] += 1


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def _stats(values: list[float]) -> dict:
    if not values:
        return {}
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p95_ms": round(_percentile(values, 95), 2),
        "p99_ms": round(_percentile(values, 99), 2),
        "max_ms": round(max(values), 2),
        "mean_ms": round(statistics.fmean(values), 2),
    }


def _setup():
    from agentops.models import Role, Tenant
    from tests.bench.conftest import _make_user

    tag = uuid.uuid4().hex[:6]
    tenant = Tenant.objects.create(
        name=f"Approvals bench {tag}", slug=f"approvals-{tag}", tier=Tenant.Tier.ENTERPRISE
    )
    reviewers = [_make_user(f"rev{i:02d}-{tag}", tenant, Role.REVIEWER) for i in range(REVIEWERS)]
    agent = _make_user(f"agent-{tag}", tenant, Role.AGENT)
    return tenant, reviewers, agent


def _open_concurrently(tenant, agent) -> dict:
    """CREATED_BY_SERVICE requests through request_approval from REVIEWERS threads at once."""
    from approvals import services

    per_thread = [CREATED_BY_SERVICE // REVIEWERS] * REVIEWERS
    per_thread[0] += CREATED_BY_SERVICE - sum(per_thread)
    barrier = threading.Barrier(REVIEWERS)
    latencies: list[float] = []

    def work(n: int) -> list[float]:
        mine = []
        barrier.wait()
        try:
            for i in range(n):
                start = time.perf_counter()
                services.request_approval(
                    tenant=tenant,
                    handler=HANDLER,
                    handler_ref=str(i),
                    subject_type="bench",
                    subject_id=str(i),
                    subject_repr=f"Bench request {i}",
                    action="grant_admin_access",
                    arguments={"user_email": f"user{i}@example.com"},
                    priority=random.choice(["critical", "high", "medium", "low"]),
                    requested_by=agent,
                )
                mine.append((time.perf_counter() - start) * 1000)
            return mine
        finally:
            connection.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=REVIEWERS) as pool:
        for chunk in pool.map(work, per_thread):
            latencies.extend(chunk)
    elapsed = time.perf_counter() - t0
    return {"created": len(latencies), "seconds": round(elapsed, 2), "latency": latencies}


def _bulk_pending(tenant, reviewers, agent, n: int) -> None:
    """The rest of the backlog, written in bulk: assigned round-robin, mixed priorities."""
    from approvals.models import ApprovalRequest
    from approvals.services import arguments_hash

    now = timezone.now()
    rng = random.Random(5)
    rows = []
    for i in range(n):
        arguments = {"user_email": f"bulk{i}@example.com"}
        priority = rng.choice(["critical", "high", "high", "medium", "low"])
        rows.append(
            ApprovalRequest(
                tenant=tenant,
                handler=HANDLER,
                handler_ref=f"bulk-{i}",
                subject_type="bench",
                subject_id=str(i),
                subject_repr=f"Bulk request {i}",
                action="grant_admin_access",
                arguments=arguments,
                arguments_hash=arguments_hash(arguments),
                priority=priority,
                sla_due=now + timedelta(minutes=rng.randint(-120, 24 * 60)),
                requested_by=agent,
                requested_by_label="agent (bench)",
                assigned_to=reviewers[i % len(reviewers)],
                created_at=now - timedelta(minutes=rng.randint(0, 600)),
            )
        )
    ApprovalRequest.objects.bulk_create(rows, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {ApprovalRequest._meta.db_table}")


def _reviewer_loop(tenant, reviewer, index: int, barrier) -> dict:
    """One reviewer until the queue is empty: read the top, pick, decide; count what happened."""
    from agentops.models import Membership
    from approvals import selectors, services

    rng = random.Random(index)
    won, lost, latencies, read_ms = 0, 0, [], []
    barrier.wait()
    try:
        membership = Membership.objects.select_related("tenant", "user").get(
            user=reviewer, tenant=tenant
        )
        while True:
            # Mostly their own queue ("mine"); now and then, or once theirs is empty, the
            # shared top of "all" — where they collide with each other.
            start = time.perf_counter()
            top = []
            if rng.random() >= SHARED:
                top = list(selectors.approval_queue(membership, "mine")[:TOP])
            if not top:
                top = list(selectors.approval_queue(membership, "all")[:TOP])
            read_ms.append((time.perf_counter() - start) * 1000)
            if not top:
                break
            pick = rng.choice(top)
            approve = rng.random() < 0.9
            start = time.perf_counter()
            try:
                services.decide(
                    request=pick,
                    actor=reviewer,
                    approve=approve,
                    comment="" if approve else "Not without a ticket from the manager.",
                )
                won += 1
            except services.DecisionConflict:
                lost += 1
            latencies.append((time.perf_counter() - start) * 1000)
    finally:
        connection.close()
    return {"won": won, "lost": lost, "latency": latencies, "read": read_ms}


def _decide_in_threads(tenant, reviewers) -> list[dict]:
    barrier = threading.Barrier(len(reviewers))
    with ThreadPoolExecutor(max_workers=len(reviewers)) as pool:
        return list(
            pool.map(
                lambda i: _reviewer_loop(tenant, reviewers[i], i, barrier), range(len(reviewers))
            )
        )


def _decide_in_processes(tenant, reviewers) -> list[dict]:
    """One forked process per reviewer (like separate web workers); handler calls come back
    with each process's results."""
    import multiprocessing

    from django.db import connections

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(reviewers))
    results = context.Queue()

    def child(index: int) -> None:
        result = _reviewer_loop(tenant, reviewers[index], index, barrier)
        result["calls"] = dict(_calls)
        results.put(result)

    connections.close_all()  # each child opens its own connection
    processes = [context.Process(target=child, args=(i,)) for i in range(len(reviewers))]
    for process in processes:
        process.start()
    collected = [results.get(timeout=1800) for _ in processes]
    for process in processes:
        process.join()
        assert process.exitcode == 0, process.exitcode
    for result in collected:
        for pk, n in result.pop("calls").items():
            _calls[pk] += n
    return collected


def _decide_concurrently(tenant, reviewers) -> dict:
    t0 = time.perf_counter()
    if MODE == "processes":
        per_reviewer = _decide_in_processes(tenant, reviewers)
    else:
        per_reviewer = _decide_in_threads(tenant, reviewers)
    return {"seconds": time.perf_counter() - t0, "per_reviewer": per_reviewer}


def test_bench_approvals(django_db_setup):
    from agentops.audit import verify_chain
    from agentops.models import AuditEvent
    from approvals import handlers
    from approvals.models import ApprovalRequest

    # The bench's own database (tests/bench/conftest.py), never the development one.
    assert connection.settings_dict["NAME"].endswith("_bench"), connection.settings_dict["NAME"]
    handlers.register(HANDLER, _count_call)
    _calls.clear()
    tenant, reviewers, agent = _setup()
    load_before = os.getloadavg()[0]

    # 1. Auto-assignment under concurrent creation.
    created = _open_concurrently(tenant, agent)
    loads = Counter(
        ApprovalRequest.objects.for_tenant(tenant).values_list("assigned_to_id", flat=True)
    )
    assert sum(loads.values()) == CREATED_BY_SERVICE and None not in loads
    assert max(loads.values()) - min(loads.values()) <= 1, loads  # least loaded, race-free
    # 2. The rest of the backlog in bulk.
    _bulk_pending(tenant, reviewers, agent, PENDING - CREATED_BY_SERVICE)
    pending = ApprovalRequest.objects.for_tenant(tenant).filter(status="pending").count()
    assert pending == PENDING

    # 3. 20 reviewers decide everything.
    run = _decide_concurrently(tenant, reviewers)
    won = sum(r["won"] for r in run["per_reviewer"])
    lost = sum(r["lost"] for r in run["per_reviewer"])
    latencies = [ms for r in run["per_reviewer"] for ms in r["latency"]]
    reads = [ms for r in run["per_reviewer"] for ms in r["read"]]

    # Zero double decisions: one handler call, one decision audit row, per request.
    requests = ApprovalRequest.objects.for_tenant(tenant)
    assert requests.filter(status="pending").count() == 0
    decided_ids = set(requests.values_list("pk", flat=True))
    assert won == PENDING == len(decided_ids)
    doubles = {pk: n for pk, n in _calls.items() if n != 1}
    assert not doubles, f"handler called more than once: {list(doubles.items())[:10]}"
    assert set(_calls) == decided_ids
    audit_rows = (
        AuditEvent.objects.for_tenant(tenant)
        .filter(action__in=["approval.approved", "approval.rejected"])
        .values("target_id")
        .annotate(n=Count("pk"))
    )
    per_request = {int(row["target_id"]): row["n"] for row in audit_rows}
    assert set(per_request) == decided_ids
    assert all(n == 1 for n in per_request.values()), "a request has two decision audit rows"
    assert requests.filter(decided_by__isnull=True).count() == 0
    chain = verify_chain(tenant)
    assert chain.ok, chain

    decisions_per_s = won / run["seconds"]
    latency = _stats(latencies)
    create_latency = _stats(created.pop("latency"))
    print(f"\n\n== Approvals: {PENDING:,} pending, {REVIEWERS} concurrent reviewers ({MODE}) ==")
    print(f"   load average before: {load_before:.2f}, cpus: {os.cpu_count()}")
    print(
        f"   auto-assignment: {CREATED_BY_SERVICE} requests opened by {REVIEWERS} threads in "
        f"{created['seconds']:.2f} s ({CREATED_BY_SERVICE / created['seconds']:.0f}/s), "
        f"p95 {create_latency['p95_ms']:.1f} ms; load per reviewer "
        f"{min(loads.values())}-{max(loads.values())}"
    )
    print(
        f"   decisions: {won:,} in {run['seconds']:.1f} s = {decisions_per_s:.0f} decisions/s; "
        f"conflicts (lost races) {lost:,}"
    )
    print(
        f"   decide() latency: p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms, "
        f"p99 {latency['p99_ms']:.1f} ms, max {latency['max_ms']:.1f} ms "
        f"(over {latency['n']:,} attempts, lock waits included)"
    )
    print(
        f"   queue read (top {TOP}): p50 {_stats(reads)['p50_ms']:.1f} ms, "
        f"p95 {_stats(reads)['p95_ms']:.1f} ms"
    )
    print(
        "   double decisions: 0 (one handler call and one audit row per request); "
        f"audit chain intact ({chain.count:,} events)"
    )

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "when": timezone.now().isoformat(),
                "pending": PENDING,
                "reviewers": REVIEWERS,
                "reviewers_as": MODE,
                "pick_among_top": TOP,
                "shared_queue_share": SHARED,
                "auto_assignment": {
                    **created,
                    "per_second": round(CREATED_BY_SERVICE / created["seconds"], 1),
                    "latency": create_latency,
                    "load_min": min(loads.values()),
                    "load_max": max(loads.values()),
                },
                "decisions": won,
                "conflicts": lost,
                "seconds": round(run["seconds"], 2),
                "decisions_per_second": round(decisions_per_s, 1),
                "decide_latency": latency,
                "queue_read_latency": _stats(reads),
                "double_decisions": 0,
                "audit_events": chain.count,
                "environment": {
                    "python": platform.python_version(),
                    "postgresql": pg_version,
                    "cpus": os.cpu_count(),
                    "loadavg_1m_before": round(load_before, 2),
                    "loadavg_1m_after": round(os.getloadavg()[0], 2),
                },
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten: {OUT}")
