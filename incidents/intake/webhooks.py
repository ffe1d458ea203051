"""Inbound webhooks: verify, deduplicate, keep (redacted), map to tickets; replay.

``receive`` is what the API view calls: it refuses (401) anything not signed the provider's
way with a current secret of the endpoint, before anything is stored. A signed delivery is
inserted under its delivery id and mapped in the same transaction, so concurrent copies of
one delivery wait on the unique index and then find it there: one ticket, however many copies.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from agentops import audit
from agents.redaction import redact_value
from incidents import services
from incidents.intake import events, signatures
from incidents.intake.models import Provider, WebhookDelivery, WebhookEndpoint, WebhookLink
from incidents.models import DESCRIPTION_MAX, TITLE_MAX, Source, Ticket

Outcome = WebhookDelivery.Outcome
# Headers worth keeping with a delivery (never the signatures).
KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "x-atlassian-webhook-identifier",
    "x-zendesk-webhook-invocation-id",
    "x-slack-retry-num",
    "x-slack-retry-reason",
)
PROVIDER_LABEL = {"generic": "webhook", "slack": "Slack", "jira": "Jira", "zendesk": "Zendesk"}


class WebhookRefused(Exception):
    """401: not signed with a current secret (or stale, or the endpoint has none)."""


class WebhookBadRequest(Exception):
    """400: signed, but not a JSON object we can keep."""


@dataclass
class Received:
    delivery: WebhookDelivery | None
    duplicate: bool = False
    challenge: str = ""


def _endpoint(provider: str, endpoint_id: str) -> WebhookEndpoint:
    try:
        public_id = uuid.UUID(str(endpoint_id))
    except ValueError:
        raise Http404("No such webhook endpoint") from None
    if provider not in Provider.values:
        raise Http404("No such webhook provider")
    endpoint = (
        WebhookEndpoint.objects.unscoped("the endpoint id names its own tenant")
        .select_related("tenant")
        .filter(public_id=public_id, provider=provider, is_active=True, tenant__is_active=True)
        .first()
    )
    if endpoint is None:
        raise Http404("No such webhook endpoint")
    return endpoint


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _parse(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookBadRequest("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise WebhookBadRequest("The body must be a JSON object.")
    if _has_nul(data):
        raise WebhookBadRequest("NUL characters are not accepted.")
    return data


def receive(
    *, provider: str, endpoint_id: str, body: bytes, headers: Mapping[str, str]
) -> Received:
    """Verify, then store and map one delivery exactly once."""
    endpoint = _endpoint(provider, endpoint_id)
    lowered = {k.lower(): v for k, v in headers.items()}
    problem = signatures.verify(provider, endpoint.valid_secrets(), body, lowered)
    if problem:
        raise WebhookRefused(problem)
    data = _parse(body)
    event = events.READERS[provider](data, lowered, body)
    if event.action == events.HANDSHAKE:
        return Received(None, challenge=event.challenge)
    payload, found = redact_value(data)
    delivery = WebhookDelivery(
        tenant=endpoint.tenant,
        endpoint=endpoint,
        delivery_id=event.delivery_id[:200],
        event_type=event.event_type[:100],
        payload=payload,
        headers={k: lowered[k][:200] for k in KEPT_HEADERS if k in lowered},
        redactions=list(found),
    )
    try:
        with transaction.atomic():
            delivery.save(force_insert=True)
            _apply(delivery, endpoint, event)
    except IntegrityError:
        existing = (
            WebhookDelivery.objects.for_tenant(endpoint.tenant)
            .filter(endpoint=endpoint, delivery_id=delivery.delivery_id)
            .first()
        )
        if existing is None:  # not the delivery id: something else failed
            raise
        return Received(existing, duplicate=True)
    return Received(delivery)


# --------------------------------------------------------------------------- mapping


def _set(delivery: WebhookDelivery, outcome: str, detail: str = "", ticket: str = "") -> None:
    delivery.outcome = outcome
    delivery.detail = detail[:2000]
    delivery.ticket_number = ticket or delivery.ticket_number
    delivery.save(update_fields=["outcome", "detail", "ticket_number"])


def _linked_ticket(endpoint: WebhookEndpoint, external_id: str) -> Ticket | None:
    if not external_id:
        return None
    link = (
        WebhookLink.objects.for_tenant(endpoint.tenant)
        .filter(endpoint=endpoint, external_id=external_id)
        .select_related("ticket")
        .first()
    )
    if link is None:
        return None
    link.ticket.tenant = endpoint.tenant
    return link.ticket


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)


def _apply(delivery: WebhookDelivery, endpoint: WebhookEndpoint, event: events.Event) -> None:
    """Map one event onto tickets; a refusal by the ticket's rules is kept as the outcome."""
    handler = {
        events.CREATE: _create,
        events.COMMENT: _comment,
        events.STATUS: _status,
    }.get(event.action)
    if handler is None:
        if event.action == events.UNKNOWN:
            _set(delivery, Outcome.UNKNOWN_EVENT, f"Event type {event.event_type!r} is not mapped.")
        else:
            _set(delivery, Outcome.IGNORED)
        return
    try:
        with transaction.atomic():
            handler(delivery, endpoint, event)
    except ValidationError as exc:
        _set(delivery, Outcome.REJECTED, _messages(exc))


def _slack_user_email(endpoint: WebhookEndpoint, slack_user_id: str) -> str:
    """A Slack author linked to an AgentOps user (approvals' SlackUserLink) is the requester."""
    if endpoint.provider != Provider.SLACK or not slack_user_id:
        return ""
    from approvals.models import SlackUserLink

    link = (
        SlackUserLink.objects.for_tenant(endpoint.tenant)
        .filter(slack_user_id=slack_user_id)
        .select_related("user")
        .first()
    )
    return link.user.email if link else ""


def _create(delivery, endpoint, event) -> None:
    tenant = endpoint.tenant
    existing = _linked_ticket(endpoint, event.external_id)
    if existing is not None:
        _set(delivery, Outcome.IGNORED, "Already linked to this ticket.", existing.number)
        return
    email = (
        event.requester_email
        or _slack_user_email(endpoint, event.author)
        or endpoint.default_requester_email
        or ""
    ).strip()
    title = (event.title or "").strip() or f"New {PROVIDER_LABEL[endpoint.provider]} request"
    ticket = services.ticket_create(
        tenant=tenant,
        actor=None,
        title=title[:TITLE_MAX],
        description=(event.description or "")[:DESCRIPTION_MAX],
        requester_email=email or None,
        requester=services.user_for_email(tenant=tenant, email=email) if email else None,
        priority=event.priority or "medium",
        source=Source.WEBHOOK,
        audit_metadata={
            "webhook": endpoint.provider,
            "endpoint": str(endpoint.public_id),
            "delivery_id": delivery.delivery_id,
            "external_id": event.external_id,
        },
    )
    if event.external_id:
        WebhookLink.objects.create(
            tenant=tenant, endpoint=endpoint, external_id=event.external_id[:200], ticket=ticket
        )
    _set(delivery, Outcome.TICKET_CREATED, ticket=ticket.number)


def _comment(delivery, endpoint, event) -> None:
    ticket = _linked_ticket(endpoint, event.external_id)
    if ticket is None:
        _set(delivery, Outcome.UNMATCHED, f"No ticket is linked to {event.external_id!r}.")
        return
    who = event.author or "someone"
    services.ticket_comment(
        ticket=ticket,
        actor=None,
        body=(event.body or "")[:10_000],
        author_label=f"{who} ({PROVIDER_LABEL[endpoint.provider]})",
    )
    _set(delivery, Outcome.COMMENTED, ticket=ticket.number)


def _status(delivery, endpoint, event) -> None:
    ticket = _linked_ticket(endpoint, event.external_id)
    if ticket is None:
        _set(delivery, Outcome.UNMATCHED, f"No ticket is linked to {event.external_id!r}.")
        return
    if not event.status:
        _set(delivery, Outcome.IGNORED, "A status we do not map.", ticket.number)
        return
    current = Ticket.objects.for_tenant(endpoint.tenant).values_list("status", flat=True)
    if current.get(pk=ticket.pk) == event.status:
        _set(delivery, Outcome.IGNORED, "Already in that status.", ticket.number)
        return
    note = event.body or f"Changed in {PROVIDER_LABEL[endpoint.provider]}."
    services.ticket_transition(ticket=ticket, actor=None, status=event.status, note=note)
    _set(delivery, Outcome.TRANSITIONED, f"→ {event.status}", ticket.number)


# --------------------------------------------------------------------------- admin services

APPLIED = {Outcome.TICKET_CREATED, Outcome.COMMENTED, Outcome.TRANSITIONED}


@transaction.atomic
def replay_delivery(*, delivery: WebhookDelivery, actor) -> WebhookDelivery:
    """Map a stored (redacted) delivery again: for one that was unmatched, rejected or of an
    unknown type at the time. One already applied is not applied twice."""
    locked = (
        WebhookDelivery.objects.for_tenant(delivery.tenant_id)
        .select_for_update()
        .select_related("endpoint", "endpoint__tenant")
        .get(pk=delivery.pk)
    )
    endpoint = locked.endpoint
    before = locked.outcome
    if before not in APPLIED:
        raw = json.dumps(locked.payload).encode()
        headers = {k: v for k, v in (locked.headers or {}).items()}
        event = events.READERS[endpoint.provider](locked.payload, headers, raw)
        _apply(locked, endpoint, event)
    locked.replayed_at = timezone.now()
    locked.replay_count += 1
    locked.save(update_fields=["replayed_at", "replay_count"])
    audit.record(
        tenant=endpoint.tenant,
        actor=actor,
        action="webhook.replayed",
        target_type="webhook_delivery",
        target_id=locked.pk,
        target_repr=str(locked)[:200],
        changes={"outcome": {"from": before, "to": locked.outcome}},
    )
    return locked


@transaction.atomic
def endpoint_set_secret(
    *, endpoint: WebhookEndpoint, actor, secret: str, keep_previous_hours: float = 24
) -> WebhookEndpoint:
    """Rotate: the new secret signs from now on, the old one stays valid for a while."""
    secret = (secret or "").strip()
    if len(secret) < 16:
        raise ValidationError({"secret": "Use a secret of at least 16 characters."})
    locked = (
        WebhookEndpoint.objects.for_tenant(endpoint.tenant_id)
        .select_for_update()
        .get(pk=endpoint.pk)
    )
    if secret == locked.secret:
        return locked
    if locked.secret and keep_previous_hours > 0:
        locked.previous_secret = locked.secret
        locked.previous_secret_valid_until = timezone.now() + timedelta(hours=keep_previous_hours)
    else:
        locked.previous_secret = ""
        locked.previous_secret_valid_until = None
    locked.secret = secret
    locked.save(update_fields=["secret", "previous_secret", "previous_secret_valid_until"])
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="webhook.secret_rotated",
        target_type="webhook_endpoint",
        target_id=str(locked.public_id),
        target_repr=str(locked)[:200],
        metadata={"previous_valid_until": str(locked.previous_secret_valid_until or "")},
    )
    return locked


def purge_expired_deliveries(*, now=None) -> int:
    """Delete stored deliveries older than each tenant's retention (agentops.quotas); safe to
    run twice (beat, daily)."""
    from agentops import quotas
    from agentops.models import Tenant

    now = now or timezone.now()
    removed = 0
    for tenant in Tenant.objects.order_by("pk"):
        days = quotas.retention_days(tenant)
        if days is None:
            continue
        old = WebhookDelivery.objects.for_tenant(tenant).filter(
            received_at__lt=now - timedelta(days=days)
        )
        removed += old.delete()[0]
    return removed
