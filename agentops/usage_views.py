"""The usage page: this month's use of the tenant's quotas, as numbers and as charts, and
``GET /api/v1/tenant/usage``. Tenant admins and auditors (capability ``usage.view``)."""

from __future__ import annotations

from datetime import date, datetime

from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET
from ninja import Router, Schema

from agentops import quotas
from agentops.access import require_capability, tenant_member

# The chart's drawing box (SVG user units); CSS scales it to the page width.
CHART_W, CHART_H, LABEL_H = 640, 160, 18


def bars(values: list[tuple[str, int]], *, width: int = CHART_W, height: int = CHART_H) -> list:
    """Bars of a bar chart as SVG rectangles (attributes only, no inline style: strict CSP)."""
    top = max((v for _, v in values), default=0) or 1
    slot = width / max(len(values), 1)
    out = []
    for i, (label, value) in enumerate(values):
        h = round(value / top * (height - LABEL_H), 1)
        w = min(slot * 0.7, 80)  # a lone bar stays a bar, not a slab
        out.append(
            {
                "x": round(i * slot + (slot - w) / 2, 1),
                "y": round(height - LABEL_H - h, 1),
                "w": round(w, 1),
                "h": h,
                "label": label,
                "value": value,
                "label_x": round(i * slot + slot / 2, 1),
            }
        )
    return out


def _meters(summary: dict) -> list[dict]:
    names = {
        "runs_per_month": "Agent runs this month",
        "tokens_per_month": "Model tokens this month",
        "knowledge_documents": "Knowledge documents",
        "knowledge_chunks": "Knowledge passages",
        "users": "Users",
    }
    rows = []
    for key, label in names.items():
        limit, value = summary["limits"].get(key), summary["usage"].get(key, 0)
        percent = min(100, round(value * 100 / limit)) if limit else None
        rows.append(
            {
                "label": label,
                "used": value,
                "limit": limit,
                "percent": percent,
                "warn": percent is not None and percent >= quotas.WARN_AT,
            }
        )
    return rows


@tenant_member
@require_GET
def usage_page(request):
    require_capability(request.membership, "usage.view")
    summary = quotas.usage_summary(request.tenant)
    per_day = summary["per_day"]
    context = {
        "summary": summary,
        "meters": _meters(summary),
        "chart_w": CHART_W,
        "chart_h": CHART_H,
        "runs_by_day": bars([(f"{d['day']:%d}", d["runs"]) for d in per_day]),
        "tokens_by_day": bars([(f"{d['day']:%d}", d["tokens"]) for d in per_day]),
        "runs_by_blueprint": bars([(r["name"], r["runs"]) for r in summary["per_blueprint"]]),
        "tokens_by_model": bars([(r["name"], r["tokens"]) for r in summary["per_model"]]),
    }
    return render(request, "agentops/usage.html", context)


app_name = "usage"
urlpatterns = [path("", usage_page, name="page")]


# --------------------------------------------------------------------------- API

router = Router(tags=["tenant"])


class DayOut(Schema):
    day: date
    runs: int
    tokens: int


class GroupOut(Schema):
    name: str
    runs: int
    tokens: int


class UsageOut(Schema):
    tier: str
    period_start: datetime
    period_end: datetime
    limits: dict
    usage: dict
    per_day: list[DayOut]
    per_blueprint: list[GroupOut]
    per_model: list[GroupOut]


@router.get("/usage", response=UsageOut, summary="This month's usage against the tier's limits")
def tenant_usage(request):
    require_capability(request.membership, "usage.view")  # 403 for other roles
    return quotas.usage_summary(request.membership.tenant)
