"""``GET /api/v1/analytics/...``: the dashboard's figures as JSON, from the same rollups and the
same functions as the page and its CSV downloads. Staff tokens only (403 otherwise)."""

from __future__ import annotations

from ninja import Router
from ninja import Status as HttpStatus

from incidents.analytics import figures as fig
from incidents.analytics.views import BadFilter, resolve_filters

router = Router(tags=["analytics"])
FORBIDDEN = {"error": "forbidden", "message": "The analytics are for the service desk's staff."}


def _figures(request, period: str | None, queue: str | None):
    membership = request.membership
    if not membership.can("ticket.view_all"):
        return HttpStatus(403, FORBIDDEN)
    try:
        key, queue_ref, slug = resolve_filters(membership, {"period": period, "queue": queue})
    except BadFilter as exc:
        return HttpStatus(400, {"error": "validation_error", "fields": {"filters": [str(exc)]}})
    return fig.figures(membership.tenant, period=key, queue_ref=queue_ref), key, slug


def _head(figures, key: str, slug: str) -> dict:
    return {
        "period_days": figures.period_days,
        "bucket": figures.bucket,
        "period": key,
        "start": figures.start.isoformat(),
        "end": figures.end.isoformat(),
        "queue": slug or None,
    }


@router.get(
    "/summary",
    response={200: dict, 400: dict, 403: dict},
    summary="The headline figures: MTTR, auto-resolution, escalation, SLA, approvals, CSAT",
)
def summary(request, period: str | None = None, queue: str | None = None):
    found = _figures(request, period, queue)
    if isinstance(found, HttpStatus):
        return found
    figures, key, slug = found
    return {**_head(figures, key, slug), "kpis": figures.kpis, "charts": list(fig.CHARTS)}


@router.get(
    "/{chart}",
    response={200: dict, 400: dict, 403: dict, 404: dict},
    summary="One chart's table (the same rows as its CSV download on the dashboard)",
)
def chart(request, chart: str, period: str | None = None, queue: str | None = None):
    if chart not in fig.CHARTS:
        return HttpStatus(
            404, {"error": "not_found", "message": f"Charts: {', '.join(fig.CHARTS)}."}
        )
    found = _figures(request, period, queue)
    if isinstance(found, HttpStatus):
        return found
    figures, key, slug = found
    title, columns = fig.CHARTS[chart]
    return {
        **_head(figures, key, slug),
        "chart": chart,
        "title": title,
        "columns": list(columns),
        "rows": figures.tables[chart],
    }
