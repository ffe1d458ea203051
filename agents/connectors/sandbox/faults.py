"""Fault injection for the sandbox's monitored services: what a fault looks like in the
logs, metrics and spans, and which operation clears it.

Domain-free: it knows services, faults and telemetry, nothing about tickets. ``write_samples``
writes one minute of consistent telemetry per step for a service from its *current* row (its
fault, version, replicas), so whatever an operation changed shows in what monitoring reads
next. ``clears`` says whether an operation addresses the fault; a fault marked
``ineffective`` survives every operation (the generator's switch for escalation drills).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

from agents.connectors.sandbox.models import LogLevel, LogLine, MetricPoint, MonitoredService, Span

# The request timeout every service applies to its downstream calls, in ms.
DOWNSTREAM_TIMEOUT_MS = 5000
HEALTHY = {
    "error_rate": 0.004,
    "latency_p95_ms": 180.0,
    "requests_per_min": 1200.0,
    "memory_used_pct": 46.0,
    "disk_used_pct": 54.0,
    "db_pool_in_use_pct": 35.0,
}


@dataclass(frozen=True)
class FaultKind:
    """How one class of fault shows, and the operation that clears it."""

    fixed_by: str
    metrics: dict[str, float]  # metric → value while the fault is active
    message: str  # the error log line ({service}, {dependency}, {version}, {since} filled in)


FAULT_KINDS: dict[str, FaultKind] = {
    "bad_deploy": FaultKind(
        "rollback_deploy",
        {"error_rate": 0.31, "latency_p95_ms": 240.0},
        "Unhandled NullPointerException in RequestHandler.apply (release {version})",
    ),
    "db_pool_exhaustion": FaultKind(
        "scale_service",
        {
            "error_rate": 0.18,
            "latency_p95_ms": 3100.0,
            "requests_per_min": 3900.0,
            "db_pool_in_use_pct": 100.0,
        },
        "Timed out after 3000 ms waiting for a database connection from the pool "
        "(20 of 20 connections in use)",
    ),
    "memory_leak": FaultKind(
        "restart_service",
        {"error_rate": 0.14, "latency_p95_ms": 900.0, "memory_used_pct": 97.0},
        "java.lang.OutOfMemoryError: Java heap space; container OOMKilled and restarted",
    ),
    "certificate_expiry": FaultKind(
        "failover",
        {"error_rate": 0.62},
        "TLS handshake failed: x509: certificate has expired (notAfter {since})",
    ),
    "dependency_timeout": FaultKind(
        "failover",
        {"error_rate": 0.27, "latency_p95_ms": 5150.0},
        "Call to {dependency} timed out after 5000 ms (deadline exceeded)",
    ),
    "disk_full": FaultKind(
        "clear_cache",
        {"error_rate": 0.22, "disk_used_pct": 99.9},
        "write failed: No space left on device (/var/lib/{service}/cache)",
    ),
}


def _since(fault: dict[str, Any]) -> datetime | None:
    return parse_datetime(fault["since"]) if fault.get("since") else None


def active_at(service: MonitoredService, at: datetime) -> dict[str, Any] | None:
    """The service's fault if it is active at ``at``."""
    fault = service.fault or {}
    since = _since(fault)
    if not fault.get("kind") or since is None or at < since:
        return None
    return fault


def _jitter(seed: str, spread: float) -> float:
    """A deterministic wobble in [-spread, spread] so series look real and tests repeat."""
    digest = int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16)
    return (digest / 0xFFFFFFFF * 2 - 1) * spread


def metric_values(service: MonitoredService, at: datetime, fault: dict | None) -> dict[str, float]:
    values = dict(HEALTHY)
    if fault:
        values.update(FAULT_KINDS[fault["kind"]].metrics)
        if fault["kind"] == "memory_leak":  # climbs since the leak began, capped at 99 %
            minutes = (at - _since(fault)).total_seconds() / 60
            values["memory_used_pct"] = min(99.0, 80.0 + minutes * 1.5)
    key = f"{service.name}:{at.isoformat()}"
    return {
        name: round(max(0.0, value * (1 + _jitter(f"{key}:{name}", 0.05))), 4)
        for name, value in values.items()
    }


def _message(service: MonitoredService, fault: dict[str, Any]) -> str:
    return FAULT_KINDS[fault["kind"]].message.format(
        service=service.name,
        dependency=fault.get("dependency", ""),
        version=service.version,
        since=fault.get("since", ""),
    )


def write_samples(
    service: MonitoredService, start: datetime, *, count: int, step: timedelta
) -> None:
    """Write ``count`` samples from ``start`` on (metrics, log lines, one trace each)."""
    points, lines, spans = [], [], []
    tenant = service.tenant
    for index in range(count):
        at = start + step * index
        fault = active_at(service, at)
        values = metric_values(service, at, fault)
        points += [
            MetricPoint(tenant=tenant, service=service.name, metric=name, value=value, at=at)
            for name, value in values.items()
        ]
        trace_id = hashlib.sha256(f"{service.name}:{at.isoformat()}".encode()).hexdigest()[:32]
        latency = int(values["latency_p95_ms"])
        status = "500" if fault else "200"
        lines.append(
            LogLine(
                tenant=tenant,
                service=service.name,
                level=LogLevel.INFO,
                message=f"GET /api/{service.name} {status} in {latency} ms ({service.version})",
                trace_id=trace_id,
                latency_ms=latency,
                created_at=at,
            )
        )
        if fault:
            lines += [
                LogLine(
                    tenant=tenant,
                    service=service.name,
                    level=LogLevel.ERROR,
                    message=_message(service, fault),
                    trace_id=trace_id,
                    latency_ms=latency,
                    created_at=at + timedelta(milliseconds=ms),
                )
                for ms in (1, 2)
            ]
        spans += _trace(service, trace_id, at, latency, fault)
    MetricPoint.objects.bulk_create(points)
    LogLine.objects.bulk_create(lines)
    Span.objects.bulk_create(spans)


def _trace(service, trace_id, at, latency, fault) -> list[Span]:
    """A root span for the request and one child span per downstream dependency."""
    root = Span(
        tenant=service.tenant,
        trace_id=trace_id,
        span_id=trace_id[:16],
        service=service.name,
        operation=f"GET /api/{service.name}",
        duration_ms=latency,
        error=_message(service, fault)[:300] if fault else "",
        at=at,
    )
    children = []
    for index, dependency in enumerate(service.depends_on or []):
        slow = bool(fault and fault.get("dependency") == dependency)
        children.append(
            Span(
                tenant=service.tenant,
                trace_id=trace_id,
                span_id=f"{trace_id[16:31]}{index}",
                parent_id=root.span_id,
                service=dependency,
                operation=f"call {dependency}",
                duration_ms=DOWNSTREAM_TIMEOUT_MS if slow else int(latency * 0.4),
                error="deadline exceeded" if slow else "",
                at=at,
            )
        )
    return [root, *children]


def clears(fault: dict[str, Any], service: MonitoredService, operation: str, args: dict) -> bool:
    """Whether ``operation`` on ``service`` (already applied to the row) removes ``fault``."""
    if not fault.get("kind") or fault.get("ineffective"):
        return False
    if FAULT_KINDS[fault["kind"]].fixed_by != operation:
        return False
    if operation == "rollback_deploy":
        return args.get("to_version") != fault.get("bad_version")
    if operation == "scale_service":
        return int(args.get("replicas", 0)) > int(fault.get("replicas_at_fault", 0))
    if operation == "failover":
        return args.get("region") == fault.get("healthy_region")
    return True
