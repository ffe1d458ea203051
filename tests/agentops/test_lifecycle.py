"""Tenant lifecycle for platform admins: create, suspend, change tier, export every table as
JSON lines, and delete for good — then look in every table for anything left."""

from __future__ import annotations

import json
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse

from agentops import audit, lifecycle, quotas
from agentops.models import AuditEvent, Tenant
from agentops.services import api_token_create
from tests.conftest import make_user, owner_rights


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def rich(personas, make_ticket, django_capture_on_commit_callbacks):
    """Data of every kind in a tenant: tickets, comments, object permissions, a finished agent
    run (steps, tool calls, sandbox state), knowledge with embeddings, webhooks, usage, audit."""

    def fill(tenant, staff, requester):
        from agents import engine
        from incidents import services
        from incidents.intake.models import WebhookEndpoint
        from incidents.intake.signatures import sign_generic
        from incidents.intake.webhooks import receive
        from knowledge.services import ingest_text

        with django_capture_on_commit_callbacks(execute=True):
            ticket = make_ticket(tenant, requester, title="I'm locked out of my account")
            services.ticket_comment(ticket=ticket, actor=staff, body="Looking at it")
            services.grant_ticket_access(ticket=ticket, actor=staff, user=staff, level="work")
            run = services.ticket_start_agent(ticket=ticket, actor=staff)
            for _ in range(30):
                if engine.advance(run.pk) not in ("advanced", "model-retry"):
                    break
            ingest_text(
                tenant=tenant, kind="runbook", title="VPN", content="# VPN\n\nRestart the client."
            )
            endpoint = WebhookEndpoint.objects.create(
                tenant=tenant, provider="generic", name="hook", secret="0123456789abcdef0123"
            )
            body = json.dumps(
                {
                    "type": "ticket.created",
                    "data": {
                        "id": "E1",
                        "title": "From a hook",
                        "requester_email": requester.email,
                    },
                }
            ).encode()
            receive(provider="generic", endpoint_id=str(endpoint.public_id), body=body,
                    headers=sign_generic("0123456789abcdef0123", body, msg_id="m1", timestamp=int(time.time())))  # fmt: skip
            quotas.meter(tenant=tenant, metric="runs", quantity=1, key=f"run:{run.pk}")
            api_token_create(tenant=tenant, user=staff)
        return ticket

    fill(personas.tenant, personas.agent, personas.requester)
    fill(
        personas.other_tenant,
        personas.outsider,
        make_user("gina", personas.other_tenant, "requester"),
    )
    return personas


def tenant_id_tables() -> list[str]:
    """Every table of the database with a tenant_id column (not only the ones Django knows)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE column_name = 'tenant_id' AND table_schema = current_schema()"
        )
        return sorted(r[0] for r in cursor.fetchall())


def rows_of(table: str, tenant_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}" WHERE tenant_id = %s', [tenant_id])  # noqa: S608
        return cursor.fetchone()[0]


def test_pages_are_for_platform_admins_only(client, personas, root):
    for user in (personas.admin, personas.agent):
        client.force_login(user)
        assert client.get(reverse("platform:tenants")).status_code == 404
        assert (
            client.post(
                reverse("platform:tenant-active", args=[personas.tenant.pk]), {"active": "0"}
            ).status_code
            == 404
        )
        assert (
            client.get(reverse("platform:tenant-export", args=[personas.tenant.pk])).status_code
            == 404
        )
    assert Tenant.objects.get(pk=personas.tenant.pk).is_active
    client.force_login(root)
    assert client.get(reverse("platform:tenants")).status_code == 200
    assert client.get(reverse("platform:tenant-export", args=[999999])).status_code == 404


def test_create_suspend_activate_and_change_tier(client, personas, root):
    client.force_login(root)
    response = client.post(
        reverse("platform:tenant-create"),
        {"name": "Initech", "slug": "initech", "tier": "professional"},
    )
    assert response.status_code == 302
    initech = Tenant.objects.get(slug="initech")
    assert initech.tier == "professional" and initech.is_active
    clash = client.post(
        reverse("platform:tenant-create"), {"name": "Again", "slug": "initech", "tier": "free"}
    )
    assert clash.status_code == 400 and "already exists" in clash.content.decode()

    _, raw = api_token_create(tenant=personas.tenant, user=personas.agent)
    auth = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/tickets", headers=auth).status_code == 200
    client.post(reverse("platform:tenant-active", args=[personas.tenant.pk]), {"active": "0"})
    assert not Tenant.objects.get(pk=personas.tenant.pk).is_active
    assert client.get("/api/v1/tickets", headers=auth).status_code == 401  # tokens stop
    client.post(reverse("platform:tenant-active", args=[personas.tenant.pk]), {"active": "1"})
    assert client.get("/api/v1/tickets", headers=auth).status_code == 200

    client.post(reverse("platform:tenant-tier", args=[personas.other_tenant.pk]), {"tier": "free"})
    globex = Tenant.objects.get(pk=personas.other_tenant.pk)
    assert (
        globex.tier == "free"
        and quotas.limits_for(globex).users == quotas.TIER_LIMITS["free"].users
    )
    assert (
        client.post(reverse("platform:tenant-tier", args=[globex.pk]), {"tier": "gold"}).status_code
        == 302
    )
    assert Tenant.objects.get(pk=globex.pk).tier == "free"
    actions = set(AuditEvent.objects.for_tenant(personas.tenant).values_list("action", flat=True))
    assert {"tenant.suspended", "tenant.activated"} <= actions


def test_export_has_every_table_of_the_tenant_and_nothing_of_another(client, rich, root):
    acme = rich.tenant
    client.force_login(root)
    response = client.get(reverse("platform:tenant-export", args=[acme.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith(
        "application/x-ndjson"
    )
    lines = [
        json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()
    ]
    assert lines[0]["type"] == "tenant" and lines[0]["data"]["slug"] == "acme"
    rows = [line for line in lines if line["type"] == "row"]
    tables = {line["table"] for line in rows}
    nonempty = {t for t in tenant_id_tables() if rows_of(t, acme.pk)}
    assert nonempty <= tables  # every table holding acme rows is in the export
    assert {"incidents_ticket", "agents_run", "knowledge_chunk", "incidents_webhookdelivery",
            "agentops_auditevent", "incidents_ticketuserobjectpermission"} <= tables  # fmt: skip
    for line in rows:
        if "tenant_id" in line["data"]:
            assert line["data"]["tenant_id"] == acme.pk, line["table"]
    chunk = next(line for line in rows if line["table"] == "knowledge_chunk")
    assert isinstance(chunk["data"]["embedding"], list) and len(chunk["data"]["embedding"]) > 10
    users = {line["data"]["username"] for line in lines if line["type"] == "user"}
    assert "robin" in users and "gus" not in users
    assert not any("password" in line["data"] for line in lines if line["type"] == "user")


def test_delete_for_good_leaves_nothing(client, rich, root):
    acme, globex = rich.tenant, rich.other_tenant
    before_other = {t: rows_of(t, globex.pk) for t in tenant_id_tables()}
    assert rows_of("knowledge_chunk", acme.pk) and rows_of("agents_run", acme.pk)
    client.force_login(root)
    wrong = client.post(reverse("platform:tenant-delete", args=[acme.pk]), {"confirm_slug": "acm"})
    assert wrong.status_code == 302 and Tenant.objects.filter(pk=acme.pk).exists()

    client.post(reverse("platform:tenant-delete", args=[acme.pk]), {"confirm_slug": "acme"})
    assert not Tenant.objects.filter(pk=acme.pk).exists()
    left = {t: rows_of(t, acme.pk) for t in tenant_id_tables()}
    assert {t: n for t, n in left.items() if n} == {}
    for model, lookup in lifecycle.tenant_tables():  # rows without a tenant column too
        if lookup != "tenant":
            assert not model._base_manager.filter(
                **{lookup.replace("__tenant", "__tenant_id"): acme.pk}
            ).exists()
    # Its own people are gone; the other tenant, its people and its audit chain are intact.
    names = set(get_user_model().objects.values_list("username", flat=True))
    assert not names & {"ada", "alex", "robin", "audra"} and {"gus", "gina", "root"} <= names
    assert {t: rows_of(t, globex.pk) for t in tenant_id_tables()} == before_other
    assert audit.verify_chain(globex).ok
    # The audit table is append-only again at once (even to the owner).
    with pytest.raises(Exception, match="append-only"), owner_rights():
        AuditEvent.objects.for_tenant(globex).filter(
            pk=AuditEvent.objects.for_tenant(globex).first().pk
        ).delete()
