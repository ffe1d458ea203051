"""Dashboards: the daily rollups compute the right figures from known data, the page, the CSV
and the API show the same numbers, every route is tenant- and role-isolated, bad filters are a
clear 4xx, the page reads rollups only (pinned queries), and the landing page follows the role."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from agentops.services import api_token_create
from agents.models import Run, Step
from approvals import handlers
from approvals import services as approval_services
from approvals.models import ApprovalRequest
from incidents import services
from incidents.analytics import rollups
from incidents.analytics.figures import figures
from incidents.analytics.models import DailyTicketStat
from incidents.analytics.tasks import refresh_rollups
from incidents.models import Queue, Status, Ticket

handlers.register("tests.analytics", lambda request: None)
DASH = "/dashboard/"


def _at(ticket, **times):
    Ticket.objects.for_tenant(ticket.tenant).filter(pk=ticket.pk).update(**times)


@pytest.fixture
def desk(personas, make_ticket):
    """Known activity today in acme (and some in globex that must never show)."""
    tenant = personas.tenant
    now = timezone.now()
    network = Queue.objects.create(tenant=tenant, name="Network", slug="network")
    made = []
    for n in range(4):
        made.append(make_ticket(tenant, personas.requester, title=f"VPN {n}"))
    a, b, c, _open = made
    Ticket.objects.for_tenant(tenant).filter(pk__in=[a.pk, b.pk]).update(queue=network)
    # a: the agent resolved it alone in 2 hours; b: a person resolved it in 4 hours, rated 4.
    _at(a, triage_decision="auto_resolve", created_at=now - dt.timedelta(hours=2))
    services.ticket_transition(ticket=a, actor=None, status=Status.RESOLVED, note="Reset.")
    _at(b, triage_decision="human", created_at=now - dt.timedelta(hours=4), assignee=personas.agent)
    services.ticket_transition(ticket=b, actor=personas.agent, status=Status.RESOLVED, note="Done")
    services.ticket_rate(
        ticket=Ticket.objects.for_tenant(tenant).get(pk=b.pk), actor=personas.requester, score=4
    )
    # c: escalated and past its SLA (due earlier today); d: open, on time.
    services.ticket_transition(ticket=c, actor=personas.agent, status=Status.ESCALATED)
    _at(c, sla_due=now - dt.timedelta(minutes=5), sla_breached=True)
    # Runs: two of the service-desk blueprint (one succeeded), with steps of known latency.
    for status, latency in (("succeeded", 120), ("failed", 3000)):
        run = Run.objects.create(
            tenant=tenant,
            agent_name="service_desk",
            status=status,
            tokens_prompt=100,
            tokens_completion=20,
            total_cost_usd=Decimal("0.01"),
        )
        for _ in range(10):
            Step.objects.create(
                tenant=tenant, run=run, seq=_ + 1, step_id=f"s{_}", name="x", latency_ms=latency
            )
    # Approvals: one decided within its SLA, one after it.
    for n, late in ((1, False), (2, True)):
        request = approval_services.request_approval(
            tenant=tenant,
            handler="tests.analytics",
            handler_ref=str(n),
            subject_type="test",
            subject_id=str(n),
            subject_repr=f"R{n}",
            action="grant_admin_access",
            arguments={"user_email": "x@acme.example"},
            priority="high",
            auto_assign=False,
        )
        approval_services.decide(request=request, actor=personas.reviewer, approve=True, comment="")
        if late:
            ApprovalRequest.objects.for_tenant(tenant).filter(pk=request.pk).update(
                sla_due=timezone.now() - dt.timedelta(hours=1)
            )
    make_ticket(personas.other_tenant, None, title="Globex secret outage")
    rollups.refresh_recent(tenant)
    rollups.refresh_recent(personas.other_tenant)
    return {"network": network, "tickets": made}


def test_rollups_compute_the_figures(personas, desk):
    kpis = figures(personas.tenant).kpis
    assert kpis["opened"] == 4 and kpis["resolved"] == 2
    assert kpis["mttr_hours"] == pytest.approx(3.0, abs=0.05)  # (2 h + 4 h) / 2
    assert kpis["auto_resolution_pct"] == 50.0  # a alone, of a and b
    assert kpis["escalation_pct"] == 50.0  # b (triaged to a person) and c (escalated), of 4
    assert kpis["sla_breached"] == 1
    assert kpis["approval_sla_pct"] == 50.0 and kpis["approvals_decided"] == 2
    assert kpis["csat_average"] == 4.0 and kpis["csat_ratings"] == 1
    assert kpis["backlog"] == 2  # c and d are open
    [agent] = figures(personas.tenant).tables["agents"]
    assert (
        agent["blueprint"] == "service_desk" and agent["runs"] == 2 and agent["success_pct"] == 50.0
    )
    assert agent["p95_step_ms"] == 5000 and agent["tokens"] == 240  # 3000 ms is in the ≤5000 bucket
    # One queue: only a and b are in Network.
    network = figures(personas.tenant, queue_ref=desk["network"].pk).kpis
    assert network["opened"] == 2 and network["resolved"] == 2 and network["backlog"] == 0
    # The other tenant's figures are its own.
    assert figures(personas.other_tenant).kpis["opened"] == 1


def test_backlog_walks_back_through_days(personas, make_ticket):
    tenant = personas.tenant
    now = timezone.now()
    old = make_ticket(tenant, personas.requester)
    _at(old, created_at=now - dt.timedelta(days=3))
    fresh = make_ticket(tenant, personas.requester)
    services.ticket_transition(ticket=fresh, actor=personas.agent, status=Status.CANCELLED)
    rollups.rebuild(tenant, since=rollups.today() - dt.timedelta(days=4))
    volume = {row["day"]: row for row in figures(tenant, period="7").tables["volume"]}
    day = lambda n: (rollups.today() - dt.timedelta(days=n)).isoformat()  # noqa: E731
    assert volume[day(4)]["backlog"] == 0 and volume[day(3)]["backlog"] == 1
    assert volume[day(0)]["backlog"] == 1 and volume[day(0)]["opened"] == 1
    # Safe to run twice: the same rows, not doubled.
    rows = DailyTicketStat.objects.for_tenant(tenant).count()
    rollups.refresh_recent(tenant)
    rollups.refresh_recent(tenant)
    assert DailyTicketStat.objects.for_tenant(tenant).count() == rows


def test_the_beat_task_keeps_today_current(personas, make_ticket):
    assert figures(personas.tenant).kpis["opened"] == 0
    make_ticket(personas.tenant, personas.requester)
    assert refresh_rollups() == 2  # both tenants
    assert figures(personas.tenant).kpis["opened"] == 1


def test_dashboard_page_csv_and_api_agree(personas, desk, client_for, client):
    page = client_for(personas.admin).get(DASH)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-kpi="mttr">3.0 h' in html and 'data-kpi="auto">50.0%' in html
    assert 'id="chart-data-volume" type="application/json"' in html
    assert "Globex secret" not in html
    csv_text = (
        client_for(personas.admin)
        .get(reverse("analytics:chart-csv", args=["sla"]))
        .content.decode()
    )
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert sum(int(r["breached"]) for r in rows) == 1 and len(rows) == 30
    _, raw = api_token_create(tenant=personas.tenant, user=personas.admin)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    summary = client.get("/api/v1/analytics/summary", **auth).json()
    assert summary["kpis"] == figures(personas.tenant).kpis
    sla = client.get("/api/v1/analytics/sla", {"period": "7"}, **auth).json()
    assert sla["columns"] == ["day", "due", "breached", "attainment_pct"] and len(sla["rows"]) == 7
    network = client.get("/api/v1/analytics/volume", {"queue": "network"}, **auth).json()
    assert sum(r["opened"] for r in network["rows"]) == 2


@pytest.mark.parametrize(
    ("params", "status"),
    [({"period": "12"}, 400), ({"queue": "nope"}, 400), ({"period": "x\x00"}, 400), ({}, 200)],
)
def test_bad_filters_are_a_clear_400(personas, client_for, client, params, status):
    assert client_for(personas.admin).get(DASH, params).status_code == status
    assert client_for(personas.admin).get("/dashboard/sla.csv", params).status_code == status
    _, raw = api_token_create(tenant=personas.tenant, user=personas.admin)
    answer = client.get("/api/v1/analytics/summary", params, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert answer.status_code == status


def test_isolation_by_tenant_and_role(personas, desk, client_for, client):
    # Another tenant's queue slug is unknown here (400), never its figures.
    globex_queue = Queue.objects.create(tenant=personas.other_tenant, name="Secret", slug="secret")
    assert client_for(personas.admin).get(DASH, {"queue": globex_queue.slug}).status_code == 400
    for user in (personas.requester,):
        assert client_for(user).get(DASH).status_code == 403
        assert client_for(user).get("/dashboard/sla.csv").status_code == 403
        assert client_for(user).get("/my-work/").status_code == 403
    _, raw = api_token_create(tenant=personas.tenant, user=personas.requester)
    denied = client.get("/api/v1/analytics/summary", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert denied.status_code == 403
    assert client.get("/api/v1/analytics/summary").status_code == 401
    assert client_for(personas.admin).get("/dashboard/nope.csv").status_code == 404
    _, raw = api_token_create(tenant=personas.tenant, user=personas.admin)
    assert (
        client.get("/api/v1/analytics/nope", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 404
    )
    # The outsider's dashboard is globex's only.
    html = client_for(personas.outsider).get(DASH).content.decode()
    assert 'data-kpi="auto">—' in html and "Network" not in html


def test_dashboard_reads_rollups_only(personas, desk, client_for, django_assert_max_num_queries):
    client = client_for(personas.admin)
    client.get(DASH)
    # session, user, memberships, tickets/agents/approvals rollups, queues, nav counts
    with django_assert_max_num_queries(10):
        assert client.get(DASH, {"period": "365"}).status_code == 200


@pytest.mark.parametrize(
    ("who", "landing"),
    [
        ("admin", "/dashboard/"),
        ("auditor", "/dashboard/"),
        ("agent", "/my-work/"),
        ("reviewer", "/my-work/"),
        ("requester", "/portal/"),
    ],
)
def test_landing_page_per_role(personas, client_for, who, landing):
    response = client_for(getattr(personas, who)).get("/")
    assert response.status_code == 302 and response["Location"] == landing


def test_my_work(personas, make_ticket, client_for):
    tenant = personas.tenant
    mine = make_ticket(tenant, personas.requester, title="Mine to fix")
    services.ticket_assign(ticket=mine, actor=personas.agent, assignee=personas.agent)
    risky = make_ticket(tenant, personas.requester, title="About to breach")
    _at(risky, sla_due=timezone.now() + dt.timedelta(minutes=30))
    escalated = make_ticket(tenant, personas.requester, title="Handed to me")
    services.ticket_assign(ticket=escalated, actor=personas.agent, assignee=personas.agent)
    services.ticket_transition(ticket=escalated, actor=personas.agent, status=Status.ESCALATED)
    make_ticket(personas.other_tenant, None, title="Globex ticket")
    html = client_for(personas.agent).get("/my-work/").content.decode()
    assigned = html[html.index('id="assigned"') : html.index('id="at-risk"')]
    at_risk = html[html.index('id="at-risk"') : html.index('id="waiting"')]
    waiting = html[html.index('id="waiting"') :]
    assert "Mine to fix" in assigned and "About to breach" not in assigned
    assert "About to breach" in at_risk and "due in 29" in at_risk
    assert "Handed to me" in waiting and "Globex" not in html


def test_long_periods_are_charted_by_week(personas, desk, client, client_for):
    year = figures(personas.tenant, period="365")
    assert year.bucket == "week" and 52 <= len(year.tables["volume"]) <= 54
    assert sum(r["opened"] for r in year.tables["volume"]) == 4
    assert year.tables["volume"][-1]["backlog"] == 2  # the level at the end, not a sum
    assert figures(personas.tenant, period="30").bucket == "day"
    _, raw = api_token_create(tenant=personas.tenant, user=personas.admin)
    answer = client.get(
        "/api/v1/analytics/volume", {"period": "90"}, HTTP_AUTHORIZATION=f"Bearer {raw}"
    ).json()
    assert answer["bucket"] == "week" and sum(r["opened"] for r in answer["rows"]) == 4
