"""Console pages of investigations: state a goal, see the runs, read a report (HTML, Markdown, PDF)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from agentops.access import require_capability, tenant_member
from agents import services as agent_services
from agents.selectors import access_run, runs_visible_to
from incidents.blueprints.investigation import NAME
from incidents.investigation_report import chart_paths, markdown, pdf

EXAMPLES = (
    "Investigate error spikes in the last hour and open a ticket if needed",
    "Why is checkout slow in the last 30 minutes?",
    "Check the auth service's errors over the past 2 hours",
)


@tenant_member
@require_http_methods(["GET", "POST"])
def investigations(request):
    require_capability(request.membership, "ticket.view_all")
    may_start = request.membership.can("agent.start")
    errors: list[str] = []
    goal = ""
    if request.method == "POST":
        require_capability(request.membership, "agent.start")
        goal = request.POST.get("goal", "")
        try:
            run = agent_services.start_blueprint(
                membership=request.membership, blueprint=NAME, goal=goal
            )
        except ValidationError as exc:
            errors = [m for ms in exc.message_dict.values() for m in ms]
        else:
            messages.success(request, "Investigation started: the timeline updates as it works.")
            return redirect("agents:run-detail", run_id=run.run_id)
    runs = runs_visible_to(request.membership).filter(agent_name=NAME).select_related("started_by")
    page = Paginator(runs.order_by("-created_at", "-id"), 20).get_page(request.GET.get("page"))
    return render(
        request,
        "incidents/investigations.html",
        {
            "page": page,
            "may_start": may_start,
            "goal": goal,
            "errors": errors,
            "examples": EXAMPLES,
        },
        status=400 if errors else 200,
    )


@tenant_member
def investigation_report(request, run_id: str):
    run = access_run(request.membership, run_id)
    report = run.result.get("report") if run.agent_name == NAME else None
    if not report:
        raise Http404("This run has no report yet.")
    if request.GET.get("format") == "md":
        response = HttpResponse(markdown(run, report), content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{run.run_id}-report.md"'
        return response
    if request.GET.get("format") == "pdf":
        response = HttpResponse(pdf(run, report), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{run.run_id}-report.pdf"'
        return response
    observations = {o["id"]: o for o in run.state_data.get("observations", [])}
    findings = [
        {**f, "cited": [observations[e] for e in f.get("evidence", []) if e in observations]}
        for f in report.get("findings", [])
    ]
    return render(
        request,
        "incidents/investigation_report.html",
        {
            "run": run,
            "report": report,
            "findings": findings,
            "observations": list(observations.values()),
            "charts": chart_paths(report.get("charts", [])),
        },
    )
