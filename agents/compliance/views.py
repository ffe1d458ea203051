"""Compliance report pages: the live report for a period (page, CSV, PDF), and the signed
report a compliance_auditor run kept. Auditors and tenant admins only (``audit.view``)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from agentops.access import require_capability, tenant_member
from agents.compliance import period as periods
from agents.compliance import report
from agents.compliance.blueprint import NAME
from agents.compliance.export import signature_lines, to_csv, to_pdf
from agents.models import Run


def _period(request) -> periods.Period:
    try:
        return periods.parse(request.GET.get("start"), request.GET.get("end"))
    except ValidationError as exc:
        raise _BadPeriod(exc) from exc


class _BadPeriod(Exception):
    def __init__(self, error: ValidationError):
        self.messages = [m for ms in error.message_dict.values() for m in ms]


def _chart(signed: dict) -> dict:
    return {
        "type": "bar",
        "labels": list(report.SECTIONS.values()),
        "series": [
            {"label": "Rows", "kind": "bar", "data": [signed["counts"][k] for k in report.SECTIONS]}
        ],
    }


def _context(request, signed: dict, period, **extra) -> dict:
    sections = [
        {
            "key": key,
            "title": title,
            "columns": [c.replace("_", " ") for c in report.COLUMNS[key]],
            "rows": [
                [(c.replace("_", " "), row.get(c, "")) for c in report.COLUMNS[key]]
                for row in signed["sections"][key]
            ],
        }
        for key, title in report.SECTIONS.items()
    ]
    return {
        "report": signed,
        "sections": sections,
        "signature": signature_lines(signed),
        "chart": _chart(signed),
        "period": period,
        "query": f"start={period.first.isoformat()}&end={period.last.isoformat()}",
        **extra,  # a kept report's downloads name its run instead
    }


def _bad_request(request, error: _BadPeriod):
    return render(
        request, "agents/compliance.html", {"errors": error.messages, "report": None}, status=400
    )


@tenant_member
@require_GET
def report_page(request):
    require_capability(request.membership, "audit.view")
    try:
        period = _period(request)
    except _BadPeriod as error:
        return _bad_request(request, error)
    signed = report.generate(request.membership.tenant, period.start, period.end)
    return render(request, "agents/compliance.html", _context(request, signed, period))


def _kept(tenant, run_id: str) -> tuple[Run, dict | None]:
    """A compliance_auditor run of this tenant and its signed report; 404 otherwise."""
    run = Run.objects.for_tenant(tenant).filter(run_id=run_id, agent_name=NAME).first()
    if run is None:
        raise Http404("No such report")
    return run, (run.result or {}).get("report")


def _download(request, fmt: str):
    require_capability(request.membership, "audit.view")
    tenant = request.membership.tenant
    if request.GET.get("run"):  # the kept, signed copy, byte for byte what was signed
        run, signed = _kept(tenant, request.GET["run"])
        if not signed:
            raise Http404("The report is not ready yet")
        period = periods.parse(run.input.get("start"), run.input.get("end"))
    else:
        try:
            period = _period(request)
        except _BadPeriod as error:
            return HttpResponse("; ".join(error.messages), status=400, content_type="text/plain")
        signed = report.generate(tenant, period.start, period.end)
    name = f"compliance-{tenant.slug}-{period.first}-{period.last}.{fmt}"
    if fmt == "csv":
        response = HttpResponse(to_csv(signed), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(to_pdf(signed), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@tenant_member
@require_GET
def report_csv(request):
    return _download(request, "csv")


@tenant_member
@require_GET
def report_pdf(request):
    return _download(request, "pdf")


@tenant_member
@require_POST
def report_start(request):
    """Keep a signed report: a compliance_auditor run for the period."""
    from agents.engine import start_run

    require_capability(request.membership, "audit.view")
    tenant = request.membership.tenant
    try:
        period = periods.parse(request.POST.get("start"), request.POST.get("end"))
    except ValidationError as exc:
        return _bad_request(request, _BadPeriod(exc))
    run = start_run(
        tenant=tenant,
        blueprint=NAME,
        subject_type="period",
        subject_id=period.key,
        subject_repr=f"Compliance report {period}",
        actor=request.user,
        started_by_staff=True,
        input={"start": period.first.isoformat(), "end": period.last.isoformat()},
    )
    messages.success(request, f"Compliance report for {period} requested.")
    return redirect("compliance:run-report", run_id=run.run_id)


@tenant_member
@require_GET
def run_report(request, run_id: str):
    """A kept report, verified again against the audit trail now."""
    require_capability(request.membership, "audit.view")
    tenant = request.membership.tenant
    run, signed = _kept(tenant, run_id)
    period = periods.parse(run.input.get("start"), run.input.get("end"))
    if not signed:
        return render(
            request, "agents/compliance.html", {"report": None, "pending": run, "period": period}
        )
    problems = report.verify(tenant, signed)
    return render(
        request,
        "agents/compliance.html",
        _context(
            request,
            signed,
            period,
            run=run,
            verified=not problems,
            problems=problems,
            query=f"run={run.run_id}",
        ),
    )
