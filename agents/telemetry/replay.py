"""What the run page adds for replay: the latency waterfall and items outside any step.

The waterfall is drawn as SVG rectangles (attributes, not style: the CSP forbids inline
styles), one row per step and tool call, placed on the run's time axis.
"""

from __future__ import annotations

from agents.models import GuardrailEvent, Run, Step, ToolCall
from agents.telemetry.evidence import call_ev, step_ev

WIDTH = 1000  # the SVG's viewBox width


def _span(start, end, latency_ms: int):
    if start is None:
        return None, None
    if end is None and latency_ms:
        from datetime import timedelta

        end = start + timedelta(milliseconds=latency_ms)
    return start, end or start


def _items(steps: list[Step]):
    for step in steps:
        yield (
            "step",
            step.name,
            step_ev(step.step_id),
            step.status,
            step.started_at,
            step.ended_at,
            step.latency_ms,
        )
        for call in step.tool_calls.all():
            yield (
                "tool",
                call.tool_name,
                call_ev(call.call_id),
                call.status,
                call.created_at,
                call.ended_at,
                call.latency_ms,
            )


def waterfall(run: Run, steps: list[Step]) -> dict:
    """Rows ``{label, kind, evidence_id, status, x, w, ms}`` on a 0..WIDTH axis."""
    rows = []
    for kind, label, ev, status, start, end, ms in _items(steps):
        start, end = _span(start, end, ms)
        if start is not None:
            rows.append((kind, label, ev, status, start, end, ms))
    if not rows:
        return {"rows": [], "total_ms": 0}
    origin = min([r[4] for r in rows] + ([run.started_at] if run.started_at else []))
    finish = max([r[5] for r in rows] + ([run.ended_at] if run.ended_at else []))
    total = max((finish - origin).total_seconds() * 1000, 1)
    out = []
    for kind, label, ev, status, start, end, ms in rows:
        x = min((start - origin).total_seconds() * 1000 / total * WIDTH, WIDTH - 2)
        w = max((end - start).total_seconds() * 1000 / total * WIDTH, 2)
        out.append(
            {
                "kind": kind,
                "label": label,
                "evidence_id": ev,
                "status": status,
                "x": round(x, 1),
                "w": round(min(w, WIDTH - x), 1),
                "ms": ms or int((end - start).total_seconds() * 1000),
            }
        )
    return {"rows": out, "total_ms": int(total)}


def orphans(run: Run) -> dict:
    """Tool calls and guardrail events that belong to no step (shown after the steps)."""
    tenant = run.tenant
    calls = list(
        ToolCall.objects.for_tenant(tenant)
        .filter(run=run, step__isnull=True)
        .order_by("created_at", "id")
    )
    events = list(
        GuardrailEvent.objects.for_tenant(tenant)
        .filter(run=run, step__isnull=True)
        .order_by("created_at", "id")
    )
    return {"calls": calls, "events": events}
