"""GET /api/v1/agent-runs/metrics and the console page: numbers from the database, charted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from agents.rca import services as rca_services
from tests.agents.rca.test_rca_api import drive
from tests.agents.telemetry.payloads import seed_run

pytestmark = pytest.mark.django_db


def shifted(hours_ago: float, payload: dict) -> dict:
    """Shift a seed run (and its children) so that it started ``hours_ago``."""
    start = datetime.now(UTC) - timedelta(hours=hours_ago)
    shift = start - datetime.fromisoformat(payload["started_at"].replace("Z", "+00:00"))

    def moved(value):
        return (datetime.fromisoformat(value.replace("Z", "+00:00")) + shift).isoformat()

    payload["started_at"] = moved(payload["started_at"])
    payload["ended_at"] = moved(payload["ended_at"])
    for item in payload["steps"]:
        item["started_at"], item["ended_at"] = moved(item["started_at"]), moved(item["ended_at"])
    for item in payload["guardrail_events"]:
        item["created_at"] = moved(item["created_at"])
    return payload


@pytest.fixture
def window(personas, ingest, outsider_api):
    ingest(personas.tenant, shifted(1, seed_run()))  # failed, 2 failing calls, $0.0245
    ingest(
        personas.tenant,
        shifted(2, seed_run(run_id="ok-1", status="success", agent_version="2.2.0")),
    )
    ingest(personas.tenant, shifted(3, seed_run("insufficient")))  # failed, no cost
    ingest(personas.tenant, shifted(50, seed_run(run_id="old-1")))  # outside 24 h
    outsider_api.post(shifted(1, seed_run(run_id="theirs")))  # another tenant's


def test_metrics_api(api, window, personas):
    m = api.get("/metrics", hours=24).json()
    assert m["total_runs"] == 3 and m["success_rate"] == pytest.approx(33.33)
    assert m["top_failing_tools"] == [{"tool": "order_lookup_api", "count": 4}]
    assert m["total_cost_usd"] == pytest.approx(0.049)
    # Step latencies in the window: 5000, 10000, 10000, 20000 per seed run, 20000 and 10000
    # for the other: the p95 is 20000, within the rollup's half bucket (0.5%).
    assert m["p95_step_latency_ms"] == pytest.approx(20000, rel=0.005)
    by_version = {(a["agent_name"], a["agent_version"]): a for a in m["per_agent"]}
    assert by_version[("customer-support-agent", "2.1.0")]["success_rate"] == 0.0
    assert by_version[("customer-support-agent", "2.2.0")]["success_rate"] == 100.0
    assert sum(h["runs"] for h in m["per_hour"]) == 3 and len(m["per_hour"]) == 25
    assert api.get("/metrics", hours=72).json()["total_runs"] == 4
    assert api.get("/metrics", hours=0).status_code == 400
    assert api.get("/metrics", origin="internal").json()["total_runs"] == 0


def test_failure_categories_come_from_the_latest_rca(api, window, personas):
    from agents.models import Run

    target = Run.objects.for_tenant(personas.tenant).get(run_id="run-001-sufficient")
    rca, _ = rca_services.rca_start(target=target, actor=personas.agent)
    drive(rca.run_id, personas.tenant)
    m = api.get("/metrics").json()
    assert m["failure_categories"] == [{"category": "tool_schema_mismatch", "count": 1}]
    assert m["total_runs"] == 3  # the RCA run itself is not counted


def test_metrics_page_charts_the_numbers(personas, client_for, window):
    html = client_for(personas.agent).get(reverse("agents:run-metrics")).content.decode()
    assert 'id="m-total">3<' in html and "33.33%" in html
    p95 = int(html.split('id="m-p95">')[1].split(" ms")[0])
    assert abs(p95 - 20000) <= 100
    assert "order_lookup_api" in html and html.count('class="col col-runs"') == 25
    assert 'class="col col-bad"' in html  # failed runs stacked in red
    assert "$0.0490" in html


def test_metrics_are_per_tenant(outsider_api, personas, client_for, window):
    theirs = outsider_api.get("/metrics").json()
    assert theirs["total_runs"] == 1
    assert client_for(personas.requester).get(reverse("agents:run-metrics")).status_code == 403


def test_the_latency_rollup_follows_resends(api, personas):
    """After any sequence of sends the rollup holds exactly the stored steps' buckets."""
    from collections import Counter

    from agents.models import Run, Step, StepLatencyRollup
    from agents.telemetry import rollup

    def expected():
        counts = Counter()
        for run in Run.objects.for_tenant(personas.tenant).filter(origin="ingested"):
            for ms in (
                Step.objects.for_tenant(personas.tenant)
                .filter(run=run)
                .values_list("latency_ms", flat=True)
            ):
                key = (rollup.hour_of(run.created_at), run.agent_name, run.agent_version)
                counts[(*key, rollup.bucket(ms))] += 1
        return counts

    def stored():
        rows = StepLatencyRollup.objects.for_tenant(personas.tenant).values_list(
            "hour", "agent_name", "agent_version", "bucket", "steps"
        )
        return Counter({(h, a, v, b): n for h, a, v, b, n in rows})

    api.post(shifted(1, seed_run()))
    assert stored() == expected() and sum(stored().values()) == 4
    moved = shifted(5, seed_run(agent_version="2.1.1"))  # another hour and version
    moved["steps"][0]["latency_ms"] = 77
    api.post(moved)
    assert stored() == expected() and sum(stored().values()) == 4
    api.post({"runs": [shifted(2, seed_run(run_id=f"b-{i}")) for i in range(3)]}, "/batch")
    assert stored() == expected() and sum(stored().values()) == 16


def test_our_own_runs_count_live(api, personas):
    from django.utils import timezone

    from agents.models import Run, Step

    run = Run.objects.create(tenant=personas.tenant, agent_name="service_desk", status="succeeded")
    for seq, ms in enumerate([100, 200, 300, 4000], start=1):
        Step.objects.create(
            tenant=personas.tenant,
            run=run,
            seq=seq,
            step_id=f"s{seq}",
            name="x",
            latency_ms=ms,
            started_at=timezone.now(),
        )
    m = api.get("/metrics", origin="internal").json()
    assert m["total_runs"] == 1 and m["success_rate"] == 100.0
    assert m["p95_step_latency_ms"] == pytest.approx(4000, rel=0.005)
    assert api.get("/metrics", origin="ingested").json()["p95_step_latency_ms"] is None
