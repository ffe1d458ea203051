"""Approval requests: the generic queue of human decisions. It knows nothing of agents or tickets.

Whoever opens a request names a handler (``approvals.handlers``); the decision calls it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from agentops.tenancy import TenantOwned


class ApprovalRequest(TenantOwned):
    """A proposed action waiting for a person: approve, reject, or edit then approve."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    class Priority(models.TextChoices):
        CRITICAL = "critical", "Critical"
        HIGH = "high", "High"
        MEDIUM = "medium", "Medium"
        LOW = "low", "Low"

    subject_type = models.CharField(max_length=40)
    subject_id = models.CharField(max_length=64)
    subject_repr = models.CharField(max_length=200, blank=True)
    handler = models.CharField(max_length=100, help_text="Called with the decision.")
    handler_ref = models.CharField(
        max_length=100, help_text="What the handler resumes (e.g. a tool call id)."
    )
    action = models.CharField(max_length=100)
    arguments = models.JSONField(default=dict, blank=True)
    arguments_hash = models.CharField(max_length=64)
    risk = models.CharField(max_length=20, default="high")
    reason = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.HIGH)
    sla_due = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=150, default="agent")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    edited_arguments = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status", "sla_due"], name="approval_queue_idx"),
            models.Index(
                fields=["tenant", "subject_type", "subject_id"], name="approval_subject_idx"
            ),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} for {self.subject_repr or self.subject_id} ({self.status})"
