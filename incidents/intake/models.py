"""Inbound webhooks: a signed endpoint per tenant and provider, every delivery kept (redacted),
and the link between an external issue and the ticket it became.

Imported by ``incidents.models`` so the tables belong to the incidents app.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from agentops.tenancy import TenantOwned


class Provider(models.TextChoices):
    GENERIC = "generic", "Generic (HMAC-SHA256 with timestamp)"
    SLACK = "slack", "Slack (signing secret)"
    JIRA = "jira", "Jira (X-Hub-Signature)"
    ZENDESK = "zendesk", "Zendesk (X-Zendesk-Webhook-Signature)"


class WebhookEndpoint(TenantOwned):
    """Where one tool of one tenant sends its webhooks: ``/api/v1/webhooks/<provider>/<public_id>``.

    The secret is set in the admin. During a rotation the previous secret stays valid until
    ``previous_secret_valid_until``, so the tool can be switched over without a gap. An
    endpoint with no secret refuses every delivery (401): nothing unsigned is ever accepted.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    secret = models.CharField(max_length=200, blank=True)
    previous_secret = models.CharField(max_length=200, blank=True)
    previous_secret_valid_until = models.DateTimeField(null=True, blank=True)
    default_requester_email = models.EmailField(
        blank=True, help_text="Requester of tickets whose payload names no e-mail address."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider})"

    def valid_secrets(self, now=None) -> list[str]:
        """The secrets a signature may be made with right now (the current one first)."""
        now = now or timezone.now()
        found = [self.secret] if self.secret else []
        if self.previous_secret and (
            self.previous_secret_valid_until is None or self.previous_secret_valid_until > now
        ):
            found.append(self.previous_secret)
        return found


class WebhookDelivery(TenantOwned):
    """One signed delivery, kept redacted, unique per endpoint and delivery id (dedupe)."""

    class Outcome(models.TextChoices):
        TICKET_CREATED = "ticket_created", "Ticket created"
        COMMENTED = "commented", "Comment added"
        TRANSITIONED = "transitioned", "Status changed"
        IGNORED = "ignored", "Acknowledged, nothing to do"
        UNKNOWN_EVENT = "unknown_event", "Unknown event type (stored)"
        UNMATCHED = "unmatched", "No ticket linked to it"
        REJECTED = "rejected", "Refused by the ticket's rules"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="+")
    delivery_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=100, blank=True)
    payload = models.JSONField(default=dict, help_text="The body, redacted.")
    headers = models.JSONField(default=dict, blank=True, help_text="Non-secret headers.")
    redactions = models.JSONField(default=list, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    detail = models.TextField(blank=True)
    ticket_number = models.CharField(max_length=20, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    replayed_at = models.DateTimeField(null=True, blank=True)
    replay_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "delivery_id"], name="webhook_delivery_unique_id"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "-received_at"], name="webhook_delivery_time_idx")
        ]
        ordering = ["-received_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.delivery_id} {self.event_type} ({self.outcome or 'new'})"


class WebhookLink(TenantOwned):
    """The external issue (a Jira key, a Zendesk ticket id, a Slack thread) behind a ticket."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="+")
    external_id = models.CharField(max_length=200)
    ticket = models.ForeignKey("incidents.Ticket", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "external_id"], name="webhook_link_unique_external"
            )
        ]

    def __str__(self) -> str:
        return f"{self.external_id} → {self.ticket_id}"
