"""The sandbox connector's state: seeding, the console page, the admin, tenant scoping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from agentops.tenancy import UnscopedQueryError
from agents.connectors.sandbox.models import (
    LATEST_VPN_PROFILE_VERSION,
    Device,
    DirectoryUser,
    LogLine,
    MetricPoint,
    Operation,
)
from agents.connectors.sandbox.seed import seed_sandbox

PEOPLE = [
    ("robin@acme.example", "Robin Requester"),
    ("rosa@acme.example", "Rosa Requester"),
    ("alex@acme.example", "Alex Agent"),
    ("ada@acme.example", "Ada Admin"),
]
MODELS = (DirectoryUser, Device, LogLine, MetricPoint, Operation)


def counts(tenant):
    return {model.__name__: model.objects.for_tenant(tenant).count() for model in MODELS}


# ---------------------------------------------------------------- seeding


def test_seed_creates_a_realistic_sandbox(personas):
    report = seed_sandbox(personas.tenant, PEOPLE)
    tenant = personas.tenant
    users = DirectoryUser.objects.for_tenant(tenant)
    devices = Device.objects.for_tenant(tenant)
    assert report.users == users.count() >= len(PEOPLE) + 10
    assert report.devices == devices.count() > report.users
    assert users.filter(locked=True).exists() and users.filter(mfa_enabled=False).exists()
    assert devices.filter(vpn_status="timeout", vpn_profile_version__lt=7).exists()
    assert devices.filter(adapter_state="flapping").exists()
    # Every user has one or two devices, all with distinct asset tags like LT-0001.
    for user in users:
        assert 1 <= devices.filter(owner_email=user.email).count() <= 2
    tags = list(devices.values_list("asset_tag", flat=True))
    assert len(set(tags)) == len(tags)
    assert all(tag[:3] in {"LT-", "DT-"} and tag[3:].isdigit() for tag in tags)
    # Colleagues share the people's domain.
    assert all(u.email.endswith("@acme.example") for u in users)


def test_seed_gives_the_given_people_known_problems(personas):
    seed_sandbox(personas.tenant, PEOPLE)
    tenant = personas.tenant
    robin = DirectoryUser.objects.for_tenant(tenant).get(email="robin@acme.example")
    assert robin.locked and robin.failed_login_attempts == 5 and robin.mfa_enabled
    (laptop,) = Device.objects.for_tenant(tenant).filter(owner_email=robin.email)
    assert (
        laptop.vpn_status == "timeout" and laptop.vpn_profile_version < LATEST_VPN_PROFILE_VERSION
    )

    rosa = DirectoryUser.objects.for_tenant(tenant).get(email="rosa@acme.example")
    assert not rosa.locked and not rosa.mfa_enabled
    (laptop,) = Device.objects.for_tenant(tenant).filter(owner_email=rosa.email)
    assert laptop.adapter_state == "flapping"

    alex_devices = Device.objects.for_tenant(tenant).filter(owner_email="alex@acme.example")
    assert alex_devices.count() == 2

    ada = DirectoryUser.objects.for_tenant(tenant).get(email="ada@acme.example")
    (laptop,) = Device.objects.for_tenant(tenant).filter(owner_email=ada.email)
    assert not ada.locked and laptop.vpn_status != "timeout" and laptop.adapter_state == "up"


def test_seed_is_idempotent_and_keeps_changes(personas):
    seed_sandbox(personas.tenant, PEOPLE)
    before = counts(personas.tenant)
    DirectoryUser.objects.for_tenant(personas.tenant).filter(email="robin@acme.example").update(
        locked=False
    )

    report = seed_sandbox(personas.tenant, PEOPLE)

    assert (report.users, report.devices, report.log_lines, report.metric_points) == (0, 0, 0, 0)
    assert counts(personas.tenant) == before
    assert (
        not DirectoryUser.objects.for_tenant(personas.tenant).get(email="robin@acme.example").locked
    )


def test_seed_is_reproducible_and_grows_with_new_people(personas):
    seed_sandbox(personas.tenant, PEOPLE[:2])
    seed_sandbox(personas.other_tenant, PEOPLE[:2])  # same e-mails in another tenant
    report = seed_sandbox(personas.tenant, [*PEOPLE[:2], ("newbie@acme.example", "New Bee")])
    assert report.users == 1 and report.devices == 2  # scenario 2: laptop + desktop

    def snapshot(tenant):
        return sorted(
            DirectoryUser.objects.for_tenant(tenant)
            .exclude(email="newbie@acme.example")
            .values_list("email", "locked", "mfa_enabled", "department")
        )

    assert snapshot(personas.tenant) == snapshot(personas.other_tenant)


def test_seed_touches_only_its_tenant(personas):
    seed_sandbox(personas.tenant, PEOPLE)
    assert set(counts(personas.other_tenant).values()) == {0}


def test_seeded_monitoring_has_an_error_spike_on_payments(personas):
    seed_sandbox(personas.tenant, PEOPLE)
    logs = LogLine.objects.for_tenant(personas.tenant)
    recent = timezone.now() - timedelta(minutes=30)
    assert set(logs.values_list("service", flat=True)) == {"checkout", "payments", "auth"}
    payments_errors = logs.filter(service="payments", level="error", created_at__gte=recent).count()
    checkout_errors = logs.filter(service="checkout", level="error", created_at__gte=recent).count()
    assert payments_errors > 5 and payments_errors > 5 * checkout_errors
    assert logs.earliest("created_at").created_at < timezone.now() - timedelta(hours=5)
    metrics = MetricPoint.objects.for_tenant(personas.tenant)
    assert set(metrics.values_list("metric", flat=True)) == {
        "error_rate",
        "latency_p95_ms",
        "requests_per_min",
    }
    spike = metrics.filter(service="payments", metric="error_rate", at__gte=recent)
    assert min(spike.values_list("value", flat=True)) > 0.2


def test_sandbox_tables_refuse_unscoped_queries(personas):
    for model in MODELS:
        with pytest.raises(UnscopedQueryError):
            list(model.objects.all())


# ---------------------------------------------------------------- console page


URL = "/sandbox/"


@pytest.fixture
def both_seeded(personas):
    seed_sandbox(personas.tenant, PEOPLE)
    DirectoryUser.objects.create(
        tenant=personas.other_tenant, email="secret@globex.example", display_name="Globex Secret"
    )
    Device.objects.create(
        tenant=personas.other_tenant,
        asset_tag="LT-7777",
        owner_email="secret@globex.example",
        hostname="globex-lt-7777",
    )
    return personas


def test_url_is_named():
    assert reverse("sandbox:index") == URL


@pytest.mark.parametrize("role", ["agent", "admin", "reviewer", "auditor"])
def test_staff_roles_see_the_page(both_seeded, client_for, role):
    response = client_for(getattr(both_seeded, role)).get(URL, {"tab": "directory"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Robin Requester" in body and "robin@acme.example" in body
    assert 'class="card"' in body and 'class="table' in body


def test_requester_is_forbidden(both_seeded, client_for):
    assert client_for(both_seeded.requester).get(URL).status_code == 403


def test_anonymous_goes_to_login_and_non_member_is_forbidden(both_seeded, client):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    loner = get_user_model().objects.create_user("loner", password="x")
    client.force_login(loner)
    assert client.get(URL).status_code == 403


def test_shows_only_the_current_tenants_data(both_seeded, client_for):
    for tab in ("directory", "devices"):
        body = client_for(both_seeded.agent).get(URL, {"tab": tab}).content.decode()
        assert "secret@globex.example" not in body and "LT-7777" not in body
        outsider_body = client_for(both_seeded.outsider).get(URL, {"tab": tab}).content.decode()
        assert "secret@globex.example" in outsider_body
        assert "robin@acme.example" not in outsider_body
    assert "LT-7777" in outsider_body


def test_search_filters_users_and_devices(both_seeded, client_for):
    client = client_for(both_seeded.agent)
    robin_tag = (
        Device.objects.for_tenant(both_seeded.tenant)
        .get(owner_email="robin@acme.example")
        .asset_tag
    )
    body = client.get(URL, {"q": "robin", "tab": "directory"}).content.decode()
    assert "robin@acme.example" in body and "rosa@acme.example" not in body
    body = client.get(URL, {"q": "robin", "tab": "devices"}).content.decode()
    assert robin_tag in body and "rosa@acme.example" not in body
    # The directory finds no account by an asset tag, and points to the tab that has it.
    body = client.get(URL, {"q": robin_tag, "tab": "directory"}).content.decode()
    assert "Nothing here matches" in body and f"?tab=devices&amp;q={robin_tag}" in body
    # An htmx search answers with the results partial only.
    partial = client.get(URL, {"q": "robin"}, headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<section id="results"') and "<html" not in partial


def test_names_are_escaped(both_seeded, client_for):
    DirectoryUser.objects.create(
        tenant=both_seeded.tenant,
        email="evil@acme.example",
        display_name='<script>alert("x")</script>',
        department="<b>Ops</b>",
    )
    body = client_for(both_seeded.agent).get(URL, {"tab": "directory"}).content.decode()
    assert '<script>alert("x")</script>' not in body and "<b>Ops</b>" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body


def test_recent_operations_are_listed(both_seeded, client_for):
    Operation.objects.create(
        tenant=both_seeded.tenant,
        idempotency_key="k1",
        connector="directory",
        operation="unlock_account",
        args={"user_email": "robin@acme.example"},
        result={"summary": "Account robin@acme.example unlocked.", "data": {}},
    )
    # Operations are the first tab; search finds them by what was done.
    client = client_for(both_seeded.agent)
    body = client.get(URL).content.decode()
    assert "Account robin@acme.example unlocked." in body
    assert (
        "Account robin@acme.example unlocked." in client.get(URL, {"q": "unlock"}).content.decode()
    )
    assert "Account robin" not in client.get(URL, {"q": "mfa"}).content.decode()


def test_each_tab_is_paginated(both_seeded, client_for):
    for n in range(30):
        Operation.objects.create(
            tenant=both_seeded.tenant,
            idempotency_key=f"p{n}",
            connector="endpoint",
            operation="run_diagnostic",
            result={"summary": f"Diagnostic number {n:02d} done."},
        )
    client = client_for(both_seeded.agent)
    first = client.get(URL).content.decode()
    assert "Diagnostic number 29 done." in first and "Diagnostic number 04 done." not in first
    assert "Page 1 of 2" in first
    second = client.get(URL, {"page": "2"}).content.decode()
    assert "Diagnostic number 04 done." in second and "Diagnostic number 29" not in second
    # Nonsense tab or page falls back to something sensible, never a 500.
    assert client.get(URL, {"tab": "<x>", "page": "abc"}).status_code == 200


def test_page_query_count_does_not_grow_with_rows(
    both_seeded, client_for, django_assert_max_num_queries
):
    client = client_for(both_seeded.agent)
    client.get(URL)  # warm up (session, content types)
    with django_assert_max_num_queries(12):
        assert client.get(URL).status_code == 200


# ---------------------------------------------------------------- admin


def test_admin_pages_load_and_operations_are_read_only(both_seeded, client):
    from django.contrib import admin

    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    Operation.objects.create(
        tenant=both_seeded.tenant, idempotency_key="k", connector="endpoint", operation="x"
    )
    for model in MODELS:
        assert model in admin.site._registry, model
        info = (model._meta.app_label, model._meta.model_name)
        assert (
            client.get(reverse("admin:{}_{}_changelist".format(*info)), {"q": "a"}).status_code
            == 200
        )
        obj = model.objects.unscoped("test").first()
        page = client.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
        assert page.status_code == 200, model
    assert client.get(reverse("admin:sandbox_operation_add")).status_code == 403
