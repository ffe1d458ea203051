"""Reads of the sandbox state for the console, always scoped to one tenant."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from agents.connectors.sandbox.models import (
    Device,
    DirectoryUser,
    LogLine,
    MonitoredService,
    Operation,
)

CONSOLE_ROWS = 200
RECENT_OPERATIONS = 15


def directory_users(tenant, *, q: str = "") -> QuerySet[DirectoryUser]:
    users = DirectoryUser.objects.for_tenant(tenant)
    for term in q.split():
        users = users.filter(
            Q(email__icontains=term)
            | Q(display_name__icontains=term)
            | Q(department__icontains=term)
        )
    return users.order_by("display_name", "email")


def devices(tenant, *, q: str = "") -> QuerySet[Device]:
    found = Device.objects.for_tenant(tenant)
    for term in q.split():
        found = found.filter(
            Q(asset_tag__icontains=term)
            | Q(hostname__icontains=term)
            | Q(owner_email__icontains=term)
            | Q(model__icontains=term)
            | Q(os__icontains=term)
        )
    return found.order_by("asset_tag")


def recent_operations(tenant, *, limit: int = RECENT_OPERATIONS) -> list[Operation]:
    return list(Operation.objects.for_tenant(tenant).order_by("-created_at", "-id")[:limit])


def operations(tenant, *, q: str = "") -> QuerySet[Operation]:
    """Applied operations, newest first; search by operation, connector or result summary."""
    found = Operation.objects.for_tenant(tenant)
    for term in q.split():
        found = found.filter(
            Q(operation__icontains=term)
            | Q(connector__icontains=term)
            | Q(result__summary__icontains=term)
        )
    return found.order_by("-created_at", "-id")


def log_lines(tenant, *, q: str = "") -> QuerySet[LogLine]:
    """Monitored services' log lines, newest first; search by service, level or message."""
    found = LogLine.objects.for_tenant(tenant)
    for term in q.split():
        found = found.filter(
            Q(service__icontains=term) | Q(level__iexact=term) | Q(message__icontains=term)
        )
    return found.order_by("-created_at", "-id")


def monitored_services(tenant, *, q: str = "") -> QuerySet[MonitoredService]:
    """Monitored services with their shape and injected fault; search by name or team."""
    found = MonitoredService.objects.for_tenant(tenant)
    for term in q.split():
        found = found.filter(Q(name__icontains=term) | Q(owner_team__icontains=term))
    return found.order_by("name")
