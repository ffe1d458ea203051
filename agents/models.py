"""The run record: run → steps → tool calls → guardrail events, plus per-tenant agent settings.

Field names follow seed 002's telemetry payload (run_id, agent_name, steps[].input_summary,
tool_calls[].args_json/args_hash/error_class/status_code, guardrail_events[], cost), so runs
that other agents send us (telemetry ingest) and our own runs live in the same tables.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from agentops.tenancy import TenantOwned
from approvals.models import TenantUniqueValidation


def new_run_id() -> str:
    return f"run-{uuid.uuid4().hex[:16]}"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING_APPROVAL = "waiting_approval", "Waiting for approval"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ESCALATED = "escalated", "Escalated to a person"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_RUN_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_APPROVAL})
FINISHED_RUN_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.ESCALATED, RunStatus.CANCELLED}
)


class Run(TenantOwned):
    """One execution of a blueprint (ours), or one ingested run of another agent."""

    run_id = models.CharField(max_length=100, default=new_run_id)
    origin = models.CharField(
        max_length=10,
        choices=[("internal", "AgentOps"), ("ingested", "Ingested")],
        default="internal",
    )
    agent_name = models.CharField(max_length=100)  # the blueprint, for our own runs
    agent_version = models.CharField(max_length=40, blank=True)
    model = models.CharField(max_length=100, blank=True)
    environment = models.CharField(max_length=40, default="prod")
    subject_type = models.CharField(max_length=40, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)
    subject_repr = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    state = models.CharField(
        max_length=40, blank=True, help_text="The blueprint state to run next."
    )
    state_data = models.JSONField(default=dict, blank=True, help_text="The blueprint's checkpoint.")
    blueprint_config = models.JSONField(
        default=dict, blank=True, help_text="The blueprint's config and tools for this run."
    )
    input = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_by_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    error_type = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    trace_id = models.CharField(max_length=100, blank=True)
    correlation_ids = models.JSONField(default=list, blank=True)
    tokens_prompt = models.IntegerField(default=0)
    tokens_completion = models.IntegerField(default=0)
    total_cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    latency_ms = models.IntegerField(default=0)
    step_count = models.IntegerField(default=0)
    # Claiming: a task owns the run until lease_expires_at; the watchdog re-enqueues after that.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    deliveries = models.IntegerField(default=0, help_text="Tasks that claimed this run.")
    cancel_requested = models.BooleanField(default=False)
    # Ingested runs: a hash of the telemetry as stored (an RCA of unchanged telemetry is reused)
    # and when it last arrived.
    telemetry_hash = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "run_id"], name="run_unique_run_id"),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="run_tenant_time_idx"),
            models.Index(
                fields=["tenant", "subject_type", "subject_id", "-created_at"],
                name="run_subject_idx",
            ),
            models.Index(fields=["tenant", "status"], name="run_status_idx"),
            models.Index(fields=["status", "lease_expires_at"], name="run_watchdog_idx"),
            models.Index(fields=["tenant", "origin", "-started_at"], name="run_origin_time_idx"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.run_id} {self.agent_name} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES


class Step(TenantOwned):
    """One checkpointed step of a run: what state ran, with what input, and what came out."""

    # Indexed by (run, seq) alone (step_unique_seq): a run's steps are read in that order, the
    # timeline's "changed since" included (a run has a few dozen steps at most). Nothing else
    # indexes the columns a step's updates change, so those updates can be HOT (no index
    # entries written; a step row is written about three times).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps", db_index=False)
    seq = models.IntegerField()
    step_id = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    state = models.CharField(max_length=40, blank=True)
    status = models.CharField(
        max_length=20,
        choices=[
            ("running", "Running"),
            ("success", "Success"),
            ("failure", "Failure"),
            ("waiting", "Waiting"),
        ],
        default="running",
    )
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    input_summary = models.TextField(blank=True)
    output_summary = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)
    retries = models.IntegerField(default=0)
    latency_ms = models.IntegerField(default=0)
    tokens_prompt = models.IntegerField(default=0)
    tokens_completion = models.IntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="step_unique_seq")]
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.name}"


class ToolCall(TenantOwned):
    """One tool call: its arguments (hashed), the policy verdict, and what happened."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        RUNNING = "running", "Running"
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        BLOCKED = "blocked", "Blocked by policy"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        REJECTED = "rejected", "Rejected by reviewer"
        SKIPPED = "skipped", "Skipped"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tool_calls")
    step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.CASCADE, related_name="tool_calls"
    )
    call_id = models.CharField(max_length=100)
    tool_name = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROPOSED)
    args_json = models.JSONField(default=dict, blank=True)
    args_hash = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    policy_verdict = models.CharField(max_length=30, blank=True)
    policy_reason = models.TextField(blank=True)
    result_summary = models.TextField(blank=True)
    result_json = models.JSONField(default=dict, blank=True)
    verified = models.BooleanField(null=True)
    error_class = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    status_code = models.IntegerField(null=True, blank=True)
    retries = models.IntegerField(default=0)
    latency_ms = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["run", "created_at"], name="toolcall_run_idx"),
            models.Index(fields=["tenant", "tool_name", "status"], name="toolcall_tool_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="toolcall_unique_idempotency_key",
            )
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.tool_name} ({self.status})"


class GuardrailEvent(TenantOwned):
    """A guardrail fired: redaction, schema validation, a policy verdict, a model fault …"""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="guardrail_events")
    step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.CASCADE, related_name="guardrail_events"
    )
    tool_call = models.ForeignKey(
        ToolCall, null=True, blank=True, on_delete=models.CASCADE, related_name="guardrail_events"
    )
    event_id = models.CharField(max_length=100)
    type = models.CharField(max_length=40)
    message = models.TextField()
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["run", "created_at"], name="guardrail_run_idx")]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.type}: {self.message[:60]}"


class AgentConfig(TenantOwned):
    """A tenant's agent settings: which model, its limits, and when agents start by themselves."""

    class Backend(models.TextChoices):
        AUTO = "auto", "Claude when a key is set, else offline"
        OFFLINE = "offline", "Offline deterministic model"
        ANTHROPIC = "anthropic", "Claude (Anthropic API)"

    llm_backend = models.CharField(max_length=20, choices=Backend.choices, default=Backend.AUTO)
    llm_model = models.CharField(max_length=100, blank=True, help_text="Empty: ANTHROPIC_MODEL.")
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of an environment variable holding this tenant's API key "
        "(keys are never stored in the database). Empty: ANTHROPIC_API_KEY.",
    )
    requests_per_minute = models.IntegerField(default=50)
    tokens_per_minute = models.IntegerField(default=100_000)
    max_tokens = models.IntegerField(default=1024)
    max_steps = models.IntegerField(
        default=25, help_text="A run stops (escalates) after this many steps."
    )
    auto_resolve_on_create = models.BooleanField(
        default=True, help_text="Start the service-desk agent when a ticket is created."
    )
    authorized_software = models.JSONField(
        default=list,
        blank=True,
        help_text="Software the agents may install without approval (case-insensitive names).",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="agentconfig_one_per_tenant")
        ]

    def __str__(self) -> str:
        return f"Agent settings of {self.tenant}"


class PolicyRule(TenantOwned):
    """A tenant's override of the built-in compliance policy for one action (tool)."""

    class Verdict(models.TextChoices):
        ALLOW = "allow", "Allow"
        NEEDS_APPROVAL = "needs_approval", "Needs approval"
        NEEDS_IDENTITY = "needs_identity_verification", "Needs identity verification"
        BLOCK = "block", "Block"

    action = models.CharField(max_length=100, help_text="A tool name.")
    verdict = models.CharField(max_length=40, choices=Verdict.choices)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "action"], name="policyrule_unique_action")
        ]
        ordering = ["action"]

    def __str__(self) -> str:
        return f"{self.action}: {self.verdict}"


class BlueprintSetting(TenantUniqueValidation, TenantOwned):
    """One tenant's settings for one registered blueprint: enabled, config overrides (keys of
    the blueprint's ``default_config`` only) and a tool allow-list that can only narrow the
    tools the blueprint declares (empty: all of them). No row: the blueprint's defaults."""

    blueprint = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    config = models.JSONField(default=dict, blank=True)
    allowed_tools = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "blueprint"], name="blueprint_setting_unique")
        ]
        ordering = ["blueprint"]

    def __str__(self) -> str:
        return f"{self.blueprint} ({'enabled' if self.enabled else 'disabled'})"


class IngestSecret(TenantOwned):
    """A shared secret another agent sends in ``X-Ingest-Secret`` to deliver its run telemetry.

    Only a SHA-256 hash is stored. At most two are active per tenant, so a sender can move to a
    new secret while the old one still works (rotation); revoking the old one ends it.
    """

    name = models.CharField(max_length=100, default="ingest")
    secret_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({'revoked' if self.revoked_at else 'active'})"


class RcaFeedback(TenantOwned):
    """A person's verdict on an RCA report: right or wrong, with a comment.

    Kept with a copy of the report and the telemetry hash it judged, so the set of labelled
    cases is the analyser's regression set even after the run is sent again.
    """

    rca_run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="rca_feedback")
    target_run_id = models.CharField(max_length=100)
    telemetry_hash = models.CharField(max_length=64, blank=True)
    category = models.CharField(max_length=40)
    correct = models.BooleanField()
    expected_category = models.CharField(max_length=40, blank=True)
    comment = models.TextField(blank=True)
    report = models.JSONField(default=dict, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="rcafeedback_time_idx")]

    def __str__(self) -> str:
        return f"{self.target_run_id}: {self.category} {'right' if self.correct else 'wrong'}"


class StepLatencyRollup(TenantOwned):
    """Ingested steps counted per hour, agent, version and latency bucket (1% wide).

    Kept up to date by the telemetry ingest (a resend moves its old counts out), so the
    metrics' p95 step latency reads a few hundred rows instead of every step of the window.
    """

    hour = models.DateTimeField()
    agent_name = models.CharField(max_length=100)
    agent_version = models.CharField(max_length=40, blank=True)
    bucket = models.SmallIntegerField()
    steps = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "hour", "agent_name", "agent_version", "bucket"],
                name="steprollup_unique_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.agent_name} {self.agent_version} b{self.bucket}"
