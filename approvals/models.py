"""Approval requests: the generic queue of human decisions. It knows nothing of agents or tickets.

Whoever opens a request names a handler (``approvals.handlers``); the decision calls it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Case, Q, Value, When
from django.utils import timezone

from agentops.tenancy import TenantOwned

PRIORITIES = ("critical", "high", "medium", "low")  # most urgent first


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
    # The queue's first sort key (critical 0 … low 3), stored so an index serves the order.
    priority_rank = models.GeneratedField(
        expression=Case(
            *(When(priority=value, then=Value(rank)) for rank, value in enumerate(PRIORITIES)),
            default=Value(9),
        ),
        output_field=models.SmallIntegerField(),
        db_persist=True,
    )
    sla_due = models.DateTimeField(null=True, blank=True)
    # Set once, by the beat task, when the request first passed its SLA due (never cleared).
    breached_at = models.DateTimeField(null=True, blank=True)
    # After this a pending request expires (never approves); null: it does not expire.
    expires_at = models.DateTimeField(null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)
    # Who may see and decide it besides tenant-wide reviewers: a path of grants from broad to
    # narrow ("queue:12/ticket:REQ0000042"), set by whoever opens the request; a grant on any
    # element covers it (approvals.access). Empty: tenant-wide reviewers only.
    scope = models.CharField(max_length=200, blank=True, default="")
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
    # Who may not decide it (four-eyes): [{"role": starter|requester|beneficiary|editor,
    # "user_id": int|None, "email": str}], named by whoever opened the request.
    parties = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status", "sla_due"], name="approval_queue_idx"),
            models.Index(
                fields=["tenant", "subject_type", "subject_id"], name="approval_subject_idx"
            ),
            # The pending queue in its order (priority, SLA due), read from the top.
            models.Index(
                fields=["tenant", "priority_rank", "sla_due", "id"],
                condition=Q(status="pending"),
                name="approval_pending_order_idx",
            ),
            # "Assigned to me" in the same order, and the load per reviewer (auto-assignment).
            models.Index(
                fields=["tenant", "assigned_to", "priority_rank", "sla_due", "id"],
                condition=Q(status="pending"),
                name="approval_pending_mine_idx",
            ),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} for {self.subject_repr or self.subject_id} ({self.status})"


# --------------------------------------------------------------------------- tenant settings


class TenantUniqueValidation:
    """Django validates UniqueConstraints with an unscoped query, which the tenant manager
    refuses: check them within this row's tenant instead (forms and the admin call this)."""

    def validate_constraints(self, exclude=None):
        from django.core.exceptions import ValidationError

        if self.tenant_id is None:
            return
        for constraint in self._meta.constraints:
            fields = getattr(constraint, "fields", ())
            if not fields or "tenant" not in fields or set(fields) & set(exclude or ()):
                continue
            lookup = {}
            for name in fields:
                attname = self._meta.get_field(name).attname
                lookup[attname] = getattr(self, attname)
            clash = type(self).objects.for_tenant(self.tenant_id).filter(**lookup)
            if self.pk is not None:
                clash = clash.exclude(pk=self.pk)
            if clash.exists():
                raise ValidationError(constraint.violation_error_message)


def default_approval_sla_hours() -> dict[str, int]:
    return {"critical": 1, "high": 4, "medium": 8, "low": 24}


class ApprovalSettings(TenantUniqueValidation, TenantOwned):
    """A tenant's approval clock: hours to decide by priority, and when a request expires.

    One row per tenant, created with the defaults on first use (``approvals.services.settings_for``).
    """

    sla_hours = models.JSONField(
        default=default_approval_sla_hours,
        help_text="Hours from request to SLA due, by priority (critical/high/medium/low).",
    )
    expiry_factor = models.PositiveSmallIntegerField(
        default=3,
        help_text="A pending request expires after this many times its SLA (0: never). "
        "Expiry never approves: the handler hears 'expired' and the run goes to a person.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                name="approval_settings_one_per_tenant",
                violation_error_message="This tenant has approval settings already; edit those.",
            )
        ]
        verbose_name = "approval settings"
        verbose_name_plural = "approval settings"

    def __str__(self) -> str:
        return f"Approval settings of tenant {self.tenant_id}"

    def hours_for(self, priority: str) -> float:
        defaults = default_approval_sla_hours()
        value = (self.sla_hours or {}).get(priority, defaults.get(priority, 4))
        try:
            return max(float(value), 0.01)
        except (TypeError, ValueError):
            return float(defaults.get(priority, 4))


class ReviewerAvailability(TenantUniqueValidation, TenantOwned):
    """Whether a reviewer takes new assignments: available, or away (until a time, or for now).

    No row means available. Away with ``away_until`` in the past means available again.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    is_away = models.BooleanField(default=False)
    away_until = models.DateTimeField(
        null=True, blank=True, help_text="Back at this time; empty while away: until they return."
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "user"],
                name="availability_one_per_user",
                violation_error_message="This reviewer has an availability row already; edit it.",
            )
        ]
        verbose_name_plural = "reviewer availability"

    def __str__(self) -> str:
        return f"{self.user} ({'available' if self.available_at(timezone.now()) else 'away'})"

    def available_at(self, now) -> bool:
        return not self.is_away or (self.away_until is not None and self.away_until <= now)


# --------------------------------------------------------------------------- escalation


class EscalationPolicy(TenantUniqueValidation, TenantOwned):
    """A tenant's escalation chain for overdue requests: ordered rules, first match per level.

    When a pending request is past its SLA due by a rule's delay, the beat task applies the
    rule for the request's next escalation level: the n-th rule (by ``order``) that matches
    its priority and action is level n. It reassigns, optionally raises the priority, and
    restarts the SLA clock from the (new) priority.
    """

    name = models.CharField(max_length=100, default="Default")
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                name="escalation_policy_one_per_tenant",
                violation_error_message="This tenant has an escalation policy already; edit that one.",
            )
        ]
        verbose_name_plural = "escalation policies"

    def __str__(self) -> str:
        return self.name


class EscalationRule(TenantOwned):
    """One step of an escalation chain: for which requests, after how long, who is next."""

    class Target(models.TextChoices):
        USER = "user", "A named reviewer"
        LEAST_LOADED = "least_loaded", "The least-loaded available reviewer"
        ADMINS = "admins", "The tenant admins"

    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="rules")
    order = models.PositiveSmallIntegerField(default=0)
    priority = models.CharField(
        max_length=10,
        choices=ApprovalRequest.Priority.choices,
        blank=True,
        help_text="Only requests of this priority; empty: any.",
    )
    action_pattern = models.CharField(
        max_length=100,
        default="*",
        help_text="Shell-style pattern of the action name (grant_* , *); '*' matches all.",
    )
    after_minutes = models.PositiveIntegerField(
        default=0, help_text="Minutes past the SLA due before this step applies."
    )
    target = models.CharField(max_length=20, choices=Target.choices, default=Target.LEAST_LOADED)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The reviewer, when the target is a named reviewer.",
    )
    raise_priority = models.BooleanField(default=False)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        who = self.user if self.target == self.Target.USER else self.get_target_display()
        return f"{self.priority or 'any'} {self.action_pattern} +{self.after_minutes}m → {who}"

    def matches(self, request: ApprovalRequest) -> bool:
        from fnmatch import fnmatchcase

        if self.priority and self.priority != request.priority:
            return False
        return fnmatchcase(request.action, self.action_pattern or "*")


# --------------------------------------------------------------------------- Slack


class SlackConnection(TenantUniqueValidation, TenantOwned):
    """A tenant's Slack workspace: where approval requests are posted, and how its button
    presses are checked (the app's signing secret). One per tenant; see approvals.slack."""

    team_id = models.CharField(max_length=40, unique=True, help_text="The workspace id (T0…).")
    channel_id = models.CharField(max_length=40, help_text="Channel for approval requests (C0…).")
    bot_token = models.CharField(max_length=200, help_text="The app's bot token (xoxb-…).")
    signing_secret = models.CharField(max_length=200, help_text="The app's signing secret.")
    post_approvals = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                name="slack_connection_one_per_tenant",
                violation_error_message="This tenant is connected to Slack already; edit that.",
            )
        ]

    def __str__(self) -> str:
        return f"Slack {self.team_id} → {self.channel_id}"


class SlackUserLink(TenantUniqueValidation, TenantOwned):
    """The AgentOps user behind a Slack user: whose decision a button press is."""

    slack_user_id = models.CharField(max_length=40)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "slack_user_id"],
                name="slack_user_link_unique",
                violation_error_message="This Slack user is linked already.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.slack_user_id} → {self.user}"


class SlackApprovalMessage(TenantOwned):
    """Where an approval request was posted, so the message can show the decision."""

    request = models.OneToOneField(
        ApprovalRequest, on_delete=models.CASCADE, related_name="slack_message"
    )
    channel_id = models.CharField(max_length=40)
    ts = models.CharField(max_length=40)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.channel_id}/{self.ts}"
