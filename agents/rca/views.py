"""Console side of RCA: the button and live panel on a run's page, and the verdict form."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from agentops.access import require_capability, tenant_member
from agents.rca import services
from agents.rca.api import access_rca
from agents.rca.blueprint import NAME
from agents.rca.signals import CATEGORIES
from agents.selectors import access_run

STOP_POLLING = 286


def panel_context(request, target) -> dict:
    runs = list(services.rca_runs_of(target)[:5])
    latest = runs[0] if runs else None
    return {
        "run": target,
        "rca_runs": runs,
        "rca_latest": latest,
        "rca_progress": services.progress(latest) if latest else None,
        "rca_report": (latest.result or {}).get("report") if latest else None,
        "rca_can_start": request.membership.can("ticket.write") and target.agent_name != NAME,
        "rca_categories": CATEGORIES,
    }


@tenant_member
def rca_panel(request, run_id: str):
    """The polled panel: progress while the latest RCA runs; 286 once it has finished."""
    target = access_run(request.membership, run_id)
    context = panel_context(request, target)
    latest = context["rca_latest"]
    status = 200 if latest is not None and latest.is_active else STOP_POLLING
    return render(request, "agents/run_detail.html#rca-panel", context, status=status)


@tenant_member
@require_POST
def rca_start(request, run_id: str):
    target = access_run(request.membership, run_id)
    require_capability(request.membership, "ticket.write")
    _, created = services.rca_start(target=target, actor=request.user)
    if request.htmx:
        return render(request, "agents/run_detail.html#rca-panel", panel_context(request, target))
    if not created:
        messages.info(request, "This telemetry was analysed already: showing that report.")
    return redirect(reverse("agents:run-detail", args=[target.run_id]) + "#rca")


@tenant_member
@require_POST
def rca_judge(request, rca_run_id: str):
    rca_run = access_rca(request.membership, rca_run_id)
    require_capability(request.membership, "ticket.write")
    verdict = request.POST.get("verdict", "")
    try:
        if verdict not in ("right", "wrong"):
            raise ValidationError({"verdict": "Choose right or wrong."})
        services.rca_feedback(
            rca_run=rca_run,
            actor=request.user,
            correct=verdict == "right",
            comment=request.POST.get("comment", "")[:5000],
            expected_category=request.POST.get("expected_category", ""),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Thank you: the verdict is kept as a labelled case.")
    return redirect(reverse("agents:run-detail", args=[rca_run.subject_id]) + "#rca")
