"""Daily rollups: one row per tenant, day and queue (tickets), per blueprint (agent runs), and
per tenant (approvals). Written only by ``incidents.analytics.rollups``."""

from __future__ import annotations

from django.db import models

from agentops.tenancy import TenantOwned

# Step latency histogram bucket upper bounds (ms); the last bucket is everything above.
LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


class DailyTicketStat(TenantOwned):
    """A day of one queue's tickets (``queue_ref`` 0: tickets in no queue). Counts are by the
    day the thing happened: opened by created_at, resolved by resolved_at, SLA by sla_due,
    CSAT by csat_at; ``backlog`` is the open tickets at the end of the day."""

    day = models.DateField()
    queue_ref = models.PositiveIntegerField(default=0, help_text="Queue id, 0 for none.")
    opened = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(
        default=0, help_text="Of those opened: triaged to a person, or escalated."
    )
    resolved = models.PositiveIntegerField(default=0)
    auto_resolved = models.PositiveIntegerField(
        default=0, help_text="Of those resolved: triaged to the agent, no person assigned."
    )
    resolve_seconds = models.BigIntegerField(default=0, help_text="Sum of created → resolved.")
    cancelled = models.PositiveIntegerField(default=0)
    sla_due = models.PositiveIntegerField(default=0)
    sla_breached = models.PositiveIntegerField(default=0)
    csat_count = models.PositiveIntegerField(default=0)
    csat_sum = models.PositiveIntegerField(default=0)
    backlog = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "queue_ref"], name="analytics_ticket_day_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} queue {self.queue_ref}: {self.opened} opened"


class DailyAgentStat(TenantOwned):
    """A day of one blueprint's runs (by the day they were created)."""

    day = models.DateField()
    agent_name = models.CharField(max_length=100)
    runs = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(default=0)
    steps = models.PositiveIntegerField(default=0)
    latency_hist = models.JSONField(default=list, help_text="Step latency counts per bucket.")
    tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    refreshed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "agent_name"], name="analytics_agent_day_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.agent_name}: {self.runs} runs"


class DailyApprovalStat(TenantOwned):
    """A day of approval decisions (by decided_at): how many met their SLA."""

    day = models.DateField()
    decided = models.PositiveIntegerField(default=0)
    within_sla = models.PositiveIntegerField(default=0)
    expired = models.PositiveIntegerField(default=0)
    decide_seconds = models.BigIntegerField(default=0)
    refreshed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day"], name="analytics_approval_day_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day}: {self.within_sla}/{self.decided} within SLA"
