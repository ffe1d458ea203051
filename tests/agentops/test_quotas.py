"""Tiers, limits, usage metering (exactly once) and enforcement where work enters."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse

from agentops import quotas
from agentops.models import AuditEvent, Notification, UsageRecord
from agentops.services import api_token_create, membership_set
from tests.conftest import make_user


def bearer(personas, user=None, tenant=None):
    _, raw = api_token_create(tenant=tenant or personas.tenant, user=user or personas.agent)
    return {"Authorization": f"Bearer {raw}"}


def records(tenant):
    return UsageRecord.objects.for_tenant(tenant)


def test_tier_limits_and_per_tenant_override(personas):
    acme, globex = personas.tenant, personas.other_tenant
    assert quotas.limits_for(acme).runs_per_month is None  # enterprise
    assert quotas.limits_for(globex).runs_per_month == quotas.TIER_LIMITS["starter"].runs_per_month
    quotas.limits_set(
        tenant=globex, actor=personas.admin, runs_per_month=7, blueprints=["service_desk"]
    )
    limits = quotas.limits_for(globex)
    assert (limits.runs_per_month, limits.blueprints) == (7, ("service_desk",))
    assert limits.users == quotas.TIER_LIMITS["starter"].users  # the rest follows the tier
    assert quotas.limits_for(acme).runs_per_month is None  # the other tenant is untouched
    assert AuditEvent.objects.for_tenant(globex).filter(action="tenant.limits_changed").exists()


def test_meter_counts_each_key_once(personas):
    t = personas.tenant
    assert quotas.meter(tenant=t, metric="tokens", quantity=120, key="step:1", model="m")
    assert not quotas.meter(tenant=t, metric="tokens", quantity=120, key="step:1", model="m")
    assert quotas.meter(tenant=t, metric="tokens", quantity=30, key="step:2", model="m")
    quotas.meter(tenant=personas.other_tenant, metric="tokens", quantity=999, key="step:1")
    assert quotas.used(t, "tokens") == 150


@pytest.mark.django_db(transaction=True)
def test_meter_is_race_safe_across_concurrent_workers(personas):
    barrier = threading.Barrier(10)
    results: list[bool] = []

    def worker():
        try:
            barrier.wait()
            results.append(
                quotas.meter(tenant=personas.tenant, metric="runs", quantity=1, key="run:42")
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 9 + [True]
    assert records(personas.tenant).count() == 1 and quotas.used(personas.tenant, "runs") == 1


def test_last_months_usage_does_not_count(personas):
    t = personas.tenant
    quotas.meter(
        tenant=t,
        metric="runs",
        quantity=5,
        key="old",
        at=quotas.period_start() - timedelta(seconds=1),
    )
    quotas.meter(tenant=t, metric="runs", quantity=2, key="new")
    assert quotas.used(t, "runs") == 2


def test_soft_warning_at_80_percent_goes_to_admins_once(personas):
    globex = personas.other_tenant
    admin = make_user("gadmin", globex, "admin")
    quotas.limits_set(tenant=globex, actor=None, runs_per_month=10)
    for i in range(7):
        quotas.meter(tenant=globex, metric="runs", quantity=1, key=f"run:{i}")
    assert not Notification.objects.for_tenant(globex).exists()
    for i in range(7, 10):
        quotas.meter(tenant=globex, metric="runs", quantity=1, key=f"run:{i}")
    (note,) = Notification.objects.for_tenant(globex).filter(verb="quota.warning")
    assert note.user == admin and "80 %" in note.title and "8 of 10" in note.body
    assert not Notification.objects.for_tenant(personas.tenant).exists()


def test_a_run_over_quota_is_refused_before_it_starts(client, personas, make_ticket):
    from agents.models import Run

    globex = personas.other_tenant
    quotas.limits_set(tenant=globex, actor=None, runs_per_month=2)
    for i in range(2):
        quotas.meter(tenant=globex, metric="runs", quantity=1, key=f"run:{i}")
    ticket = make_ticket(globex, requester_email="x@globex.example")
    response = client.post(
        f"/api/v1/tickets/{ticket.number}/resolve",
        headers=bearer(personas, personas.outsider, globex),
    )
    assert response.status_code == 403
    body = response.json()
    assert (body["error"], body["metric"], body["limit"], body["used"]) == (
        "quota_exceeded",
        "runs_per_month",
        2,
        2,
    )
    assert not Run.objects.for_tenant(globex).exists()
    # The console says so in a message, never a stack trace.
    client.force_login(personas.outsider)
    page = client.post(reverse("incidents:ticket-resolve", args=[ticket.number]), follow=True)
    assert page.status_code == 200 and "are used up" in page.content.decode()


def test_auto_start_over_quota_still_opens_the_ticket(personas):
    from incidents.services import ticket_create

    globex = personas.other_tenant
    quotas.limits_set(tenant=globex, actor=None, tokens_per_month=100)
    quotas.meter(tenant=globex, metric="tokens", quantity=100, key="step:1")
    ticket = ticket_create(
        tenant=globex, actor=personas.outsider, title="VPN down", start_agent=True
    )
    assert ticket.pk is not None
    event = AuditEvent.objects.for_tenant(globex).get(action="quota.run_refused")
    assert event.metadata["metric"] == "tokens_per_month"


def test_blueprint_not_in_the_tier_is_refused(personas):
    globex = personas.other_tenant
    quotas.limits_set(tenant=globex, actor=None, blueprints=["service_desk"])
    quotas.check_run(globex, blueprint="service_desk")
    with pytest.raises(quotas.QuotaExceeded) as exc:
        quotas.check_run(globex, blueprint="investigation")
    assert exc.value.metric == "blueprints" and not quotas.blueprint_enabled(
        globex, "investigation"
    )


def test_api_rate_limit_answers_429_with_retry_after(
    client, personas, monkeypatch, django_assert_num_queries
):
    globex = personas.other_tenant
    quotas.limits_set(tenant=globex, actor=None, api_requests_per_minute=3)
    monkeypatch.setattr(quotas, "_clock", lambda: 1_000_000 * 60 + 45.0)  # 15 s left in the minute
    headers = bearer(personas, personas.outsider, globex)
    codes = [client.get("/api/v1/tickets", headers=headers).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    # Refused once, the token is now answered at the gate: the same 429, no query at all.
    with django_assert_num_queries(0):
        limited = client.get("/api/v1/tickets", headers=headers)
    assert limited["Retry-After"] == "15" and limited.json()["error"] == "rate_limited"
    assert limited.json()["limit"] == 3
    # Another tenant's budget is its own; the next minute starts afresh.
    assert client.get("/api/v1/tickets", headers=bearer(personas)).status_code == 200
    monkeypatch.setattr(quotas, "_clock", lambda: 1_000_001 * 60 + 1.0)
    assert client.get("/api/v1/tickets", headers=headers).status_code == 200


def test_knowledge_and_user_limits(personas):
    from knowledge.services import ingest_text

    globex = personas.other_tenant
    quotas.limits_set(tenant=globex, actor=None, knowledge_documents=1, users=2)
    ingest_text(tenant=globex, kind="runbook", title="VPN", content="# VPN\nRestart the client.")
    with pytest.raises(quotas.QuotaExceeded) as exc:
        ingest_text(
            tenant=globex, kind="runbook", title="Printers", content="# Printers\nPower cycle."
        )
    assert exc.value.metric == "knowledge_documents" and exc.value.limit == 1
    make_user("second", globex, "agent")  # globex had one user (the outsider): now two
    with pytest.raises(quotas.QuotaExceeded):
        make_user("third", globex, "agent")
    membership_set(tenant=globex, user=personas.outsider, role="admin")  # a role change is fine


def test_usage_page_and_api(client, personas):
    t = personas.tenant
    quotas.meter(
        tenant=t, metric="runs", quantity=1, key="run:1", blueprint="service_desk", model="offline"
    )
    quotas.meter(
        tenant=t,
        metric="tokens",
        quantity=900,
        key="step:1",
        blueprint="service_desk",
        model="offline",
    )
    quotas.meter(
        tenant=personas.other_tenant,
        metric="tokens",
        quantity=5,
        key="step:1",
        model="secret-model",
    )
    client.force_login(personas.admin)
    page = client.get(reverse("usage:page"))
    html = page.content.decode()
    assert page.status_code == 200 and html.count('<svg class="bar-chart"') == 4
    assert "service_desk" in html and "offline" in html and "secret-model" not in html
    assert "style=" not in html.split("<main", 1)[-1]  # strict CSP: no inline styles
    client.force_login(personas.agent)
    assert client.get(reverse("usage:page")).status_code == 403
    data = client.get("/api/v1/tenant/usage", headers=bearer(personas, personas.admin)).json()
    assert data["usage"]["runs_per_month"] == 1 and data["usage"]["tokens_per_month"] == 900
    assert data["per_model"] == [{"name": "offline", "runs": 1, "tokens": 900}]
    assert sum(d["tokens"] for d in data["per_day"]) == 900
    assert client.get("/api/v1/tenant/usage", headers=bearer(personas)).status_code == 403


def test_limits_are_cached_but_an_override_or_a_tier_change_applies_at_once(
    personas, django_assert_num_queries
):
    globex = personas.other_tenant
    quotas.limits_for(globex)
    with django_assert_num_queries(0):  # every API request asks: Redis, not the database
        assert (
            quotas.limits_for(globex).runs_per_month == quotas.TIER_LIMITS["starter"].runs_per_month
        )
    quotas.limits_set(tenant=globex, actor=None, runs_per_month=3)
    assert quotas.limits_for(globex).runs_per_month == 3
    quotas.limits_set(tenant=globex, actor=None, runs_per_month=None)
    globex.tier = "free"
    assert quotas.limits_for(globex).users == quotas.TIER_LIMITS["free"].users


def test_the_admin_says_when_a_new_member_would_pass_the_user_limit(admin_client, personas):
    globex = personas.other_tenant
    quotas.limits_set(tenant=globex, actor=None, users=1)  # the outsider is its one user
    response = admin_client.post(
        reverse("admin:agentops_membership_add"),
        {"user": personas.requester2.pk, "tenant": globex.pk, "role": "requester"},
    )
    assert response.status_code == 200 and "limit of 1 users" in response.content.decode()
    assert not personas.requester2.memberships.filter(tenant=globex).exists()
