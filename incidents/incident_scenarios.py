"""Generated incidents (seed 001's test-data generator): write a fault scenario into the
tenant's sandbox and open the incident as monitoring would. Used by
``manage.py generate_incidents`` and the sandbox page's form."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from agents.connectors.sandbox import scenarios
from incidents.models import Category, Kind, Source, Ticket
from incidents.services import ticket_create

PRIORITY = {"sev1": "critical", "sev2": "high", "sev3": "medium", "sev4": "low"}
NAMES = tuple(scenarios.SCENARIOS)
MONITORING_EMAIL = "alerts@monitoring.invalid"  # who "reported" it: the monitoring system


@transaction.atomic
def generate_incident(
    *, tenant, actor, scenario: str, ineffective: bool = False, start_agent: bool | None = True
) -> Ticket:
    """Write ``scenario`` (one of ``NAMES``) and open its incident; ``ineffective`` makes the
    usual remediation not help (the incident must then be escalated, not closed)."""
    if scenario not in scenarios.SCENARIOS:
        raise ValidationError({"scenario": f"Unknown scenario. Choose one of: {', '.join(NAMES)}."})
    alert = scenarios.generate(tenant, scenario, ineffective=ineffective)
    return ticket_create(
        tenant=tenant,
        actor=actor,
        title=alert["title"],
        description=alert["description"],
        kind=Kind.INCIDENT,
        requester_email=MONITORING_EMAIL,
        category=Category.INFRASTRUCTURE,
        priority=PRIORITY[alert["severity"]],
        severity=alert["severity"],
        affected_services=alert["affected_services"],
        detected_by="monitoring",
        source=Source.API,
        start_agent=start_agent,
        audit_metadata={"scenario": scenario, "ineffective": ineffective},
    )
