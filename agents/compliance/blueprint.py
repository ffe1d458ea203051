"""The ``compliance_auditor`` blueprint: a signed compliance report for a period, as a run.

collect (build the report from the audit trail, approvals and policy; sign it with the chain
head) → done. The signed report is the run's result; the console shows it at the run's report
page (agents.compliance.views.run_report), where it is verified again.
"""

from __future__ import annotations

from django.urls import reverse

from agents import blueprints
from agents.blueprints import DONE, Blueprint, Outcome
from agents.compliance import period as periods
from agents.compliance import report

NAME = "compliance_auditor"


class ComplianceAuditor(Blueprint):
    name = NAME
    version = "1"
    title = "Compliance auditor"
    description = (
        "Reports, for a period, every privileged action with who requested and approved it, "
        "policy overrides, blocked attempts, four-eyes refusals and SLA breaches, signed with "
        "the audit chain head."
    )
    initial = "collect"
    states = {"collect": "Collecting and signing the report"}
    transitions = {"collect": (DONE,)}

    def report_url(self, run) -> str | None:
        return reverse("compliance:run-report", args=[run.run_id])

    def start_input(self, *, tenant, actor, goal, subject_type, subject_id):
        from django.core.exceptions import ValidationError

        from agentops.models import Membership

        membership = Membership.objects.filter(tenant=tenant, user=actor).first()
        if membership is None or not membership.can("audit.view"):
            raise ValidationError({"blueprint": "Only auditors and admins run compliance reports."})
        period = periods.from_key(subject_id or goal)
        return {
            "subject_type": "period",
            "subject_id": period.key,
            "subject_repr": f"Compliance report {period}",
            "input": {"start": period.first.isoformat(), "end": period.last.isoformat()},
        }

    def state_collect(self, ctx) -> Outcome:
        period = periods.parse(ctx.run.input.get("start"), ctx.run.input.get("end"))
        signed = report.generate(ctx.tenant, period.start, period.end)
        ctx.run.result = {**ctx.run.result, "report": signed}
        counts = ", ".join(f"{n} {report.SECTIONS[k].lower()}" for k, n in signed["counts"].items())
        return Outcome(
            DONE,
            input_summary=f"Period {period}",
            summary=f"Compliance report {period}: {counts}."[:1000],
            detail={"counts": signed["counts"], "chain_seq": signed["signature"]["chain_seq"]},
        )


def register() -> None:
    blueprints.register(ComplianceAuditor())
