"""The Django admin: every model is registered and its pages work; writes go through services."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from agentops.models import AuditEvent, Membership, Role


@pytest.fixture
def superuser_client(personas, client):
    superuser = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(superuser)
    return client


def test_every_project_model_is_registered():
    from django.apps import apps

    ours = [
        m
        for app in ("agentops", "incidents", "agents", "approvals", "sandbox")
        for m in apps.get_app_config(app).get_models()
    ]
    missing = [
        m.__name__
        for m in ours
        if m not in admin.site._registry and not m.__name__.endswith("ObjectPermission")
    ]
    assert missing == []


def test_changelists_and_change_pages_load(superuser_client, personas, make_ticket):
    ticket = make_ticket(personas.tenant, personas.requester)
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in {"agentops", "incidents", "agents", "approvals", "sandbox"}:
            continue
        info = (model._meta.app_label, model._meta.model_name)
        changelist = superuser_client.get(
            reverse("admin:{}_{}_changelist".format(*info)), {"q": "vpn"}
        )
        assert changelist.status_code == 200, model
        obj = (
            model_admin.get_queryset(None).first() if hasattr(model_admin, "get_queryset") else None
        )
        if obj is not None:
            change = superuser_client.get(
                reverse("admin:{}_{}_change".format(*info), args=[obj.pk])
            )
            assert change.status_code == 200, model
    perms = superuser_client.get(reverse("admin:incidents_ticket_permissions", args=[ticket.pk]))
    assert perms.status_code == 200  # guardian's object-permission admin


def test_audit_admin_is_read_only(superuser_client, personas, make_ticket):
    make_ticket(personas.tenant, personas.requester)
    event = AuditEvent.objects.for_tenant(personas.tenant).first()
    response = superuser_client.post(
        reverse("admin:agentops_auditevent_delete", args=[event.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert AuditEvent.objects.for_tenant(personas.tenant).filter(pk=event.pk).exists()


def test_ticket_admin_change_goes_through_the_service(superuser_client, personas, make_ticket):
    ticket = make_ticket(personas.tenant, personas.requester, priority="low")
    change_url = reverse("admin:incidents_ticket_change", args=[ticket.pk])
    form = superuser_client.get(change_url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update(
        {
            "title": "Renamed in admin",
            "priority": "high",
            "affected_services": "",
            "description": ticket.description,
            "comments-TOTAL_FORMS": "0",
            "comments-INITIAL_FORMS": "0",
        }
    )
    response = superuser_client.post(change_url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    ticket.refresh_from_db()
    assert ticket.title == "Renamed in admin" and ticket.priority == "high"
    event = AuditEvent.objects.for_tenant(personas.tenant).get(action="ticket.updated")
    assert event.actor_label == "root" and event.changes["priority"] == {
        "from": "low",
        "to": "high",
    }


def test_membership_admin_syncs_role_groups_and_audits(superuser_client, personas):
    newcomer = get_user_model().objects.create_user("newcomer", "n@acme.example", "pw")
    response = superuser_client.post(
        reverse("admin:agentops_membership_add"),
        {"user": newcomer.pk, "tenant": personas.tenant.pk, "role": Role.REVIEWER},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Membership.objects.get(user=newcomer).role == Role.REVIEWER
    assert list(newcomer.groups.values_list("name", flat=True)) == ["reviewer"]
    assert newcomer.has_perm("incidents.view_ticket")
    assert (
        AuditEvent.objects.for_tenant(personas.tenant)
        .filter(action="membership.created", target_id=str(newcomer.pk))
        .exists()
    )
