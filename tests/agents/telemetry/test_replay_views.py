"""Ingested runs in the console: listed beside ours, replayed with evidence anchors and a waterfall."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.models import Run
from tests.agents.telemetry.payloads import seed_run

pytestmark = pytest.mark.django_db


def test_ingested_runs_are_listed_beside_ours_and_filter_by_origin_and_agent(
    personas, client_for, ingest
):
    ingest(personas.tenant, seed_run())
    Run.objects.create(tenant=personas.tenant, agent_name="service_desk", status="succeeded")
    client = client_for(personas.agent)
    html = client.get(reverse("agents:run-list")).content.decode()
    assert "run-001-sufficient" in html and "service_desk" in html
    assert '<option value="customer-support-agent"' in html
    only = client.get(reverse("agents:run-list"), {"origin": "ingested"}).content.decode()
    assert "run-001-sufficient" in only and "<td>service_desk</td>" not in only
    assert "<td>service_desk</td>" in html
    by_agent = client.get(reverse("agents:run-list"), {"agent": "service_desk"}).content.decode()
    assert "run-001-sufficient" not in by_agent
    # Tokens always; the cost only when there is one (offline runs cost nothing).
    assert "1250 → 380" in html and "$0.0245" in html and "$0.0000" not in html


def test_run_page_replays_with_evidence_anchors_and_waterfall(personas, client_for, ingest):
    ingest(personas.tenant, seed_run())
    html = (
        client_for(personas.agent)
        .get(reverse("agents:run-detail", args=["run-001-sufficient"]))
        .content.decode()
    )
    for ev in (
        "ev_step_step-002",
        "ev_tool_call-001",
        "ev_guard_guard-001",
        "ev_run_run-001-sufficient",
    ):
        assert f'id="{ev}"' in html and f'href="#{ev}"' in html
    assert "order_number=12345" in html and "ValidationError: Missing required field" in html
    assert "schema_validation" in html and "HTTP 400" in html
    assert html.count('class="wf-row wf-step"') == 4 and html.count('class="wf-row wf-tool"') == 3
    assert 'x="0.0"' in html and "45000 ms in all" in html


def test_untrusted_text_is_escaped(personas, client_for, ingest):
    payload = seed_run()
    payload["tool_calls"][0]["error_message"] = "<script>alert(1)</script>"
    payload["steps"][0]["name"] = "<img src=x onerror=alert(1)>"
    ingest(personas.tenant, payload)
    html = (
        client_for(personas.agent)
        .get(reverse("agents:run-detail", args=["run-001-sufficient"]))
        .content.decode()
    )
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html


def test_other_tenant_and_requesters_cannot_see_ingested_runs(personas, client_for, ingest):
    ingest(personas.tenant, seed_run())
    url = reverse("agents:run-detail", args=["run-001-sufficient"])
    assert client_for(personas.outsider).get(url).status_code == 404
    assert client_for(personas.requester).get(url).status_code == 404
    assert (
        "run-001-sufficient"
        not in client_for(personas.outsider).get(reverse("agents:run-list")).content.decode()
    )
