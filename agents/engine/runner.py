"""Running a run: start it, advance it one checkpointed state at a time, cancel or fail it.

1. ``start_run`` records a queued run and enqueues ``advance_run_task`` after commit.
2. The task claims the run (``claiming.claim``), opens the step (a crashed delivery's step is
   taken back, counting a retry), and runs one blueprint state with a ``StepContext``.
3. One transaction records the step (tool calls, guardrail events and model usage were written
   as it went) and moves the run to its next state. A worker's task then keeps the lease and
   goes on to the next state (the checkpoint opened its step) for up to ``RUN_CHAIN_SECONDS``;
   otherwise it releases the lease and the next task is enqueued after commit. A crash between
   steps loses nothing: the row says where to resume.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import traceback as tb
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agentops import audit, quotas, tracing
from agents import blueprints, metrics
from agents.blueprints import TERMINAL, WAIT, Outcome
from agents.engine import approvals, sql
from agents.engine.base import TransientStepError
from agents.engine.claiming import claim, enqueue, lease_seconds, release
from agents.engine.context import StepContext
from agents.engine.llm import agent_config, model_name
from agents.models import FINISHED_RUN_STATUSES, Run, RunStatus, Step
from agents.redaction import redact
from approvals.models import ApprovalRequest

log = logging.getLogger(__name__)


class BlueprintDisabled(ValidationError):
    """The tenant has not enabled the blueprint: nothing was started."""


@tracing.traced("agent.run.start")  # the run's trace: the request's, or its own root
def start_run(
    *,
    tenant,
    blueprint: str,
    subject_type: str = "",
    subject_id: str = "",
    subject_repr: str = "",
    actor=None,
    started_by_staff: bool = False,
    input: dict | None = None,
    config=None,
) -> Run:
    """``config``: the tenant's AgentConfig when the caller just read it (else read here).

    ``BlueprintDisabled`` is raised before anything is written, so a caller that carries on
    without the run (a ticket opened for people) keeps its transaction. The writes then join
    the caller's transaction without a savepoint (two round trips for every run started from
    a ticket): a failure among them fails the caller's change too, as it should."""
    bp = blueprints.get(blueprint)
    effective = blueprints.for_tenant(tenant, bp.name)
    if not effective.enabled:
        raise BlueprintDisabled(
            {"blueprint": f"The {bp.title or bp.name} blueprint is not enabled for this tenant."}
        )
    config = config or agent_config(tenant)
    with transaction.atomic(savepoint=False):
        return _create_run(
            tenant=tenant,
            bp=bp,
            effective=effective,
            config=config,
            subject_type=subject_type,
            subject_id=subject_id,
            subject_repr=subject_repr,
            actor=actor,
            started_by_staff=started_by_staff,
            input=input,
        )


def _create_run(
    *,
    tenant,
    bp,
    effective,
    config,
    subject_type: str,
    subject_id: str,
    subject_repr: str,
    actor,
    started_by_staff: bool,
    input: dict | None,
) -> Run:
    run = Run(
        tenant=tenant,
        agent_name=bp.name,
        agent_version=bp.version,
        model=model_name(config),
        subject_type=subject_type,
        subject_id=subject_id,
        subject_repr=subject_repr[:200],
        trace_id=tracing.current_trace_id(),
        state=bp.initial,
        input=input or {},
        started_by=actor if getattr(actor, "is_authenticated", False) else None,
        started_by_staff=started_by_staff,
        # Fixed for the run's life: a tenant's later change applies to later runs.
        blueprint_config={"config": effective.config, "tools": list(effective.tools)},
    )
    sql.insert(run)  # the ORM's INSERT, compiled once (a run opens with every ticket)
    quotas.meter_run(run)  # once per run, whoever started it
    audit.record(
        tenant=tenant,
        actor=actor,
        action="run.started",
        target_type="run",
        target_id=run.run_id,
        target_repr=f"{bp.name} for {subject_repr or subject_id}",
        metadata={"subject_type": subject_type, "subject_id": subject_id},
    )
    enqueue(run.pk)
    return run


@transaction.atomic
def request_cancel(*, run: Run, actor) -> Run:
    # Lock order as in a decision (approvals.services.decide locks the request, then its
    # handler locks the run): the run's pending requests first, then the run. The other
    # order could deadlock with a reviewer deciding at the same moment.
    approvals.lock_pending(run)
    locked = Run.objects.for_tenant(run.tenant).select_for_update().get(pk=run.pk)
    if locked.status in FINISHED_RUN_STATUSES:
        return locked
    locked.cancel_requested = True
    fields = ["cancel_requested", "updated_at"]
    if (
        locked.status in (RunStatus.WAITING_APPROVAL, RunStatus.QUEUED)
        or locked.lease_expires_at is None
    ):
        _finish(
            locked, RunStatus.CANCELLED, error_message=f"Cancelled by {audit.actor_label(actor)}"
        )
        fields += ["status", "ended_at", "error_message", "latency_ms"]
        approvals.cancel_pending(locked, actor=actor, reason="The run was cancelled.")
    locked.updated_at = timezone.now()
    locked.save(update_fields=fields)
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="run.cancelled",
        target_type="run",
        target_id=locked.run_id,
        target_repr=locked.subject_repr,
    )
    return locked


def _finish(
    run: Run, status: str, *, error_message: str = "", error_type: str = "", trace: str = ""
) -> None:
    now = timezone.now()
    metrics.RUNS_FINISHED.labels(run.agent_name, status).inc()
    run.status = status
    run.ended_at = now
    run.lease_expires_at = None
    if error_message:
        run.error_message = error_message[:5000]
    if error_type:
        run.error_type = error_type[:100]
    if trace:
        run.traceback = trace[-20000:]
    run.latency_ms = int(((now - (run.started_at or run.created_at)).total_seconds()) * 1000)


MAX_MODEL_RETRIES = 3
# What a step writes back to its run. Never cancel_requested: a cancel that arrives while the
# step runs must survive the step's save (the next claim honours it).
RUN_STEP_FIELDS = [
    "state",
    "state_data",
    "status",
    "result",
    "step_count",
    "tokens_prompt",
    "tokens_completion",
    "total_cost_usd",
    "updated_at",
    "ended_at",
    "lease_expires_at",
    "error_message",
    "error_type",
    "traceback",
    "latency_ms",
]


# Called with (run, step) when a chained step begins in the same task (the bench's query log
# splits its per-task counts there, so each step keeps a line of its own).
step_hooks: list = []


def chain_seconds() -> float:
    return float(getattr(settings, "RUN_CHAIN_SECONDS", 5))


def advance(run_id: int, *, chain: bool = False) -> str:
    """Run one state of one run. Returns a word saying what happened (for logs and tests).

    ``chain`` (a worker's task): after a checkpoint the same task goes straight on to the
    run's next state, while it has been running for less than ``RUN_CHAIN_SECONDS``. The
    checkpoint keeps the run's lease and opens the next step in the same statement, so a
    chained step costs no claim, no broker message and no task delivery. Nothing about a
    crash changes: the lease (kept alive by the heartbeat) expires, the watchdog hands the run
    on, and the next claim takes back the opened step, counting the retry.
    """
    carry: dict = {"chain_until": time.monotonic() + chain_seconds() if chain else None}
    word = _claimed_step(run_id, carry)
    while "next" in carry:
        word = _chained_step(run_id, carry)
    return word


@tracing.traced_advance  # a span per step, the run id on its log lines
def _claimed_step(run_id: int, carry: dict) -> str:
    run = claim(run_id)
    if run is None:
        return "not-claimed"
    if run.cancel_requested:
        with transaction.atomic():
            # The requests before the run: the order a decision takes its locks.
            approvals.cancel_pending(run, reason="The run was cancelled.")
            _finish(run, RunStatus.CANCELLED, error_message="Cancelled on request")
            run.save()
        return "cancelled"
    bp = blueprints.get(run.agent_name)
    config = getattr(run, "_claimed_config", None) or agent_config(run.tenant)
    step = run._opened_step  # opened by the claim, unless the run is at max_steps
    if step is None or run.step_count >= config.max_steps:
        return _fail(run, "StepLimit", f"Stopped after {run.step_count} steps (tenant max_steps).")
    if step.retries >= settings.RUN_DEAD_LETTER_AFTER:  # its deliveries keep dying: stop
        return _fail(run, "DeadLettered", _dead_letter_message(step), step=step)
    carry.update(run=run, bp=bp, config=config)
    return _run_step(run, step, carry)


@tracing.traced_advance
def _chained_step(run_id: int, carry: dict) -> str:
    step = carry.pop("next")
    for hook in step_hooks:
        hook(carry["run"], step)
    return _run_step(carry["run"], step, carry)


def _may_chain(run: Run, carry: dict) -> bool:
    until = carry.get("chain_until")
    return (
        until is not None
        and time.monotonic() < until
        and run.step_count < carry["config"].max_steps
    )


def _run_step(run: Run, step: Step, carry: dict) -> str:
    bp, config = carry["bp"], carry["config"]
    tracing.step_opened(run, step)
    ctx = StepContext(
        run=run,
        step=step,
        config=config,
        state=dict(run.state_data),
        blueprint=bp,
        memo=carry.setdefault("memo", {}),
        **_blueprint_limits(run, bp),
    )
    # Records a state carries (``audit.carry``: a policy verdict, say) go with the step's
    # checkpoint, or with an earlier append of the step; what is left is written at the end.
    with audit.carrying():
        return _run_state_and_checkpoint(run, step, ctx, carry)


def _run_state_and_checkpoint(run: Run, step: Step, ctx: StepContext, carry: dict) -> str:
    bp = carry["bp"]
    started = time.monotonic()
    from agents.llm.base import LLMUnavailable

    try:
        outcome = bp.run_state(run.state, ctx)
    except (LLMUnavailable, TransientStepError) as exc:
        audit.send_carried()  # before the retry or the escalation reads the calls back
        kind = "llm_unavailable" if isinstance(exc, LLMUnavailable) else "dependency_unavailable"
        ctx.guardrail(kind, f"Temporarily unavailable: {exc}", attempt=step.retries + 1)
        if step.retries + 1 < MAX_MODEL_RETRIES:
            # Give the step back and try again later; nothing of this attempt is lost.
            Step.objects.for_tenant(run.tenant).filter(pk=step.pk).update(
                status="waiting", output_summary=f"Temporarily unavailable, retrying: {exc}"
            )
            release(run, status=RunStatus.RUNNING)
            from agents.resilience import backoff_delay

            with transaction.atomic():
                enqueue(run.pk, countdown=backoff_delay(step.retries + 1, base=5, cap=120))
            return "model-retry"
        outcome = bp.on_model_unavailable(ctx, exc)
    except Exception as exc:
        trace = tb.format_exc()
        audit.send_carried()  # the failed run's escalation lists the calls and their verdicts
        return _fail(run, type(exc).__name__, str(exc), trace=trace, step=step)

    elapsed = int((time.monotonic() - started) * 1000)
    metrics.AGENT_REQUESTS.labels(run.agent_name, step.state, outcome.step_status).inc()
    metrics.AGENT_LATENCY.labels(run.agent_name, step.state).observe(elapsed / 1000)
    # One transaction for the step's record, the run's checkpoint and what finishing does
    # (the blueprint's on_finished, the run.* event); its audit events go in together.
    with audit.batched():
        _record_step(step, outcome, ctx, elapsed)
        run.step_count = step.seq
        run.state_data = _jsonable(ctx.state)
        run.tokens_prompt += ctx.usage["in"]
        run.tokens_completion += ctx.usage["out"]
        run.total_cost_usd = (run.total_cost_usd or Decimal(0)) + Decimal(
            str(round(ctx.usage["cost"], 6))
        )
        run.updated_at = timezone.now()
        if outcome.next_state in TERMINAL:
            run.state = outcome.next_state
            _finish(
                run,
                TERMINAL[outcome.next_state],
                error_message=outcome.summary if outcome.next_state != blueprints.DONE else "",
            )
            run.result = {**run.result, "summary": outcome.summary}
            if "report" in outcome.detail:  # a blueprint's report is the run's result
                run.result["report"] = _jsonable(outcome.detail["report"])
            audit.record(
                tenant=run.tenant,
                actor=None,
                action=f"run.{run.status}",
                target_type="run",
                target_id=run.run_id,
                target_repr=run.subject_repr,
                metadata={"summary": outcome.summary[:500]},
            )
            # The checkpoint and the run.* event: one round trip. What finishing does in the
            # blueprint comes after, in the same transaction (its events appended at the end).
            _save_step_and_run(step, run, with_audit=True)
            bp.on_finished(run)
            return run.status
        if outcome.next_state == WAIT:
            run.status = RunStatus.WAITING_APPROVAL
            run.lease_expires_at = None
            _save_step_and_run(step, run)
            # A reviewer may have decided between the request's commit (mid-step) and this
            # save: the handler then found the run still running and could not resume it.
            # Read after the UPDATE (which waited for any decision holding the run's row), so
            # such a decision is seen here and the run resumes instead of parking forever.
            early = approvals.decided_while_parking(run, since=step.started_at)
            if early is not None:
                request, call = early
                run.state = bp.on_decision(
                    run, call, request.status == ApprovalRequest.Status.APPROVED
                )
                run.status = RunStatus.QUEUED
                run.save(update_fields=["state", "status"])
                enqueue(run.pk)
                return "advanced"
            return "parked"
        run.state = outcome.next_state
        if _may_chain(run, carry):
            # Keep the lease and open the next step with the checkpoint: this task runs it.
            run.lease_expires_at = timezone.now() + timedelta(seconds=lease_seconds())
            opened = _save_step_and_run(step, run, open_next=True)
            if opened is not None:
                carry["next"] = opened
                return "advanced"
            # A cancel arrived during the step: give the run back; its next claim cancels it.
            release(run, status=RunStatus.RUNNING)
        else:
            run.lease_expires_at = None
            _save_step_and_run(step, run)
        enqueue(run.pk)
    return "advanced"


def _dead_letter_message(step: Step) -> str:
    return (
        f"Dead-lettered: the {step.state} step was delivered {step.retries + 1} times and its "
        f"worker died each time before it finished ({step.retries} deliveries lost); it is "
        "not tried again."
    )


def _blueprint_limits(run: Run, bp) -> dict:
    """The tools and config the run was started with (runs from before: the declared ones)."""
    saved = run.blueprint_config or {}
    tools = saved.get("tools", bp.tools)
    return {
        "allowed_tools": frozenset(tools) if (tools or bp.tools) else None,
        "blueprint_config": {**bp.default_config, **saved.get("config", {})},
    }


STEP_RECORD_FIELDS = [
    "status",
    "ended_at",
    "updated_at",
    "latency_ms",
    "input_summary",
    "output_summary",
    "detail",
    "tokens_prompt",
    "tokens_completion",
    "cost_usd",
]


def _record_step(step: Step, outcome: Outcome, ctx: StepContext, elapsed: int) -> None:
    """The step's outcome onto the row object; written with the run's checkpoint
    (``_save_step_and_run``)."""
    step.status = outcome.step_status
    step.ended_at = timezone.now()
    step.updated_at = step.ended_at
    step.latency_ms = elapsed
    step.input_summary = redact(outcome.input_summary).text[:4000]
    step.output_summary = redact(outcome.summary).text[:4000]
    step.detail = _jsonable(outcome.detail)
    step.tokens_prompt = ctx.usage["in"]
    step.tokens_completion = ctx.usage["out"]
    step.cost_usd = Decimal(str(round(ctx.usage["cost"], 6)))


def _save_step_and_run(
    step: Step, run: Run, *, open_next: bool = False, with_audit: bool = False
) -> Step | None:
    """The step's record, its model usage (metered once per step) and the run's checkpoint
    in one statement: three writes, one round trip. ``with_audit``: sent in front of the
    audit events the open ``audit.batched`` block holds so far (``audit.flush``), still one
    round trip.

    ``open_next``: the same statement also opens the run's next step (the run keeps its
    lease) and reads whether a cancel was requested meanwhile. Returns the opened step, or
    None when a cancel is pending (the opened row is removed again; the caller gives the run
    back so its next claim cancels it).
    """
    usage = quotas.step_usage(run, step)
    metering = quotas.meter_statement(**usage)
    parts = [sql.update_sql(step, STEP_RECORD_FIELDS)]
    if metering is not None:
        parts.append(metering)
    counted = "(SELECT count(*) FROM part_2)" if metering is not None else "0"
    if not open_next and (with_audit or audit.carried_pending()):
        rows: list = []
        statement, params = sql.together(
            sql.update_sql(run, RUN_STEP_FIELDS), *parts, returning=counted
        )
        audit.flush(statement, params, on_result=lambda cursor: rows.append(cursor.fetchone()))
        row = rows[0] if metering is not None else None
    elif not open_next:
        row = sql.execute_together(
            sql.update_sql(run, RUN_STEP_FIELDS),
            *parts,
            returning=counted if metering is not None else "",
        )
    else:
        update_run, params = sql.update_sql(run, RUN_STEP_FIELDS)
        parts.append((update_run + " RETURNING cancel_requested", params))
        nxt = _next_step(run)
        together = (
            sql.insert_sql(nxt),
            *parts,
        )
        returning = f"id, {counted}, (SELECT cancel_requested FROM part_{len(parts)})"  # noqa: S608
        if audit.carried_pending():  # the carried records and their events in the same trip
            rows = []
            statement, params = sql.together(*together, returning=returning)
            audit.flush(statement, params, on_result=lambda cursor: rows.append(cursor.fetchone()))
            row = rows[0]
        else:
            row = sql.execute_together(*together, returning=returning)
        nxt.pk = row[0]
        row = row[1:]
    if row is not None and row[0]:
        quotas.metered(run.tenant, usage["metric"])
    if not open_next:
        return None
    if row[1]:
        Step.objects.for_tenant(run.tenant).filter(pk=nxt.pk).delete()
        return None
    return nxt


def _next_step(run: Run) -> Step:
    """The step a chained checkpoint opens (what the claim would have opened)."""
    now = timezone.now()
    seq = run.step_count + 1
    return Step(
        tenant=run.tenant,
        run=run,
        seq=seq,
        step_id=f"step-{seq:03d}",
        name=blueprints.get(run.agent_name).step_name(run.state),
        state=run.state,
        status="running",
        started_at=now,
        updated_at=now,
    )


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _fail(
    run: Run, error_type: str, message: str, *, trace: str = "", step: Step | None = None
) -> str:
    with transaction.atomic():
        locked = Run.objects.for_tenant(run.tenant).select_for_update().get(pk=run.pk)
        if locked.status in FINISHED_RUN_STATUSES:
            return locked.status
        if step is not None:
            Step.objects.for_tenant(run.tenant).filter(pk=step.pk).update(
                status="failure",
                ended_at=timezone.now(),
                updated_at=timezone.now(),
                output_summary=redact(f"{error_type}: {message}").text[:4000],
            )
        _finish(
            locked,
            RunStatus.FAILED,
            error_type=error_type,
            error_message=redact(message).text,
            trace=trace,
        )
        locked.save()
        with contextlib.suppress(LookupError):
            blueprints.get(locked.agent_name).on_finished(locked)
        audit.record(
            tenant=locked.tenant,
            actor=None,
            action="run.failed",
            target_type="run",
            target_id=locked.run_id,
            target_repr=locked.subject_repr,
            metadata={"error": f"{error_type}: {message}"[:500]},
        )
    log.warning("run %s failed: %s: %s", run.run_id, error_type, message)
    return RunStatus.FAILED


def mark_failed(run_id: int, error_type: str, message: str, trace: str = "") -> None:
    """The task's failure hook: whatever broke, the run says so, with the traceback."""
    run = (
        Run.objects.unscoped("failure hook by id")
        .select_related("tenant")
        .filter(pk=run_id)
        .first()
    )
    if run is not None:
        _fail(run, error_type, message, trace=trace)
