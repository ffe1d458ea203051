"""Reading runs for the telemetry API and the replay: filters and the merged timeline.

Every query starts from ``agents.selectors.runs_visible_to`` (the one gate of runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from agents.models import GuardrailEvent, Run, RunStatus, Step, ToolCall
from agents.selectors import runs_visible_to
from agents.telemetry.evidence import call_ev, guard_ev, run_ev, step_ev

# Seed 002 says success/failure; our runs say succeeded/failed. Both are accepted as filters.
WIRE_STATUS = {RunStatus.SUCCEEDED: "success", RunStatus.FAILED: "failure"}
STATUS_FILTER = {
    "success": RunStatus.SUCCEEDED,
    "failure": RunStatus.FAILED,
    **{value: value for value in RunStatus.values},
}


def wire_status(status: str) -> str:
    return WIRE_STATUS.get(status, status)


@dataclass
class RunFilters:
    agent: str = ""
    version: str = ""
    environment: str = ""
    status: str = ""
    origin: str = ""
    since: datetime | None = None
    until: datetime | None = None


def filtered_runs(membership, f: RunFilters) -> QuerySet[Run]:
    runs = runs_visible_to(membership)
    if f.agent:
        runs = runs.filter(agent_name=f.agent)
    if f.version:
        runs = runs.filter(agent_version=f.version)
    if f.environment:
        runs = runs.filter(environment=f.environment)
    if f.status:
        runs = runs.filter(status=STATUS_FILTER[f.status])
    if f.origin:
        runs = runs.filter(origin=f.origin)
    if f.since:
        runs = runs.filter(created_at__gte=f.since)
    if f.until:
        runs = runs.filter(created_at__lt=f.until)
    return runs.order_by("-created_at", "-id")


def children(run: Run) -> tuple[list[Step], list[ToolCall], list[GuardrailEvent]]:
    """The run's steps, tool calls and guardrail events (three queries)."""
    tenant = run.tenant
    steps = list(Step.objects.for_tenant(tenant).filter(run=run).order_by("seq"))
    calls = list(ToolCall.objects.for_tenant(tenant).filter(run=run).order_by("created_at", "id"))
    events = list(
        GuardrailEvent.objects.for_tenant(tenant).filter(run=run).order_by("created_at", "id")
    )
    return steps, calls, events


def timeline(run: Run) -> list[dict]:
    """Steps, tool calls and guardrail events merged in time order, each with its evidence id."""
    steps, calls, events = children(run)
    by_pk = {s.pk: s for s in steps}
    call_by_pk = {c.pk: c for c in calls}
    items: list[tuple] = []
    for s in steps:
        items.append((s.started_at, 0, s.seq, _step_item(s)))
    for c in calls:
        step = by_pk.get(c.step_id)
        items.append((c.created_at, 1, c.pk, _call_item(c, step)))
    for g in events:
        step = by_pk.get(g.step_id)
        call = call_by_pk.get(g.tool_call_id)
        items.append((g.created_at, 2, g.pk, _guard_item(g, step, call)))
    items.sort(key=lambda t: t[:3])
    return [t[3] for t in items]


def _step_item(s: Step) -> dict:
    return {
        "type": "step",
        "id": s.step_id,
        "evidence_id": step_ev(s.step_id),
        "at": s.started_at,
        "ended_at": s.ended_at,
        "name": s.name,
        "status": s.status,
        "input_summary": s.input_summary,
        "output_summary": s.output_summary,
        "retries": s.retries,
        "latency_ms": s.latency_ms,
        "continue_on_error": bool(s.detail.get("continue_on_error")),
    }


def _call_item(c: ToolCall, step: Step | None) -> dict:
    return {
        "type": "tool_call",
        "id": c.call_id,
        "evidence_id": call_ev(c.call_id),
        "at": c.created_at,
        "ended_at": c.ended_at,
        "step_id": step.step_id if step else None,
        "tool_name": c.tool_name,
        "status": c.status,
        "args_json": c.args_json,
        "args_hash": c.args_hash,
        "result_summary": c.result_summary,
        "error_class": c.error_class or None,
        "error_message": c.error_message or None,
        "status_code": c.status_code,
        "retries": c.retries,
        "latency_ms": c.latency_ms,
    }


def _guard_item(g: GuardrailEvent, step: Step | None, call: ToolCall | None) -> dict:
    return {
        "type": "guardrail",
        "id": g.event_id,
        "evidence_id": guard_ev(g.event_id),
        "at": g.created_at,
        "guardrail_type": g.type,
        "message": g.message,
        "step_id": step.step_id if step else None,
        "call_id": call.call_id if call else None,
    }


def run_summary(run: Run, *, counts: tuple[int, int, int] | None = None) -> dict:
    out = {
        "run_id": run.run_id,
        "origin": run.origin,
        "agent_name": run.agent_name,
        "agent_version": run.agent_version,
        "model": run.model,
        "environment": run.environment,
        "status": wire_status(run.status),
        "started_at": run.started_at or run.created_at,
        "ended_at": run.ended_at,
        "error_type": run.error_type or None,
        "error_message": run.error_message or None,
        "trace_id": run.trace_id or None,
        "correlation_ids": run.correlation_ids,
        "latency_ms": run.latency_ms,
        "evidence_id": run_ev(run.run_id),
        "cost": {
            "tokens_prompt": run.tokens_prompt,
            "tokens_completion": run.tokens_completion,
            "total_cost_usd": float(run.total_cost_usd) if run.total_cost_usd else None,
        },
        "received_at": run.received_at,
    }
    if counts is not None:
        out["counts"] = dict(zip(("steps", "tool_calls", "guardrail_events"), counts, strict=True))
    return out


def counts_of(run: Run) -> tuple[int, int, int]:
    tenant = run.tenant
    return (
        Step.objects.for_tenant(tenant).filter(run=run).count(),
        ToolCall.objects.for_tenant(tenant).filter(run=run).count(),
        GuardrailEvent.objects.for_tenant(tenant).filter(run=run).count(),
    )
