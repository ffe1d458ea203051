"""Contract SLAs: business calendars (per tenant, optionally per queue) and each ticket's clock.

Imported by ``incidents.models`` so Django finds them; the logic is in ``incidents.sla``.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone as dj_timezone

from agentops.tenancy import TenantOwned
from incidents.models import Queue, Ticket


def default_week() -> dict:
    return {str(day): [["09:00", "17:00"]] for day in range(5)}


class BusinessCalendar(TenantOwned):
    """When a tenant's SLA clocks run: weekly working hours in a time zone, minus public
    holidays (by country and subdivision) and the tenant's own closed days. The calendar with no
    queue is the tenant's default; one with a queue applies to that queue's tickets. A tenant
    with no calendar keeps wall-clock SLAs."""

    name = models.CharField(max_length=100, default="Business hours")
    queue = models.OneToOneField(
        Queue,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="business_calendar",
        help_text="Empty: the tenant's default calendar.",
    )
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="IANA name, e.g. Europe/Paris"
    )
    working_hours = models.JSONField(
        default=default_week,
        help_text='Weekday (0 = Monday) → intervals, e.g. {"0": [["09:00", "17:00"]]}.',
    )
    holiday_country = models.CharField(max_length=8, blank=True, help_text="e.g. US, FR, GB")
    holiday_subdivision = models.CharField(max_length=16, blank=True, help_text="e.g. CA, ENG")
    closed_days = ArrayField(models.DateField(), default=list, blank=True)
    sla_hours = models.JSONField(
        default=dict,
        blank=True,
        help_text="Business hours to resolve, by priority; empty: the tenant's SLA hours.",
    )
    created_at = models.DateTimeField(default=dj_timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(queue__isnull=True),
                name="business_calendar_one_default",
                violation_error_message="This tenant has a default calendar already.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.timezone})"

    def hours(self):
        from incidents.sla_time import Hours

        return Hours(
            tz=self.timezone,
            week=self.working_hours,
            country=self.holiday_country,
            subdivision=self.holiday_subdivision,
            closed=frozenset(self.closed_days or ()),
        )

    def clean(self):
        from incidents.sla_time import CalendarError

        try:
            self.hours().intervals_on(dj_timezone.now().date())
        except CalendarError as exc:
            raise ValidationError(str(exc)) from exc
        if self.queue_id and self.queue.tenant_id != self.tenant_id:
            raise ValidationError({"queue": "Another tenant's queue."})


class TicketSLA(TenantOwned):
    """One ticket's SLA clock in business time: paused while waiting on the requester, warned
    at 75 % of the target, breached at 100 %, escalated by the tenant's escalation policy."""

    ticket = models.OneToOneField(Ticket, on_delete=models.CASCADE, related_name="sla_clock")
    calendar = models.ForeignKey(
        BusinessCalendar, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_seconds = models.FloatField(help_text="Business seconds allowed.")
    consumed_seconds = models.FloatField(
        default=0, help_text="Business seconds used before the current running stretch."
    )
    running_since = models.DateTimeField(null=True, blank=True)
    paused = models.BooleanField(default=False)
    stopped_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    warn_at = models.DateTimeField(null=True, blank=True)
    warned_at = models.DateTimeField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "warn_at"], name="ticket_sla_warn_idx"),
            models.Index(fields=["tenant", "due_at"], name="ticket_sla_due_idx"),
        ]

    def __str__(self) -> str:
        return f"SLA of ticket {self.ticket_id}"
