"""100 concurrent incidents through the incident-response loop, on a real Celery worker with
the offline model.

The six fault scenarios are written into one tenant's sandbox, then 100 incidents on their
services are opened at once (one transaction). Every run triages, diagnoses and parks for
the remediation's approval; a reviewer then approves all 100, and each run executes the fix,
verifies the error rate fell and resolves its incident. Printed and written to
var/bench/incidents.json: runs/s and p50/p95 latency of each phase (diagnosis: created →
parked; remediation: approved → resolved). The asserts are about correctness: every incident
resolved, every root cause the scenario's.

    make bench PYTEST_ARGS="-k incidents"
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import Count

from tests.bench.test_bench_pipeline import (  # noqa: F401  (fixtures)
    bench_delivery,
    start_bench_worker,
    transactional_db,
)

INCIDENTS = int(os.environ.get("BENCH_INCIDENTS", "100"))
TIMEOUT = float(os.environ.get("BENCH_INCIDENTS_TIMEOUT", "600"))
SERVICES = {  # scenario → its affected service
    "bad_deploy": "checkout",
    "db_pool_exhaustion": "orders",
    "memory_leak": "inventory",
    "certificate_expiry": "edge-api",
    "dependency_timeout": "payments",
    "disk_full": "search-indexer",
}


def _tenant():
    from django.contrib.auth import get_user_model

    from agentops.models import Role, Tenant
    from agentops.services import membership_set
    from agents.engine import agent_config

    slug = f"incidents-{int(time.time())}"
    tenant = Tenant.objects.create(name="Incident bench", slug=slug, tier="enterprise")
    config = agent_config(tenant)
    config.llm_backend = "offline"
    config.save()
    reviewer = get_user_model().objects.create_user(username=f"{slug}-rev", password="pw")
    membership_set(tenant=tenant, user=reviewer, role=Role.REVIEWER)
    return tenant, reviewer


def _wait(tenant, status: str, n: int, worker) -> float:
    from agents.models import Run

    deadline = time.monotonic() + TIMEOUT
    counts = {}
    while time.monotonic() < deadline:
        counts = dict(Run.objects.for_tenant(tenant).values_list("status").annotate(n=Count("id")))
        if counts.get(status, 0) >= n:
            return time.time()
        time.sleep(0.25)
    pytest.fail(f"not {n} {status} after {TIMEOUT:.0f}s: {counts}\n{worker.log()}", pytrace=False)


def _stats(values: list[float]) -> dict:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {"p50_s": round(statistics.median(ordered), 3), "p95_s": round(p95, 3)}


def test_bench_incidents(start_bench_worker, tmp_path):  # noqa: F811
    from django.db import transaction

    from agents.models import Run
    from approvals.models import ApprovalRequest
    from approvals.services import decide
    from incidents.incident_scenarios import generate_incident
    from incidents.models import Ticket
    from incidents.services import ticket_create

    tenant, reviewer = _tenant()
    for scenario in SERVICES:
        generate_incident(tenant=tenant, actor=None, scenario=scenario, start_agent=False)
    Ticket.objects.for_tenant(tenant).delete()  # the scenarios' own tickets: not measured
    worker = start_bench_worker("solo", tmp_path / "queries.jsonl")
    names = sorted(SERVICES)
    t0 = time.time()
    with transaction.atomic():
        for index in range(INCIDENTS):
            scenario = names[index % len(names)]
            ticket_create(
                tenant=tenant, actor=None, title=f"{SERVICES[scenario]} alert #{index}",
                kind="incident", requester_email="alerts@monitoring.invalid",
                severity="sev2", priority="high", affected_services=[SERVICES[scenario]],
                detected_by="monitoring", source="api", start_agent=True,
            )  # fmt: skip
    parked = _wait(tenant, "waiting_approval", INCIDENTS, worker)
    runs = Run.objects.for_tenant(tenant)
    diagnosis = [(r.updated_at - r.created_at).total_seconds() for r in runs]

    t1 = time.time()
    for request in ApprovalRequest.objects.for_tenant(tenant).filter(status="pending"):
        decide(request=request, actor=reviewer, approve=True)
    done = _wait(tenant, "succeeded", INCIDENTS, worker)
    decided = {str(a.subject_id): a.decided_at for a in ApprovalRequest.objects.for_tenant(tenant)}
    remediation = [(r.ended_at - decided[str(r.pk)]).total_seconds() for r in runs.all()]
    faults = {r.result["report"]["root_cause"]["fault"] for r in runs.all()}
    assert faults == set(SERVICES)
    for run in runs.all():
        service = run.result["report"]["services"][0]
        assert SERVICES[run.result["report"]["root_cause"]["fault"]] == service
    assert Ticket.objects.for_tenant(tenant).filter(status="resolved").count() == INCIDENTS

    result = {
        "incidents": INCIDENTS,
        "diagnosis": {"runs_per_s": round(INCIDENTS / (parked - t0), 2), **_stats(diagnosis)},
        "remediation": {"runs_per_s": round(INCIDENTS / (done - t1), 2), **_stats(remediation)},
        "end_to_end_runs_per_s": round(INCIDENTS / ((parked - t0) + (done - t1)), 2),
    }
    out = Path(settings.BASE_DIR) / "var" / "bench" / "incidents.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nincident response bench: {json.dumps(result)}")
