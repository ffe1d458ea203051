"""The ``rca`` blueprint: a root-cause analysis as a checkpointed run on our own engine.

collect (find the run, fix the telemetry it judges) → classify (the deterministic analyser)
→ report (Claude's narrative when a key is set, checked against the evidence) → done.
The report is the run's result; its progress is the run's state.
"""

from __future__ import annotations

import logging

from agents import blueprints
from agents.blueprints import DONE, FAILED, Blueprint, Outcome
from agents.models import Run
from agents.rca import analyser, narrative
from agents.rca.collect import telemetry_of

log = logging.getLogger(__name__)
NAME = "rca"


def target_of(ctx) -> Run | None:
    return (
        Run.objects.for_tenant(ctx.tenant)
        .filter(run_id=ctx.run.input.get("target_run_id", ""))
        .first()
    )


class RcaBlueprint(Blueprint):
    name = NAME
    version = "1"
    title = "Root-cause analysis"
    description = "Explains why another agent's run failed, citing the evidence."
    initial = "collect"
    states = {
        "collect": "Collecting evidence",
        "classify": "Classifying failure",
        "report": "Generating report",
    }
    transitions = {
        "collect": ("classify", FAILED),
        "classify": ("report",),
        "report": (DONE,),
    }

    def state_collect(self, ctx) -> Outcome:
        target = target_of(ctx)
        if target is None:
            return Outcome(
                FAILED, summary="The run to analyse no longer exists.", step_status="failure"
            )
        _, items, baselines = telemetry_of(target)
        ctx.state["counts"] = {
            kind: sum(1 for i in items if i["type"] == kind)
            for kind in ("step", "tool_call", "guardrail")
        }
        ctx.state["baselines"] = [b["run_id"] for b in baselines]
        return Outcome(
            "classify",
            input_summary=f"Run {target.run_id} of {target.agent_name} {target.agent_version}",
            summary=f"{len(items)} timeline items, {len(baselines)} baseline run(s).",
            detail={"counts": ctx.state["counts"], "baselines": ctx.state["baselines"]},
        )

    def state_classify(self, ctx) -> Outcome:
        target = target_of(ctx)
        if target is None:
            raise LookupError("The run to analyse no longer exists.")
        report = analyser.analyse(*telemetry_of(target))
        ctx.state["report"] = report
        return Outcome(
            "report",
            summary=report["summary"][:1000],
            detail={"category": report["category"], "scores": report["scores"]},
        )

    def state_report(self, ctx) -> Outcome:
        report = ctx.state["report"]
        if _model_available(ctx):
            from agents.llm.base import LLMError, LLMUnavailable

            try:
                response = ctx.complete(
                    system=narrative.SYSTEM,
                    messages=narrative.prompt(report),
                    tools=[narrative.TOOL],
                    tool_choice=narrative.TOOL.name,
                )
            except LLMUnavailable:
                raise  # the engine retries the step, then on_model_unavailable
            except LLMError as exc:
                ctx.guardrail("llm_error", f"The model could not write the narrative: {exc}")
            else:
                report = self._checked(ctx, report, response)
        report.setdefault("narrative", "deterministic")
        return self._finish(ctx, report)

    def _checked(self, ctx, report: dict, response) -> dict:
        use = next((u for u in response.tool_uses if u.name == narrative.TOOL.name), None)
        if use is None:
            ctx.guardrail("rca_citation", "The model did not answer with the report tool.")
            return report
        checked, refused = narrative.apply(report, use.input)
        if refused:
            ctx.guardrail(
                "rca_citation",
                "The model's narrative was refused, the deterministic report stands: "
                + "; ".join(refused)[:500],
            )
        return checked

    def _finish(self, ctx, report: dict) -> Outcome:
        ctx.run.result = {**ctx.run.result, "report": report}
        ctx.state.pop("report", None)  # kept once, in the result
        return Outcome(
            DONE, summary=report["summary"][:1000], detail={"category": report["category"]}
        )

    def on_model_unavailable(self, ctx, error: Exception) -> Outcome:
        report = ctx.state.get("report")
        if report is None:
            return super().on_model_unavailable(ctx, error)
        report["narrative"] = "deterministic"
        return self._finish(ctx, report)


def _model_available(ctx) -> bool:
    from agents.engine import llm_config

    try:
        return llm_config(ctx.config).backend == "anthropic"
    except Exception:  # misconfigured model settings: the deterministic report stands
        log.warning("RCA: model settings unusable; deterministic narrative", exc_info=True)
        return False


def register() -> None:
    blueprints.register(RcaBlueprint())
