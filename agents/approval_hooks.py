"""What the runtime hangs on the approvals queue besides its decision handler.

Call ``register()`` from ``AgentsConfig.ready``: it lets a reviewer's edit-then-approve be
checked against the tool's JSON schema before anything changes.
"""

from __future__ import annotations

from typing import Any


def validate_tool_arguments(request: Any, arguments: Any) -> list[str]:
    """Problems with edited ``arguments`` for the tool the request names; empty when valid."""
    from agents.tools import registry

    try:
        tool = registry.get(request.action)
    except KeyError:
        return [f"The tool {request.action!r} is not known any more; reject the request."]
    return registry.validate_args(tool, arguments)


def describe_runs(requests: list) -> dict[int, str]:
    """Where each request's run is now, in words (one query for the page)."""
    from agents.models import Run, RunStatus

    runs_of = {
        r.pk: int(r.subject_id)
        for r in requests
        if r.subject_type == "run" and r.subject_id.isdigit()
    }
    if not runs_of:
        return {}
    runs = {
        run.pk: run
        for run in Run.objects.for_tenant(requests[0].tenant_id)
        .filter(pk__in=set(runs_of.values()))
        .only("pk", "status")
    }
    sentences = {}
    for pk, run_pk in runs_of.items():
        run = runs.get(run_pk)
        if run is None:
            continue
        if run.status == RunStatus.WAITING_APPROVAL:
            sentences[pk] = "The run is waiting for a decision."
        elif run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
            sentences[pk] = "The run is working on its next step."
        else:
            sentences[pk] = f"The run has ended: {run.get_status_display().lower()}."
    return sentences


def register() -> None:
    from agents.engine import APPROVAL_HANDLER
    from approvals import handlers

    handlers.register_validator(APPROVAL_HANDLER, validate_tool_arguments)
    handlers.register_describer(APPROVAL_HANDLER, describe_runs)
