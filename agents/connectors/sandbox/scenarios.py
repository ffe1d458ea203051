"""Fault scenarios for the sandbox (seed 001's test-data generator), domain-free.

``generate(tenant, name)`` sets up the scenario's services (upserted by name), their deploy
history and an hour of telemetry in which the fault starts ``FAULT_MINUTES`` ago, and returns
what a monitoring system would say about it (title, description, severity, affected
services). Opening the incident is the caller's job (``incidents`` does it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents.connectors.sandbox.faults import write_samples
from agents.connectors.sandbox.models import Deploy, LogLine, MetricPoint, MonitoredService, Span

HISTORY_MINUTES = 60
FAULT_MINUTES = 15


@dataclass(frozen=True)
class Scenario:
    """One fault scenario: the faulty service, its neighbours and the alert text."""

    fault: str
    service: str
    title: str
    severity: str  # sev1 … sev4, as the alert rates it
    team: str
    depends_on: tuple[str, ...] = ()
    standby_region: str = "eu-central-1"
    extra: dict[str, Any] = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {
    "bad_deploy": Scenario(
        "bad_deploy", "checkout", "checkout: 5xx errors above 30 %", "sev2", "payments-team"
    ),
    "db_pool_exhaustion": Scenario(
        "db_pool_exhaustion", "orders", "orders: latency and errors under load", "sev2", "orders"
    ),
    "memory_leak": Scenario(
        "memory_leak", "inventory", "inventory: pods restarting, errors rising", "sev3", "stock"
    ),
    "certificate_expiry": Scenario(
        "certificate_expiry", "edge-api", "edge-api: requests failing", "sev1", "platform"
    ),
    "dependency_timeout": Scenario(
        "dependency_timeout",
        "payments",
        "payments: checkout payments failing",
        "sev2",
        "payments-team",
        depends_on=("bank-gateway",),
    ),
    "disk_full": Scenario(
        "disk_full", "search-indexer", "search-indexer: writes failing", "sev3", "search"
    ),
}


def _service(tenant, name: str, **fields) -> MonitoredService:
    row, _ = MonitoredService.objects.for_tenant(tenant).update_or_create(
        tenant=tenant, name=name, defaults=fields
    )
    return row


def _wipe(tenant, names: list[str]) -> None:
    """A scenario starts from a clean slate for its services (re-running it is repeatable)."""
    for model in (MetricPoint, LogLine, Deploy):
        model.objects.for_tenant(tenant).filter(service__in=names).delete()
    Span.objects.for_tenant(tenant).filter(service__in=names).delete()


def _deploy(tenant, service: str, version: str, at: datetime, author: str, summary: str):
    Deploy.objects.create(
        tenant=tenant, service=service, version=version, at=at, author=author, summary=summary
    )


@transaction.atomic
def generate(tenant, name: str, *, ineffective: bool = False, now: datetime | None = None):
    """Write the scenario into the tenant's sandbox; see the module doc. ``ineffective``
    makes the fault survive its usual remediation (for escalation drills)."""
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    spec = SCENARIOS[name]
    now = now or timezone.now()
    since = now - timedelta(minutes=FAULT_MINUTES)
    start = now - timedelta(minutes=HISTORY_MINUTES - 1)  # the last sample is now
    names = [spec.service, *spec.depends_on]
    _wipe(tenant, names)
    old_version, version = "4.2.0", "4.2.0"
    fault: dict[str, Any] = {"kind": spec.fault, "since": since.isoformat()}
    if ineffective:
        fault["ineffective"] = True
    for dependency in spec.depends_on:
        dep = _service(
            tenant, dependency, owner_team="partners", replicas=2, version="2.0.3",
            depends_on=[], region="eu-west-1", standby_region="eu-west-2", fault={},
        )  # fmt: skip
        fault.update(dependency=dependency, healthy_region=dep.standby_region)
        _deploy(tenant, dependency, "2.0.3", now - timedelta(days=6), "ci-bot", "Routine release")
    _deploy(tenant, spec.service, old_version, now - timedelta(days=3), "ci-bot", "Routine release")
    if spec.fault == "bad_deploy":
        version = "4.3.0"
        fault["bad_version"] = version
        at = since - timedelta(minutes=2)
        _deploy(tenant, spec.service, version, at, "dana@example.com", "New discount rules")
    if spec.fault == "db_pool_exhaustion":
        fault["replicas_at_fault"] = 3
    if spec.fault == "certificate_expiry":
        fault["healthy_region"] = spec.standby_region
    row = _service(
        tenant, spec.service, owner_team=spec.team, version=version, region="eu-west-1",
        replicas=3, depends_on=list(spec.depends_on), standby_region=spec.standby_region,
        fault=fault, restarted_at=None, cache_cleared_at=None,
    )  # fmt: skip
    for service in MonitoredService.objects.for_tenant(tenant).filter(name__in=names):
        write_samples(service, start, count=HISTORY_MINUTES, step=timedelta(minutes=1))
    return {
        "scenario": name,
        "service": row.name,
        "title": spec.title,
        "severity": spec.severity,
        "affected_services": [spec.service],
        "description": (
            f"Alert from monitoring: {spec.title}. Error rate on {spec.service} above the "
            f"5 % threshold since {since:%H:%M} UTC. Owner: {spec.team}."
        ),
    }
