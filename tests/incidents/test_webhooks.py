"""Inbound webhooks: each provider's real signature scheme, dedupe, redaction, mapping, replay."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agentops.models import AuditEvent
from incidents.intake import signatures
from incidents.intake.models import WebhookDelivery, WebhookEndpoint, WebhookLink
from incidents.models import Comment, Ticket

SECRET = "s3cret-for-webhooks-0123456789"


@pytest.fixture
def endpoint(personas):
    def make(provider="generic", tenant=None, secret=SECRET, **extra):
        return WebhookEndpoint.objects.create(
            tenant=tenant or personas.tenant,
            provider=provider,
            name=provider,
            secret=secret,
            **extra,
        )

    return make


def url(ep) -> str:
    return reverse("api:receive_webhook", args=[ep.provider, ep.public_id])


def post(client, ep, payload, headers, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    return client.post(url(ep), data=body, content_type="application/json", headers=headers)


def generic(client, ep, payload, *, msg_id="msg_1", secret=SECRET, ts=None):
    body = json.dumps(payload).encode()
    headers = signatures.sign_generic(secret, body, msg_id=msg_id, timestamp=ts or int(time.time()))
    return post(client, ep, payload, headers, body)


def tickets(tenant):
    return Ticket.objects.for_tenant(tenant)


def deliveries(tenant):
    return WebhookDelivery.objects.for_tenant(tenant)


CREATED = {
    "type": "ticket.created",
    "data": {
        "id": "EXT-1",
        "title": "Printer on floor 3 jams",
        "description": "Every second page.",
        "requester_email": "robin@acme.example",
        "priority": "high",
    },
}


def test_generic_create_comment_and_status(client, personas, endpoint):
    ep = endpoint()
    response = generic(client, ep, CREATED, msg_id="m1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["outcome"] == "ticket_created" and body["duplicate"] is False
    ticket = tickets(personas.tenant).get(number=body["ticket"])
    assert (ticket.source, ticket.title, ticket.priority) == (
        "webhook",
        CREATED["data"]["title"],
        "high",
    )
    assert ticket.requester == personas.requester  # the address of a member links the account
    assert (
        AuditEvent.objects.for_tenant(personas.tenant)
        .filter(action="ticket.created", target_id=ticket.number, metadata__webhook="generic")
        .exists()
    )

    comment = {
        "type": "comment.created",
        "data": {"ticket_id": "EXT-1", "body": "Still jams", "author": "Jo"},
    }
    assert generic(client, ep, comment, msg_id="m2").json()["outcome"] == "commented"
    note = Comment.objects.for_tenant(personas.tenant).get(ticket=ticket)
    assert (note.body, note.author_label, note.author) == ("Still jams", "Jo (webhook)", None)

    status = {
        "type": "ticket.status_changed",
        "data": {"ticket_id": "EXT-1", "status": "resolved", "note": "Fixed the roller"},
    }
    assert generic(client, ep, status, msg_id="m3").json()["outcome"] == "transitioned"
    ticket.refresh_from_db()
    assert ticket.status == "resolved" and ticket.resolution_notes == "Fixed the roller"

    # A transition the ticket's lifecycle forbids is kept and acknowledged, with the reason.
    back = {"type": "ticket.status_changed", "data": {"ticket_id": "EXT-1", "status": "new"}}
    refused = generic(client, ep, back, msg_id="m4").json()
    assert refused["outcome"] == "rejected"
    assert "cannot become new" in deliveries(personas.tenant).get(delivery_id="m4").detail


def test_jira_issue_comment_and_status(client, personas, endpoint):
    ep = endpoint("jira")
    issue = {
        "webhookEvent": "jira:issue_created",
        "issue": {
            "key": "OPS-7",
            "fields": {
                "summary": "VPN drops every hour",
                "description": {
                    "type": "doc",
                    "content": [
                        {
                            "type": "paragraph",
                            "content": [{"type": "text", "text": "Since Monday."}],
                        }
                    ],
                },
                "reporter": {"emailAddress": "someone@acme.example"},
                "priority": {"name": "Highest"},
                "status": {"name": "To Do", "statusCategory": {"key": "new"}},
            },
        },
    }

    def send(payload, ident, secret=SECRET):
        body = json.dumps(payload).encode()
        headers = {**signatures.sign_jira(secret, body), "X-Atlassian-Webhook-Identifier": ident}
        return post(client, ep, payload, headers, body)

    created = send(issue, "j1").json()
    ticket = tickets(personas.tenant).get(number=created["ticket"])
    assert (ticket.title, ticket.description, ticket.priority) == (
        "VPN drops every hour",
        "Since Monday.",
        "critical",
    )
    comment = {
        "webhookEvent": "comment_created",
        "issue": {"key": "OPS-7"},
        "comment": {"body": "Any news?", "author": {"displayName": "Kim"}},
    }
    assert send(comment, "j2").json()["outcome"] == "commented"
    moved = {
        "webhookEvent": "jira:issue_updated",
        "issue": {
            "key": "OPS-7",
            "fields": {"status": {"statusCategory": {"key": "indeterminate"}}},
        },
        "changelog": {
            "items": [{"field": "status", "fromString": "To Do", "toString": "In Progress"}]
        },
    }
    assert send(moved, "j3").json()["outcome"] == "transitioned"
    ticket.refresh_from_db()
    assert ticket.status == "in_progress"
    assert send(moved, "j4", secret="wrong-secret-0123456789").status_code == 401


def test_zendesk_ticket_and_status(client, personas, endpoint):
    ep = endpoint("zendesk", default_requester_email="helpdesk@acme.example")

    def send(payload, ident, *, when=None):
        body = json.dumps(payload).encode()
        stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {
            **signatures.sign_zendesk(SECRET, body, timestamp=stamp),
            "X-Zendesk-Webhook-Invocation-Id": ident,
        }
        return post(client, ep, payload, headers, body)

    created = {
        "type": "zen:event-type:ticket.created",
        "id": "e1",
        "detail": {
            "id": "35436",
            "subject": "Laptop will not boot",
            "description": "Black screen",
            "priority": "URGENT",
        },
    }
    number = send(created, "z1").json()["ticket"]
    ticket = tickets(personas.tenant).get(number=number)
    assert (ticket.priority, ticket.requester_email) == ("critical", "helpdesk@acme.example")
    pending = {
        "type": "zen:event-type:ticket.status_changed",
        "id": "e2",
        "detail": {"id": "35436"},
        "event": {"current": "PENDING", "previous": "NEW"},
    }
    stale = send(pending, "z2", when=datetime.now(UTC) - timedelta(minutes=6))
    assert stale.status_code == 401 and "stale" in stale.json()["message"]
    assert send(pending, "z2").json()["outcome"] == "transitioned"
    ticket.refresh_from_db()
    assert ticket.status == "on_hold"


def test_slack_events_handshake_mention_and_thread_reply(client, personas, endpoint):
    ep = endpoint("slack", default_requester_email="desk@acme.example")

    def send(payload):
        body = json.dumps(payload).encode()
        return post(
            client,
            ep,
            payload,
            signatures.sign_slack(SECRET, body, timestamp=int(time.time())),
            body,
        )

    assert send({"type": "url_verification", "challenge": "abc123"}).json() == {
        "challenge": "abc123"
    }
    assert not deliveries(personas.tenant).exists()
    mention = {
        "type": "event_callback",
        "event_id": "Ev1",
        "event": {
            "type": "app_mention",
            "text": "<@U0BOT> Outlook crashes on start",
            "user": "U1",
            "ts": "100.1",
            "channel": "C1",
        },
    }
    created = send(mention).json()
    assert created["outcome"] == "ticket_created", created
    number = created["ticket"]
    ticket = tickets(personas.tenant).get(number=number)
    assert ticket.title == "<@U0BOT> Outlook crashes on start"
    assert ticket.requester_email == "desk@acme.example"  # U1 is linked to nobody
    from approvals.models import SlackUserLink

    SlackUserLink.objects.create(
        tenant=personas.tenant, slack_user_id="U2", user=personas.requester
    )
    linked = send(
        mention | {"event_id": "Ev3", "event": mention["event"] | {"user": "U2", "ts": "101.1"}}
    )
    assert (
        tickets(personas.tenant).get(number=linked.json()["ticket"]).requester == personas.requester
    )
    reply = {
        "type": "event_callback",
        "event_id": "Ev2",
        "event": {
            "type": "message",
            "text": "It says 0x80040",
            "user": "U1",
            "ts": "100.5",
            "thread_ts": "100.1",
            "channel": "C1",
        },
    }
    assert send(reply).json()["outcome"] == "commented"
    assert (
        Comment.objects.for_tenant(personas.tenant).get(ticket__number=number).body
        == "It says 0x80040"
    )
    old = signatures.sign_slack(SECRET, b"{}", timestamp=int(time.time()) - 301)
    assert post(client, ep, {}, old, b"{}").status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"webhook-id": "x", "webhook-timestamp": "nope", "webhook-signature": "v1,AAAA"},
        {
            "webhook-id": "x",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,AAAA",
        },
    ],
)
def test_missing_or_wrong_signature_is_401_and_stores_nothing(client, personas, endpoint, headers):
    ep = endpoint()
    response = post(client, ep, CREATED, headers)
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
    assert not deliveries(personas.tenant).exists() and not tickets(personas.tenant).exists()


def test_stale_timestamp_and_endpoint_without_secret_are_refused(client, personas, endpoint):
    ep = endpoint()
    assert generic(client, ep, CREATED, ts=int(time.time()) - 400).status_code == 401
    bare = endpoint(secret="")
    assert generic(client, bare, CREATED).status_code == 401  # signed with some secret: still no
    assert not deliveries(personas.tenant).exists() and not tickets(personas.tenant).exists()


def test_rotation_keeps_two_secrets_valid_until_the_old_one_lapses(client, personas, endpoint):
    from incidents.intake.webhooks import endpoint_set_secret

    ep = endpoint()
    new = "the-new-secret-abcdefghijkl"
    ep = endpoint_set_secret(endpoint=ep, actor=personas.admin, secret=new, keep_previous_hours=1)
    assert generic(client, ep, CREATED, msg_id="a", secret=SECRET).status_code == 200
    assert (
        generic(
            client, ep, CREATED | {"data": {"id": "EXT-2", "title": "t"}}, msg_id="b", secret=new
        ).status_code
        == 200
    )
    WebhookEndpoint.objects.for_tenant(personas.tenant).filter(pk=ep.pk).update(
        previous_secret_valid_until=timezone.now() - timedelta(seconds=1)
    )
    assert generic(client, ep, CREATED, msg_id="c", secret=SECRET).status_code == 401
    assert (
        AuditEvent.objects.for_tenant(personas.tenant)
        .filter(action="webhook.secret_rotated")
        .exists()
    )


def test_unknown_event_is_stored_and_acknowledged(client, personas, endpoint):
    ep = endpoint()
    response = generic(client, ep, {"type": "invoice.paid", "data": {"amount": 3}})
    assert response.status_code == 200 and response.json()["outcome"] == "unknown_event"
    assert deliveries(personas.tenant).get().event_type == "invoice.paid"


def test_payload_is_kept_redacted(client, personas, endpoint):
    ep = endpoint()
    payload = {
        "type": "ticket.created",
        "data": {
            "id": "E9",
            "title": "Card",
            "description": "card 4111 1111 1111 1111 password: hunter22",
        },
    }
    generic(client, ep, payload)
    kept = deliveries(personas.tenant).get()
    text = json.dumps(kept.payload)
    assert "4111" not in text and "hunter22" not in text and "[REDACTED card number]" in text
    assert set(kept.redactions) == {"card_number", "secret"}
    assert "webhook-signature" not in kept.headers and kept.headers["webhook-id"] == "msg_1"


def test_same_delivery_twice_is_one_ticket(client, personas, endpoint):
    ep = endpoint()
    first = generic(client, ep, CREATED, msg_id="dup").json()
    again = generic(client, ep, CREATED, msg_id="dup").json()
    assert again["duplicate"] is True and again["ticket"] == first["ticket"]
    assert tickets(personas.tenant).count() == 1


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_copies_make_one_ticket(personas, endpoint):
    ep = endpoint()
    body = json.dumps(CREATED).encode()
    headers = signatures.sign_generic(SECRET, body, msg_id="race", timestamp=int(time.time()))
    barrier = threading.Barrier(10)
    results: list[int] = []

    def send():
        try:
            barrier.wait()
            response = Client().post(
                url(ep), data=body, content_type="application/json", headers=headers
            )
            results.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 10
    assert tickets(personas.tenant).count() == 1
    assert deliveries(personas.tenant).count() == 1
    assert WebhookLink.objects.for_tenant(personas.tenant).count() == 1


def test_replay_applies_a_delivery_that_was_unmatched_and_never_twice(
    client, personas, endpoint, admin_client
):
    from incidents.intake.webhooks import replay_delivery

    ep = endpoint()
    comment = {"type": "comment.created", "data": {"ticket_id": "EXT-1", "body": "Hello?"}}
    assert generic(client, ep, comment, msg_id="early").json()["outcome"] == "unmatched"
    generic(client, ep, CREATED, msg_id="create")
    early = deliveries(personas.tenant).get(delivery_id="early")
    admin_url = (
        reverse("admin:intake_webhookdelivery_changelist")
        if False
        else reverse("admin:incidents_webhookdelivery_changelist")
    )
    response = admin_client.post(admin_url, {"action": "replay", "_selected_action": [early.pk]})
    assert response.status_code == 302
    early.refresh_from_db()
    assert early.outcome == "commented" and early.replay_count == 1
    replay_delivery(delivery=early, actor=None)  # applied already: nothing more happens
    assert Comment.objects.for_tenant(personas.tenant).count() == 1
    assert (
        AuditEvent.objects.for_tenant(personas.tenant).filter(action="webhook.replayed").count()
        == 2
    )


def test_links_are_per_endpoint_so_another_tenant_cannot_reach_a_ticket(client, personas, endpoint):
    ours, theirs = endpoint(), endpoint(tenant=personas.other_tenant)
    generic(client, ours, CREATED, msg_id="c1")
    comment = {"type": "comment.created", "data": {"ticket_id": "EXT-1", "body": "hijack"}}
    assert generic(client, theirs, comment, msg_id="c2").json()["outcome"] == "unmatched"
    assert not Comment.objects.for_tenant(personas.tenant).exists()


def test_bad_input_gets_clear_4xx(client, personas, endpoint, settings):
    ep = endpoint()

    def signed(raw: bytes, msg_id: str):
        headers = signatures.sign_generic(SECRET, raw, msg_id=msg_id, timestamp=int(time.time()))
        return post(client, ep, None, headers, raw)

    assert signed(b"{not json", "b1").status_code == 400
    assert signed(b"[1, 2]", "b2").status_code == 400
    assert (
        signed(b'{"type": "ticket.created", "data": {"title": "a\\u0000b"}}', "b3").status_code
        == 400
    )
    assert signed(b"\xff\xfe", "b4").status_code in (400, 401)
    assert not deliveries(personas.tenant).exists()
    assert (
        client.post(
            "/api/v1/webhooks/generic/not-a-uuid", data=b"{}", content_type="application/json"
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/api/v1/webhooks/jira/{ep.public_id}", data=b"{}", content_type="application/json"
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/api/v1/webhooks/github/{ep.public_id}", data=b"{}", content_type="application/json"
        ).status_code
        == 404
    )
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    assert signed(b'{"x": "' + b"a" * 4096 + b'"}', "b5").status_code == 413


def test_admin_creates_an_endpoint_with_a_secret_and_shows_its_url(personas, admin_client):
    response = admin_client.post(
        reverse("admin:incidents_webhookendpoint_add"),
        {
            "tenant": personas.tenant.pk,
            "provider": "jira",
            "name": "Ops Jira",
            "is_active": "on",
            "default_requester_email": "",
            "new_secret": "a-brand-new-secret-123456",
            "keep_previous_hours": "24",
        },
    )
    assert response.status_code == 302, response.content
    ep = WebhookEndpoint.objects.for_tenant(personas.tenant).get()
    assert ep.secret == "a-brand-new-secret-123456"
    page = admin_client.get(reverse("admin:incidents_webhookendpoint_change", args=[ep.pk]))
    assert f"/api/v1/webhooks/jira/{ep.public_id}" in page.content.decode()
    assert "a-brand-new-secret-123456" not in page.content.decode()  # never shown again


def test_deliveries_past_the_tenants_retention_are_purged(client, personas, endpoint):
    from agentops import quotas
    from incidents.intake.webhooks import purge_expired_deliveries

    ours, theirs = endpoint(), endpoint(tenant=personas.other_tenant)
    for ep in (ours, theirs):
        generic(client, ep, {"type": "x.old"}, msg_id="old")
        generic(client, ep, {"type": "x.new"}, msg_id="new")
    quotas.limits_set(tenant=personas.tenant, actor=None, retention_days=30)
    quotas.limits_set(tenant=personas.other_tenant, actor=None, retention_days=400)
    for tenant in (personas.tenant, personas.other_tenant):
        deliveries(tenant).filter(delivery_id="old").update(
            received_at=timezone.now() - timedelta(days=31)
        )
    assert purge_expired_deliveries() == 1
    assert list(deliveries(personas.tenant).values_list("delivery_id", flat=True)) == ["new"]
    assert deliveries(personas.other_tenant).count() == 2
