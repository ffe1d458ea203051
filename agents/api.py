"""Agent runtime endpoints of the JSON API: the blueprints a tenant has, and runs of them.

``GET /blueprints`` lists them with their effective config and tools; ``POST /runs`` starts
any enabled blueprint on a goal or a subject; ``GET /runs/{run_id}`` reads a run with its
steps and tool calls. The tenant and user come from the bearer token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import reverse
from ninja import Field, Router, Schema
from ninja import Status as HttpStatus

from agentops.access import require_capability
from agentops.api import StrictIn
from agents import blueprints, services
from agents.models import Step, ToolCall
from agents.selectors import access_run

blueprints_router = Router(tags=["agents"])
runs_router = Router(tags=["agents"])


class BlueprintOut(Schema):
    name: str
    title: str
    description: str
    version: str
    kind: str
    enabled: bool
    tools: list[str]
    approval_tools: list[str]
    config: dict[str, Any]
    states: dict[str, str]
    transitions: dict[str, list[str]]


@blueprints_router.get("", response=list[BlueprintOut], summary="The tenant's blueprints")
def list_blueprints(request):
    require_capability(request.membership, "ticket.view_all")
    return [
        {
            "name": tb.name,
            "title": tb.blueprint.title or tb.name,
            "description": tb.blueprint.description,
            "version": tb.blueprint.version,
            "kind": tb.blueprint.kind,
            "enabled": tb.enabled,
            "tools": list(tb.tools),
            "approval_tools": list(tb.blueprint.approval_tools),
            "config": tb.config,
            "states": tb.blueprint.states,
            "transitions": {k: list(v) for k, v in tb.blueprint.transitions.items()},
        }
        for tb in blueprints.all_for_tenant(request.tenant)
    ]


class RunIn(StrictIn):
    blueprint: str = Field(..., min_length=1, max_length=100)
    goal: str = Field("", max_length=20_000, description="What the agent should do, in words.")
    subject_type: str = Field("", max_length=40)
    subject_id: str = Field("", max_length=200, description="A ticket number, say.")


class ToolCallOut(Schema):
    call_id: str
    tool_name: str
    status: str
    args_json: dict[str, Any]
    policy_verdict: str
    policy_reason: str
    result_summary: str
    verified: bool | None
    error_class: str
    error_message: str


class StepOut(Schema):
    step_id: str
    name: str
    state: str
    status: str
    input_summary: str
    output_summary: str
    retries: int
    latency_ms: int
    started_at: datetime
    ended_at: datetime | None


class RunOut(Schema):
    run_id: str
    agent_name: str
    status: str
    state: str
    model: str
    started_at: datetime | None
    ended_at: datetime | None
    error_message: str
    tokens_prompt: int
    tokens_completion: int
    total_cost_usd: float
    latency_ms: int
    url: str

    @staticmethod
    def resolve_url(obj) -> str:
        return reverse("agents:run-detail", args=[obj.run_id])


class RunDetailOut(RunOut):
    agent_version: str
    subject_type: str
    subject_id: str
    subject_repr: str
    goal: str
    created_at: datetime
    step_count: int
    result: dict[str, Any]
    steps: list[StepOut]
    tool_calls: list[ToolCallOut]

    @staticmethod
    def resolve_goal(obj) -> str:
        return str((obj.input or {}).get("goal", ""))

    @staticmethod
    def resolve_steps(obj) -> list:
        return list(Step.objects.for_tenant(obj.tenant).filter(run=obj).order_by("seq"))

    @staticmethod
    def resolve_tool_calls(obj) -> list:
        return list(ToolCall.objects.for_tenant(obj.tenant).filter(run=obj).order_by("id"))


@runs_router.post("", response={201: RunDetailOut}, summary="Start a blueprint run")
def start_run(request, payload: RunIn):
    run = services.start_blueprint(
        membership=request.membership,
        blueprint=payload.blueprint,
        goal=payload.goal,
        subject_type=payload.subject_type,
        subject_id=payload.subject_id,
    )
    return HttpStatus(201, run)


@runs_router.get("/{run_id}", response=RunDetailOut, summary="One run with its steps")
def get_run(request, run_id: str):
    return access_run(request.membership, run_id)
