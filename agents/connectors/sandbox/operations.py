"""The sandbox's running services: remediation operations, deploy history, span traces.

``SandboxOperationsConnector`` applies restart / scale / rollback / clear-cache / failover to
``MonitoredService`` rows once per idempotency key (``SandboxConnector._apply``). Each then
really changes what monitoring reads next: the fault is cleared when the operation addresses
it (``faults.clears``), and fresh samples are written from now on for every service the
change touches, so a verification query sees the error rate fall, or not.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db.models import Count, Max
from django.utils import timezone

from agents.connectors.base import NotFound, OperationsConnector
from agents.connectors.sandbox import faults
from agents.connectors.sandbox.connector import SandboxConnector, _iso, _percentile, _result
from agents.connectors.sandbox.models import Deploy, MonitoredService, Span

FRESH_SAMPLES = 3  # written after an operation, a few seconds apart, ending now
SAMPLE_SPANS = 5


def service_state(tenant, row: MonitoredService) -> dict[str, Any]:
    dependents = sorted(
        s.name
        for s in MonitoredService.objects.for_tenant(tenant).exclude(pk=row.pk)
        if row.name in (s.depends_on or [])
    )
    return {
        "service": row.name,
        "owner_team": row.owner_team,
        "version": row.version,
        "replicas": row.replicas,
        "region": row.region,
        "standby_region": row.standby_region,
        "depends_on": list(row.depends_on or []),
        "dependents": dependents,
        "restarted_at": _iso(row.restarted_at),
        "cache_cleared_at": _iso(row.cache_cleared_at),
    }


class SandboxOperationsConnector(SandboxConnector, OperationsConnector):
    """Operations on ``MonitoredService`` rows, each recorded in ``Operation``."""

    def _rows(self):
        return MonitoredService.objects.for_tenant(self.tenant)

    def _locker(self, service: str) -> Callable[[], MonitoredService]:
        def lock() -> MonitoredService:
            row = self._rows().select_for_update().filter(name=service).first()
            if row is None:
                known = ", ".join(self._rows().values_list("name", flat=True)) or "none"
                raise NotFound(f"No monitored service {service!r}. Known: {known}.")
            return row

        return lock

    def get_service(self, service: str) -> dict[str, Any] | None:
        row = self._rows().filter(name=service).first()
        return service_state(self.tenant, row) if row else None

    def _operate(self, operation: str, service: str, args: dict, key: str, change) -> dict:
        def apply(row: MonitoredService) -> dict[str, Any]:
            before = service_state(self.tenant, row)
            summary = change(row)
            row.save()
            fixed = self._settle(row, operation, {"service": service, **args})
            state = service_state(self.tenant, row)
            return _result(summary, before=before, after=state, faults_cleared=fixed)

        return self._apply(
            operation=operation,
            args={"service": service, **args},
            idempotency_key=key,
            lock=self._locker(service),
            change=apply,
        )

    def _settle(self, row: MonitoredService, operation: str, args: dict) -> list[str]:
        """Clear the faults this operation addresses (on the row, or on the services whose
        calls to it time out) and write fresh samples for every service it touched."""
        touched = [row] + [
            s
            for s in self._rows().select_for_update().exclude(pk=row.pk)
            if (s.fault or {}).get("dependency") == row.name
        ]
        cleared = []
        for service in touched:
            if faults.clears(service.fault or {}, row, operation, args):
                cleared.append(f"{service.name}: {service.fault['kind']}")
                service.fault = {}
                service.save(update_fields=["fault", "updated_at"])
        now = timezone.now()
        step = timedelta(seconds=1)
        for service in touched:
            faults.write_samples(
                service, now - step * (FRESH_SAMPLES - 1), count=FRESH_SAMPLES, step=step
            )
        return cleared

    def restart_service(self, service: str, *, idempotency_key: str) -> dict[str, Any]:
        def change(row):
            row.restarted_at = timezone.now()
            return f"Restarted {row.replicas} replica(s) of {row.name}."

        return self._operate("restart_service", service, {}, idempotency_key, change)

    def scale_service(self, service: str, replicas: int, *, idempotency_key: str) -> dict:
        def change(row):
            old, row.replicas = row.replicas, replicas
            return f"Scaled {row.name} from {old} to {replicas} replica(s)."

        args = {"replicas": replicas}
        return self._operate("scale_service", service, args, idempotency_key, change)

    def rollback_deploy(self, service: str, to_version: str, *, idempotency_key: str) -> dict:
        def change(row):
            known = Deploy.objects.for_tenant(self.tenant).filter(service=row.name)
            if not known.filter(version=to_version, rollback=False).exists():
                raise NotFound(f"{row.name} was never deployed at version {to_version!r}.")
            old, row.version = row.version, to_version
            Deploy.objects.create(
                tenant=self.tenant,
                service=row.name,
                version=to_version,
                author="agentops",
                summary=f"Rollback from {old}",
                rollback=True,
            )
            return f"Rolled {row.name} back from {old} to {to_version}."

        args = {"to_version": to_version}
        return self._operate("rollback_deploy", service, args, idempotency_key, change)

    def clear_cache(self, service: str, *, idempotency_key: str) -> dict[str, Any]:
        def change(row):
            row.cache_cleared_at = timezone.now()
            return f"Cleared the caches of {row.name} on {row.replicas} replica(s)."

        return self._operate("clear_cache", service, {}, idempotency_key, change)

    def failover(self, service: str, region: str, *, idempotency_key: str) -> dict[str, Any]:
        def change(row):
            if region not in (row.standby_region, row.region):
                raise NotFound(f"{row.name} has no deployment in region {region!r}.")
            old = row.region
            if region != old:
                row.region, row.standby_region = region, old
            return f"Failed {row.name} over from {old} to {region}."

        return self._operate("failover", service, {"region": region}, idempotency_key, change)


# --------------------------------------------------------------------------- monitoring reads


def get_deploys(tenant, service: str, minutes: int) -> dict[str, Any]:
    row = MonitoredService.objects.for_tenant(tenant).filter(name=service).first()
    if row is None:
        known = ", ".join(
            MonitoredService.objects.for_tenant(tenant).values_list("name", flat=True)
        )
        raise NotFound(f"No monitored service {service!r}. Known: {known or 'none'}.")
    since = timezone.now() - timedelta(minutes=minutes)
    history = Deploy.objects.for_tenant(tenant).filter(service=service)
    recent = [_deploy(d) for d in history.filter(at__gte=since).order_by("at", "id")]
    previous = history.filter(at__lt=since, rollback=False).order_by("-at").first()
    listed = "; ".join(
        f"{d['version']} at {d['at'][11:16]} by {d['author']}"
        + (" (rollback)" if d["rollback"] else "")
        for d in recent
    )
    return _result(
        f"{service}: {len(recent)} deploy(s) in the last {minutes} min"
        + (f": {listed}" if listed else "")
        + f". Running {row.version} on {row.replicas} replica(s) in {row.region}.",
        service=service,
        minutes=minutes,
        deploys=recent,
        previous=_deploy(previous) if previous else None,
        current=service_state(tenant, row),
    )


def _deploy(deploy: Deploy) -> dict[str, Any]:
    return {
        "version": deploy.version,
        "at": _iso(deploy.at),
        "author": deploy.author,
        "summary": deploy.summary,
        "rollback": deploy.rollback,
    }


def span_traces(tenant, service: str, minutes: int) -> dict[str, Any] | None:
    """Traces from recorded spans: slowest and failing roots, and each downstream service's
    call durations (the slow one stands out). None when the service recorded no spans."""
    since = timezone.now() - timedelta(minutes=minutes)
    spans = Span.objects.for_tenant(tenant).filter(at__gte=since)
    roots = spans.filter(service=service, parent_id="")
    if not roots.exists():
        return None
    durations = list(roots.values_list("duration_ms", flat=True))
    failing = list(roots.exclude(error="").order_by("-at")[:SAMPLE_SPANS])
    slowest = list(roots.order_by("-duration_ms", "-at")[:SAMPLE_SPANS])
    trace_ids = roots.values("trace_id")
    downstream = []
    for row in (
        spans.filter(trace_id__in=trace_ids)
        .exclude(parent_id="")
        .values("service")
        .annotate(calls=Count("id"), max_ms=Max("duration_ms"))
        .order_by("service")
    ):
        calls = spans.filter(trace_id__in=trace_ids, service=row["service"]).exclude(parent_id="")
        values = list(calls.values_list("duration_ms", flat=True))
        downstream.append(
            {
                "service": row["service"],
                "calls": row["calls"],
                "p95_ms": _percentile(values, 0.95),
                "max_ms": row["max_ms"],
                "errors": calls.exclude(error="").count(),
                "timeout_ms": faults.DOWNSTREAM_TIMEOUT_MS,
                "at_timeout": sum(v >= faults.DOWNSTREAM_TIMEOUT_MS for v in values),
            }
        )
    p95 = _percentile(durations, 0.95)
    slow = [d["service"] for d in downstream if d["at_timeout"]]
    return _result(
        f"{service}: {len(durations)} trace(s) in the last {minutes} min, {roots.exclude(error='').count()} "
        f"with errors, p95 latency {p95} ms"
        + (f"; downstream at the timeout: {', '.join(slow)}" if slow else "")
        + ".",
        service=service,
        minutes=minutes,
        traces=len(durations),
        error_traces=roots.exclude(error="").count(),
        p95_latency_ms=p95,
        slowest=[
            {"trace_id": s.trace_id, "latency_ms": s.duration_ms, "operation": s.operation}
            for s in slowest
        ],
        failing=[{"trace_id": s.trace_id, "first_error": s.error[:200]} for s in failing],
        downstream=downstream,
    )
