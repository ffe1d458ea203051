"""RCA endpoints: start an analysis of a run, follow it (JSON or SSE), list reports, judge one."""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.db import close_old_connections
from django.http import Http404, StreamingHttpResponse
from ninja import Field, Query, Router, Schema
from ninja import Status as HttpStatus

from agentops.access import require_capability
from agentops.api import StrictIn
from agents.models import Run
from agents.rca import services
from agents.rca.blueprint import NAME
from agents.selectors import access_run, runs_visible_to
from agents.telemetry.api import api_reader
from agents.telemetry.api import router as agent_runs_router

router = Router(tags=["rca"])


def rca_view(run: Run) -> dict:
    report = (run.result or {}).get("report")
    return {
        "rca_run_id": run.run_id,
        "run_id": run.subject_id,
        "status": services.progress(run)["status"],
        "progress": services.progress(run),
        "created_at": run.created_at,
        "report": report,
        "url": f"/runs/{run.run_id}/",
    }


def access_rca(membership, rca_run_id: str) -> Run:
    run = access_run(membership, rca_run_id)
    if run.agent_name != NAME:
        raise Http404("No such RCA run")
    return run


@agent_runs_router.post(
    "/{run_id}/rca-runs",
    response={200: dict, 202: dict, 403: dict, 404: dict},
    summary="Start an RCA",
)
def start_rca(request, run_id: str):
    """202 with a new RCA run; 200 with the existing one while it runs or for unchanged telemetry."""
    membership = api_reader(request)
    target = access_run(membership, run_id)
    require_capability(membership, "ticket.write")
    run, created = services.rca_start(target=target, actor=membership.user)
    return HttpStatus(202 if created else 200, {**rca_view(run), "created": created})


@agent_runs_router.get(
    "/{run_id}/rca-runs", response={200: dict, 403: dict, 404: dict}, summary="A run's RCAs"
)
def list_run_rcas(request, run_id: str):
    target = access_run(api_reader(request), run_id)
    return {"items": [rca_view(r) for r in services.rca_runs_of(target)[:50]]}


class ListParams(Schema):
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


@router.get("", response={200: dict, 403: dict}, summary="RCA reports")
def list_rcas(request, params: Query[ListParams]):
    runs = (
        runs_visible_to(api_reader(request)).filter(agent_name=NAME).order_by("-created_at", "-id")
    )
    page = runs[params.offset : params.offset + params.limit]
    return {"count": runs.count(), "items": [rca_view(r) for r in page]}


@router.get("/{rca_run_id}", response={200: dict, 403: dict, 404: dict}, summary="One RCA run")
def get_rca(request, rca_run_id: str):
    return rca_view(access_rca(api_reader(request), rca_run_id))


def _events(tenant, pk: int, *, poll: float, limit: float):
    """SSE: one ``data:`` line per change of progress; ends when the run has finished."""
    last, started, beat = None, time.monotonic(), time.monotonic()
    try:
        while True:
            run = Run.objects.for_tenant(tenant).filter(pk=pk).first()
            if run is None:
                return
            event = services.progress(run)
            if event != last:
                last = event
                beat = time.monotonic()
                yield f"data: {json.dumps(event)}\n\n"
            if event["status"] in ("done", "failed") or time.monotonic() - started > limit:
                return
            if time.monotonic() - beat > 15:
                beat = time.monotonic()
                yield ": keep-alive\n\n"
            time.sleep(poll)
    finally:
        close_old_connections()


@router.get("/{rca_run_id}/stream", response={403: dict, 404: dict}, summary="RCA progress (SSE)")
def stream_rca(request, rca_run_id: str):
    run = access_rca(api_reader(request), rca_run_id)
    response = StreamingHttpResponse(
        _events(
            run.tenant,
            run.pk,
            poll=settings.RCA_STREAM_POLL_SECONDS,
            limit=settings.RCA_STREAM_MAX_SECONDS,
        ),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class FeedbackIn(StrictIn):
    correct: bool
    comment: str = Field("", max_length=5000)
    expected_category: str = Field("", max_length=40)


@router.post(
    "/{rca_run_id}/feedback",
    response={201: dict, 400: dict, 403: dict, 404: dict},
    summary="Judge a report",
)
def judge_rca(request, rca_run_id: str, payload: FeedbackIn):
    membership = api_reader(request)
    run = access_rca(membership, rca_run_id)
    require_capability(membership, "ticket.write")
    feedback = services.rca_feedback(
        rca_run=run,
        actor=membership.user,
        correct=payload.correct,
        comment=payload.comment,
        expected_category=payload.expected_category,
    )
    return HttpStatus(
        201, {"id": feedback.pk, "category": feedback.category, "correct": feedback.correct}
    )
