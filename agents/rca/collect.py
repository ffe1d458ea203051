"""Gathering what the analyser reads: the run, its merged timeline, and baseline runs.

A baseline is a run of the same agent in another version that succeeded on the same input:
it shares a correlation id, or its first step had the same input, or the failing run's
correlation ids or step summaries name it (``baseline: <run_id>``).
"""

from __future__ import annotations

import re
from functools import reduce
from operator import or_

from django.db.models import Q

from agents.models import Run, RunStatus, Step
from agents.telemetry import selectors

NAMED_BASELINE = re.compile(r"baseline(?:[_ -]?run)?\s*[:=]\s*([A-Za-z0-9][A-Za-z0-9._:@-]*)", re.I)


def telemetry_of(run: Run) -> tuple[dict, list[dict], list[dict]]:
    items = selectors.timeline(run)
    return selectors.run_summary(run), items, baselines_of(run, items)


def _named(run: Run, items: list[dict]) -> set[str]:
    texts = list(run.correlation_ids or [])
    texts += [
        i.get("input_summary", "") + " " + i.get("output_summary", "")
        for i in items
        if i["type"] == "step"
    ]
    return {m.group(1) for t in texts for m in NAMED_BASELINE.finditer(t or "")}


def baselines_of(run: Run, items: list[dict], *, limit: int = 5) -> list[dict]:
    if run.status == RunStatus.SUCCEEDED:
        return []
    tenant = run.tenant
    others = (
        Run.objects.for_tenant(tenant)
        .filter(agent_name=run.agent_name, status=RunStatus.SUCCEEDED)
        .exclude(agent_version=run.agent_version)
        .exclude(pk=run.pk)
    )
    found: dict[str, tuple[Run, str]] = {}
    named = _named(run, items)
    if named:
        for other in others.filter(run_id__in=list(named)[:10])[:limit]:
            found[other.run_id] = (other, "named as the baseline by the failing run")
    cids = [c for c in (run.correlation_ids or []) if isinstance(c, str)][:10]
    if cids:
        q = reduce(or_, (Q(correlation_ids__contains=[c]) for c in cids))
        for other in others.filter(q).order_by("-created_at")[:limit]:
            shared = sorted(set(cids) & set(other.correlation_ids or []))
            found.setdefault(other.run_id, (other, f"same correlation id {', '.join(shared)}"))
    first = next((i for i in items if i["type"] == "step"), None)
    if first and first.get("input_summary"):
        same_input = (
            Step.objects.for_tenant(tenant)
            .filter(seq=1, input_summary=first["input_summary"], run__in=others)
            .select_related("run")
            .order_by("-run__created_at")[:limit]
        )
        for step in same_input:
            found.setdefault(step.run.run_id, (step.run, "same first-step input"))
    out = []
    for other, match in list(found.values())[:limit]:
        summary = selectors.run_summary(other)
        summary["match"] = match
        out.append(summary)
    return out
