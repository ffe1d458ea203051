"""Core models: tenants, memberships (roles), per-tenant sequences, API tokens, audit trail."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

from agentops.tenancy import TenantOwned


def default_sla_hours() -> dict[str, int]:
    return {"critical": 4, "high": 8, "medium": 24, "low": 72}


class Tenant(models.Model):
    """An organisation using AgentOps. Every piece of customer data belongs to exactly one."""

    class Tier(models.TextChoices):
        FREE = "free", "Free"
        STARTER = "starter", "Starter"
        PROFESSIONAL = "professional", "Professional"
        ENTERPRISE = "enterprise", "Enterprise"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    tier = models.CharField(max_length=20, choices=Tier.choices, default=Tier.FREE)
    is_active = models.BooleanField(default=True)
    sla_hours = models.JSONField(
        default=default_sla_hours,
        help_text="Hours from creation to SLA due, by priority (critical/high/medium/low).",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    REQUESTER = "requester", "Requester"
    AGENT = "agent", "Service-desk agent"
    REVIEWER = "reviewer", "Reviewer"
    ADMIN = "admin", "Tenant admin"
    AUDITOR = "auditor", "Auditor"


# What each role may do inside its tenant. The access gates read this table; templates never do.
ROLE_CAPABILITIES: dict[str, frozenset[str]] = {
    Role.REQUESTER: frozenset({"ticket.create", "ticket.comment"}),
    Role.AGENT: frozenset(
        {
            "ticket.view_all",
            "ticket.create",
            "ticket.comment",
            "ticket.internal_note",
            "ticket.write",
            # Knowledge: read every kind (past tickets too), add and edit sources.
            "knowledge.view_all",
            "knowledge.write",
            # Decide approvals only in the queues or tickets granted to them (approvals.access).
            "approval.decide_granted",
            # Start an agent run by hand (an investigation, a blueprint on a goal).
            "agent.start",
        }
    ),
    Role.REVIEWER: frozenset(
        {
            "ticket.view_all",
            "ticket.create",
            "ticket.comment",
            "ticket.internal_note",
            "approval.decide",
            "knowledge.view_all",
        }
    ),
    Role.ADMIN: frozenset(
        {
            "ticket.view_all",
            "ticket.create",
            "ticket.comment",
            "ticket.internal_note",
            "ticket.write",
            "audit.view",
            "usage.view",
            "approval.decide",
            "knowledge.view_all",
            "knowledge.write",
            # Grant and revoke view/work on queues and tickets; create queues (incidents).
            "access.manage",
            "agent.start",
        }
    ),
    Role.AUDITOR: frozenset({"ticket.view_all", "audit.view", "usage.view", "knowledge.view_all"}),
}


class Membership(models.Model):
    """A user's role in one tenant. A user may belong to several tenants and switch between them."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")
        ]
        ordering = ["tenant__name"]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant.slug} ({self.role})"

    def can(self, capability: str) -> bool:
        return capability in ROLE_CAPABILITIES.get(self.role, frozenset())


class Sequence(TenantOwned):
    """A per-tenant counter (ticket numbers). Incremented with a single atomic UPDATE."""

    name = models.CharField(max_length=40)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="sequence_unique_tenant_name")
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.name}={self.value}"


class ApiToken(TenantOwned):
    """A bearer token for machines. Only a SHA-256 hash of the secret is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, default="api")
    prefix = models.CharField(max_length=12, unique=True)
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this time the token answers 401. Empty: never."
    )

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_secret(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class AuditEvent(TenantOwned):
    """One append-only line of the audit trail: who did what to which object, and what changed.

    The database refuses UPDATE and DELETE on this table (trigger in the migration). The actor
    is kept as id + label, not a foreign key, so deleting a user never rewrites history.
    Each tenant's events form a hash chain (``seq``, ``prev_hash``, ``hash``), written by
    ``agentops.audit.record`` and checked by ``agentops.audit.verify_chain``.
    """

    # No index of its own: (tenant, seq) serves every lookup by tenant, in chain order. With a
    # tenant-only index beside it the planner, when it expects few rows of the tenant (a fresh
    # table, stale statistics), read the chain head as "every event of the tenant, sorted",
    # once per append (agentops_audit_append), not one index entry.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    seq = models.PositiveBigIntegerField(help_text="Position in the tenant's chain, from 1.")
    prev_hash = models.CharField(max_length=64, help_text="The hash of event seq-1.")
    hash = models.CharField(max_length=64, help_text="sha256 of the canonical event + prev_hash.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=80)
    target_type = models.CharField(max_length=60)
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "seq"], name="audit_unique_tenant_seq")
        ]
        indexes = [
            models.Index(
                fields=["tenant", "target_type", "target_id", "created_at"],
                name="audit_target_idx",
            ),
            models.Index(fields=["tenant", "-created_at"], name="audit_tenant_time_idx"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.target_repr}"
        )

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise RuntimeError("Audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("Audit events are append-only")


class Notification(TenantOwned):
    """An in-console message for one user of one tenant (the bell): SLA breaches, escalations.

    Only its recipient ever reads it (``agentops.notifications.notifications_for``).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    verb = models.CharField(
        max_length=60, help_text="What happened, for filters: approval.breached"
    )
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=500, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "user", "-created_at"], name="notification_inbox_idx"),
            models.Index(
                fields=["tenant", "user"],
                condition=models.Q(read_at__isnull=True),
                name="notification_unread_idx",
            ),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.title}"


# --------------------------------------------------------------------------- tiers, quotas, usage


class TenantLimits(TenantOwned):
    """An admin's overrides of the tier's limits for one tenant (agentops.quotas.TIER_LIMITS).

    Empty fields follow the tier. 0 means "none allowed"; to lift a limit, set it very high.
    """

    runs_per_month = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_month = models.PositiveBigIntegerField(null=True, blank=True)
    api_requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    knowledge_documents = models.PositiveIntegerField(null=True, blank=True)
    knowledge_chunks = models.PositiveIntegerField(null=True, blank=True)
    users = models.PositiveIntegerField(null=True, blank=True)
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    blueprints = models.JSONField(
        null=True,
        blank=True,
        help_text='Blueprints this tenant may run, e.g. ["service_desk"]; empty: the tier\'s.',
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="tenant_limits_one_per_tenant")
        ]
        verbose_name_plural = "tenant limits"

    def __str__(self) -> str:
        return f"Limits of tenant {self.tenant_id}"


class UsageRecord(TenantOwned):
    """One metered unit of work (a run, a step's model tokens), recorded once per ``key``."""

    metric = models.CharField(max_length=20)  # "runs" | "tokens"
    quantity = models.BigIntegerField()
    key = models.CharField(max_length=120, help_text="Idempotency key: run:<id>, step:<id>.")
    blueprint = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=100, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "metric", "key"], name="usage_unique_key")
        ]
        indexes = [
            models.Index(fields=["tenant", "metric", "occurred_at"], name="usage_period_idx")
        ]

    def __str__(self) -> str:
        return f"{self.metric} {self.quantity} ({self.key})"


class QuotaWarning(TenantOwned):
    """The 80 % warning of one metric in one period, sent once (the row claims it)."""

    metric = models.CharField(max_length=20)
    period = models.DateField()
    threshold = models.PositiveSmallIntegerField(default=80)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "metric", "period", "threshold"], name="quota_warning_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.metric} {self.threshold}% {self.period}"
