"""The RCA button and live panel on a run's page, and the verdict form."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import RcaFeedback, Run
from tests.agents.rca.test_rca_api import drive
from tests.agents.telemetry.payloads import seed_run

pytestmark = pytest.mark.django_db
RUN = "run-001-sufficient"


def test_button_starts_an_rca_and_the_panel_polls_until_done(personas, client_for, ingest):
    ingest(personas.tenant, seed_run())
    client = client_for(personas.agent)
    page = client.get(reverse("agents:run-detail", args=[RUN])).content.decode()
    assert 'id="rca-start"' in page and "No analysis yet." in page
    response = client.post(reverse("agents:rca-start", args=[RUN]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'hx-trigger="every 1s"' in html and 'value="5"' in html
    rca = Run.objects.for_tenant(personas.tenant).get(agent_name="rca")
    assert client.get(reverse("agents:rca-panel", args=[RUN])).status_code == 200
    drive(rca.run_id, personas.tenant)
    done = client.get(reverse("agents:rca-panel", args=[RUN]))
    assert done.status_code == 286
    html = done.content.decode()
    assert "every 1s" not in html and "tool_schema_mismatch" in html
    assert 'href="#ev_tool_call-001"' in html and "Save verdict" in html
    # The page itself now shows the report, and the RCA run has its own timeline page.
    page = client.get(reverse("agents:run-detail", args=[RUN])).content.decode()
    assert "Analyse again" in page and 'id="ev_tool_call-001"' in page
    own = client.get(reverse("agents:run-detail", args=[rca.run_id])).content.decode()
    assert "Collecting evidence" in own and f"/runs/{RUN}/#ev_tool_call-001" in own


def test_a_second_press_returns_the_same_analysis(personas, client_for, ingest):
    ingest(personas.tenant, seed_run())
    client = client_for(personas.agent)
    client.post(reverse("agents:rca-start", args=[RUN]))
    response = client.post(reverse("agents:rca-start", args=[RUN]))
    assert response.status_code == 302 and response["Location"].endswith("#rca")
    assert Run.objects.for_tenant(personas.tenant).filter(agent_name="rca").count() == 1


def test_verdict_is_kept(personas, client_for, ingest):
    ingest(personas.tenant, seed_run())
    client = client_for(personas.agent)
    client.post(reverse("agents:rca-start", args=[RUN]))
    rca = Run.objects.for_tenant(personas.tenant).get(agent_name="rca")
    drive(rca.run_id, personas.tenant)
    url = reverse("agents:rca-judge", args=[rca.run_id])
    client.post(url, {"verdict": "wrong"})  # no comment: refused with a message
    assert not RcaFeedback.objects.for_tenant(personas.tenant).exists()
    client.post(url, {"verdict": "right", "comment": "Matches the API changelog"})
    case = RcaFeedback.objects.for_tenant(personas.tenant).get()
    assert case.correct and case.author == personas.agent


def test_isolation_roles_and_csrf(personas, client_for, ingest):
    ingest(personas.tenant, seed_run())
    start = reverse("agents:rca-start", args=[RUN])
    assert client_for(personas.outsider).post(start).status_code == 404
    assert (
        client_for(personas.outsider).get(reverse("agents:rca-panel", args=[RUN])).status_code
        == 404
    )
    assert client_for(personas.auditor).post(start).status_code == 403
    assert client_for(personas.requester).post(start).status_code == 404
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(personas.agent)
    assert strict.post(start).status_code == 403
    assert not Run.objects.for_tenant(personas.tenant).filter(agent_name="rca").exists()
