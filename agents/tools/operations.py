"""Remediation tools through the operations connector, and get_deploys (monitoring).

Each remediation names a service and a ``reason`` (the approver reads it), affects no person
(no target), is applied once per idempotency key by the connector, and ``verify`` reads the
service back to see the change took. ``blast_radius(ctx, args)`` says in words what the
change disturbs (replicas restarted, dependents affected, expected disruption); approval
cards show it beside the hypothesis.
"""

from __future__ import annotations

from typing import Any

from agents.connectors.base import OPERATIONS
from agents.tools.base import ToolContext, ToolError
from agents.tools.builtin import (
    MINUTES,
    REASON,
    SERVICE,
    ConnectorTool,
    MonitoringTool,
    _ok,
    schema,
)

VERSION = {
    "type": "string",
    "pattern": r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,39}$",
    "description": "a version that was deployed before, like 4.2.0",
}
REGION = {
    "type": "string",
    "pattern": r"^[a-z]{2}-[a-z]+-[0-9]$",
    "description": "a region name, like eu-central-1",
}
REPLICAS = {"type": "integer", "minimum": 1, "maximum": 100, "description": "replica count"}


class GetDeploys(MonitoringTool):
    name = "get_deploys"
    description = (
        "A service's deploys and rollbacks in the last minutes (version, time, author), the "
        "version deployed before them, and the service's current shape (version, replicas, "
        "region, standby region, dependencies, dependents)."
    )
    input_schema = schema({"service": SERVICE, "minutes": MINUTES})

    def perform(self, ctx, conn, args):
        return _ok(conn.get_deploys(args["service"], args["minutes"]))


class RemediationTool(ConnectorTool):
    """Changes a running service; ``disruption`` is what the blast radius promises."""

    connector = OPERATIONS
    disruption = ""
    extra: dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.input_schema = schema({"service": SERVICE, **cls.extra, "reason": REASON})

    def call_args(self, args: dict[str, Any]) -> dict[str, Any]:
        return {name: args[name] for name in self.extra}

    def perform(self, ctx, conn, args):
        method = getattr(conn, self.name)
        return _ok(
            method(args["service"], **self.call_args(args), idempotency_key=ctx.idempotency_key)
        )

    def check(self, ctx, conn, args, result):
        state = conn.get_service(args["service"])
        return state is not None and self.holds(state, args)

    def holds(self, state: dict[str, Any], args: dict[str, Any]) -> bool:
        return True

    def blast_radius(self, ctx: ToolContext, args: dict[str, Any]) -> str:
        """What this call disturbs, in words, from the service's current shape."""
        try:
            state = self.connect(ctx).get_service(args.get("service", ""))
        except ToolError as exc:
            return f"Unknown: {exc}"
        if state is None:
            return f"Unknown service {args.get('service')!r}: nothing would change."
        dependents = ", ".join(state["dependents"]) or "none"
        return (
            f"{state['service']} ({state['replicas']} replica(s), {state['version']}, "
            f"{state['region']}): {self.disruption.format(**{**args, **state})} "
            f"Dependents affected: {dependents}."
        )


class RestartService(RemediationTool):
    name = "restart_service"
    description = "Restart every replica of a service (rolling). Clears leaked memory."
    disruption = "{replicas} replica(s) restarted one at a time; in-flight requests retried."

    def holds(self, state, args):
        return bool(state["restarted_at"])


class ScaleService(RemediationTool):
    name = "scale_service"
    description = "Set a service's replica count (more replicas: more capacity and connections)."
    extra = {"replicas": REPLICAS}
    disruption = "replicas go from {replicas} to the requested count; no restart of running ones."

    def blast_radius(self, ctx, args):
        text = super().blast_radius(ctx, args)
        return f"{text} Requested: {args.get('replicas')} replica(s)."

    def holds(self, state, args):
        return state["replicas"] == args["replicas"]


class RollbackDeploy(RemediationTool):
    name = "rollback_deploy"
    description = "Roll a service back to a version deployed before (records a rollback deploy)."
    extra = {"to_version": VERSION}
    disruption = "all {replicas} replica(s) redeployed at {to_version}; changes since are undone."

    def holds(self, state, args):
        return state["version"] == args["to_version"]


class ClearCache(RemediationTool):
    name = "clear_cache"
    description = "Clear a service's local caches and temporary files (frees disk and memory)."
    disruption = "caches on {replicas} replica(s) emptied; expect slower requests while warming."

    def holds(self, state, args):
        return bool(state["cache_cleared_at"])


class Failover(RemediationTool):
    name = "failover"
    description = "Move a service's traffic to another of its regions (its standby region)."
    extra = {"region": REGION}
    disruption = "all traffic of {service} moves from {region} to {standby_region}; brief errors."

    def holds(self, state, args):
        return state["region"] == args["region"]


OPERATIONS_TOOLS = (GetDeploys, RestartService, ScaleService, RollbackDeploy, ClearCache, Failover)
REMEDIATION_TOOLS = tuple(t.name for t in OPERATIONS_TOOLS if issubclass(t, RemediationTool))
