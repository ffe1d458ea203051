"""What the runtime hangs on the approvals queue besides its decision handler.

Call ``register()`` from ``AgentsConfig.ready``: it lets a reviewer's edit-then-approve be
checked against the tool's JSON schema before anything changes.
"""

from __future__ import annotations

import json
import re
from typing import Any

EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def beneficiaries(tenant, tool_name: str, arguments: Any) -> set[str]:
    """Everyone an action is for: the person its tool acts on (a device's owner, say) and
    every e-mail address its arguments name, in lower case."""
    from agents.tools import registry
    from agents.tools.base import ToolContext

    found = {m.group(0).lower() for m in EMAIL.finditer(json.dumps(arguments, default=str))}
    try:
        tool = registry.get(tool_name)
        target = tool.target_email(
            ToolContext(tenant=tenant, run_id=None, idempotency_key=""), arguments
        )
    except Exception:  # an unknown tool or device: the arguments' addresses are all we know
        target = None
    if target:
        found.add(target.strip().lower())
    return found


def validate_tool_arguments(request: Any, arguments: Any) -> list[str]:
    """Problems with edited ``arguments`` for the tool the request names; empty when valid.

    The schema must hold, and an edit may not change whom the action is for: that needs a
    new request (issue 11: edit-then-approve retargeted a privileged action)."""
    from agents.tools import registry

    try:
        tool = registry.get(request.action)
    except KeyError:
        return [f"The tool {request.action!r} is not known any more; reject the request."]
    errors = registry.validate_args(tool, arguments, tenant=request.tenant)
    if errors:
        return errors
    before = beneficiaries(request.tenant, request.action, request.arguments)
    after = beneficiaries(request.tenant, request.action, arguments)
    if before != after:
        return [
            "An edit cannot change whom the action is for ("
            + (", ".join(sorted(before)) or "nobody")
            + " → "
            + (", ".join(sorted(after)) or "nobody")
            + "). Reject this request; a new one must be asked for."
        ]
    return []


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
