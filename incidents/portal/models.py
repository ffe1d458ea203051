"""What a requester is told about their tickets, and how they like to hear it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from agentops.tenancy import TenantOwned


class EmailChoice(models.TextChoices):
    GROUPED = "grouped", "E-mail me, several changes in a few minutes as one message"
    OFF = "off", "Only in the console (the bell), no e-mail"


class NotificationPreference(TenantOwned):
    """One person's choice, per workspace, of how updates on their tickets reach them. No row
    means the default (e-mail, grouped)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    email = models.CharField(
        max_length=12, choices=EmailChoice.choices, default=EmailChoice.GROUPED
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="portal_pref_one_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.email}"


class UpdateKind(models.TextChoices):
    STATUS = "status", "Status changed"
    REPLY = "reply", "The service desk replied"
    CONFIRM = "confirm", "Needs your confirmation"


class RequesterUpdate(TenantOwned):
    """One change on a requester's ticket waiting for (or already in) an e-mail. The digest
    task claims a user's unsent updates at once (``emailed_at``), so a burst is one message
    and a redelivered task sends nothing twice."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    ticket = models.ForeignKey("incidents.Ticket", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=UpdateKind.choices)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["tenant", "user", "created_at"],
                condition=models.Q(emailed_at__isnull=True),
                name="portal_update_unsent_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.ticket_id}"
