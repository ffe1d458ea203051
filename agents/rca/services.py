"""Starting RCA runs (idempotent), reading their progress, and people's verdicts on reports."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agentops import audit
from agents import engine
from agents.models import FINISHED_RUN_STATUSES, RcaFeedback, Run, RunStatus
from agents.rca.blueprint import NAME
from agents.rca.signals import CATEGORIES

PROGRESS = {
    "collect": (30, "Collecting evidence"),
    "classify": (55, "Classifying failure"),
    "report": (85, "Generating report"),
}


def telemetry_version(run: Run) -> str:
    """What an RCA judged: the ingested telemetry's hash (our own runs: their last change)."""
    return run.telemetry_hash or f"internal:{run.updated_at.isoformat()}:{run.step_count}"


def rca_runs_of(target: Run):
    return (
        Run.objects.for_tenant(target.tenant)
        .filter(agent_name=NAME, subject_type="run", subject_id=target.run_id)
        .order_by("-created_at", "-id")
    )


@transaction.atomic
def rca_start(*, target: Run, actor=None) -> tuple[Run, bool]:
    """An RCA run of ``target``: the running one, or the finished one of the same telemetry,
    else a new one. Returns (run, created). Concurrent requests serialise on the target's row."""
    locked = Run.objects.for_tenant(target.tenant).select_for_update().get(pk=target.pk)
    version = telemetry_version(locked)
    for existing in rca_runs_of(locked)[:20]:
        if existing.is_active:
            return existing, False
        if existing.status == RunStatus.SUCCEEDED and existing.input.get("telemetry") == version:
            return existing, False
    run = engine.start_run(
        tenant=locked.tenant,
        blueprint=NAME,
        subject_type="run",
        subject_id=locked.run_id,
        subject_repr=f"{locked.agent_name} {locked.agent_version} {locked.run_id}".strip(),
        actor=actor,
        started_by_staff=True,
        input={"target_run_id": locked.run_id, "telemetry": version},
    )
    return run, True


def progress(run: Run) -> dict:
    """Seed 002's progress event: status, step, pct, message, updated_at."""
    if run.status == RunStatus.SUCCEEDED:
        status, pct, step = "done", 100, "RCA complete"
        message = step
    elif run.status in FINISHED_RUN_STATUSES:
        status, pct, step = "failed", 100, "RCA failed"
        message = run.error_message or step
    elif run.status == RunStatus.QUEUED and run.step_count == 0:
        status, pct, step = "queued", 5, "Starting RCA"
        message = step
    else:
        pct, step = PROGRESS.get(run.state, (50, run.state))
        status, message = "running", step
    return {
        "status": status,
        "step": step,
        "pct": pct,
        "message": message[:500],
        "updated_at": run.updated_at.isoformat(),
    }


@transaction.atomic
def rca_feedback(
    *, rca_run: Run, actor, correct: bool, comment: str = "", expected_category: str = ""
) -> RcaFeedback:
    """A person's verdict on a finished report, kept as a labelled case."""
    report = (rca_run.result or {}).get("report")
    if rca_run.agent_name != NAME or not report:
        raise ValidationError({"rca_run": "Only a finished RCA report can be judged."})
    if expected_category and expected_category not in CATEGORIES:
        raise ValidationError({"expected_category": f"Use one of: {', '.join(CATEGORIES)}."})
    if not correct and not comment.strip():
        raise ValidationError({"comment": "Say what is wrong with the report."})
    feedback = RcaFeedback.objects.create(
        tenant=rca_run.tenant,
        rca_run=rca_run,
        target_run_id=rca_run.subject_id,
        telemetry_hash=str(rca_run.input.get("telemetry", ""))[:64],
        category=report.get("category", "unknown"),
        correct=correct,
        expected_category=expected_category,
        comment=comment[:5000],
        report=report,
        author=actor,
        created_at=timezone.now(),
    )
    audit.record(
        tenant=rca_run.tenant,
        actor=actor,
        action="rca.judged",
        target_type="run",
        target_id=rca_run.run_id,
        target_repr=f"{feedback.category}: {'right' if correct else 'wrong'}",
        metadata={"expected_category": expected_category, "comment": comment[:500]},
    )
    return feedback
