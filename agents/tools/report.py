"""``generate_report``: the findings of an investigation, each tied to the evidence behind it.

The model (or a blueprint's own planner) names findings and the observation ids ("obs-3")
that support each; the tool checks every cited id exists among the run's observations, so a
report can never cite evidence that was not gathered. The report is the tool's result; the
blueprint keeps it as the run's report.
"""

from __future__ import annotations

from typing import Any

from agents.tools.base import Tool, ToolContext, ToolError, ToolResult

FINDING = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 3, "maxLength": 200},
        "detail": {"type": "string", "maxLength": 2000},
        "severity": {"type": "string", "enum": ["info", "low", "medium", "high", "critical"]},
        "evidence": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^obs-[0-9]{1,4}$"},
            "minItems": 1,
            "maxItems": 20,
        },
    },
    "required": ["title", "detail", "severity", "evidence"],
    "additionalProperties": False,
}


class GenerateReport(Tool):
    name = "generate_report"
    read_only = True  # its only effect is its own result
    description = (
        "Write the investigation's report: a summary, findings each citing the observation ids "
        "(obs-N) that support it, and recommendations. Call it once, at the end."
    )
    input_schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 3, "maxLength": 200},
            "summary": {"type": "string", "minLength": 3, "maxLength": 4000},
            "findings": {"type": "array", "items": FINDING, "maxItems": 20},
            "recommendations": {
                "type": "array",
                "items": {"type": "string", "maxLength": 500},
                "maxItems": 10,
            },
        },
        "required": ["title", "summary", "findings"],
        "additionalProperties": False,
    }

    def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        try:
            known = _observation_ids(ctx)
            missing = sorted(
                {e for f in args["findings"] for e in f["evidence"]} - known,
                key=lambda e: int(e.split("-")[1]),
            )
            if missing:
                raise ToolError(
                    f"Findings cite evidence that was not gathered: {', '.join(missing)}. "
                    f"Cite only: {', '.join(sorted(known)) or 'nothing yet'}.",
                    error_class="UnknownEvidence",
                )
        except ToolError as exc:
            return exc.to_result()
        report = {
            "title": args["title"],
            "summary": args["summary"],
            "findings": args["findings"],
            "recommendations": args.get("recommendations", []),
        }
        cited = len({e for f in args["findings"] for e in f["evidence"]})
        return ToolResult(
            True,
            f"Report written: {len(args['findings'])} finding(s) citing {cited} observation(s).",
            report,
        )


def _observation_ids(ctx: ToolContext) -> set[str]:
    from agents.models import Run

    if ctx.run_id is None:
        return set()
    data = (
        Run.objects.for_tenant(ctx.tenant)
        .filter(pk=ctx.run_id)
        .values_list("state_data", flat=True)
        .first()
        or {}
    )
    return {o.get("id", "") for o in data.get("observations", [])}
