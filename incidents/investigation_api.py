"""Investigations in the JSON API: state a goal, read the run and its report."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import reverse
from ninja import Field, Router
from ninja import Status as HttpStatus

from agentops.api import StrictIn
from agents import services as agent_services
from agents.api import RunDetailOut
from agents.selectors import access_run
from incidents.blueprints.investigation import NAME

router = Router(tags=["investigations"])


class InvestigationIn(StrictIn):
    goal: str = Field(..., max_length=20_000, description="What to investigate, in words.")


class InvestigationOut(RunDetailOut):
    report: dict[str, Any] | None
    report_url: str | None

    @staticmethod
    def resolve_report(obj) -> dict[str, Any] | None:
        return obj.result.get("report")

    @staticmethod
    def resolve_report_url(obj) -> str | None:
        if not obj.result.get("report"):
            return None
        return reverse("incidents:investigation-report", args=[obj.run_id])


@router.post("", response={201: InvestigationOut}, summary="Start an investigation")
def start_investigation(request, payload: InvestigationIn):
    run = agent_services.start_blueprint(
        membership=request.membership, blueprint=NAME, goal=payload.goal
    )
    return HttpStatus(201, run)


@router.get("/{run_id}", response=InvestigationOut, summary="An investigation and its report")
def get_investigation(request, run_id: str):
    run = access_run(request.membership, run_id)
    if run.agent_name != NAME:
        raise Http404("No such investigation")
    return run
