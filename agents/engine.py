"""The engine: advances a run one checkpointed state at a time.

1. ``start_run`` records a queued run and enqueues ``advance_run_task`` after commit.
2. The task claims the run with one conditional UPDATE (status active, lease free or expired);
   a task that loses the claim returns. The lease lets the watchdog re-enqueue runs whose
   worker died.
3. It runs exactly one blueprint state, records the step (and its tool calls, guardrail events,
   model usage), moves the run to the next state and releases the lease — in one transaction —
   and enqueues the next task after commit.
4. Tool calls are keyed by (run, tool, arguments): a re-run step finds the call it already made,
   and the connector dedupes on the idempotency key, so nothing is ever applied twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import traceback as tb
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.query import RawQuerySet
from django.utils import timezone

from agentops import audit
from agents import blueprints, metrics, policy
from agents.blueprints import TERMINAL, WAIT, Outcome
from agents.models import (
    FINISHED_RUN_STATUSES,
    AgentConfig,
    GuardrailEvent,
    PolicyRule,
    Run,
    RunStatus,
    Step,
    ToolCall,
)
from agents.redaction import redact, redact_value

log = logging.getLogger(__name__)

APPROVAL_HANDLER = "agents.run"
MAX_TOOL_RETRIES = 3


class TransientStepError(Exception):
    """A dependency of the step failed in a way that may heal: retry the step later."""


def lease_seconds() -> int:
    return getattr(settings, "RUN_LEASE_SECONDS", 180)


def args_hash(args: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()


def agent_config(tenant) -> AgentConfig:
    config = AgentConfig.objects.for_tenant(tenant).first()
    if config is None:
        config, _ = AgentConfig.objects.for_tenant(tenant).get_or_create(
            tenant=tenant,
            defaults={"auto_resolve_on_create": getattr(settings, "AGENT_AUTOSTART_DEFAULT", True)},
        )
    return config


# --------------------------------------------------------------------------- starting


def _enqueue(run_id: int, *, countdown: float | None = None) -> None:
    from agents.tasks import advance_run_task

    def send():
        if countdown:
            advance_run_task.apply_async((run_id,), countdown=countdown)
        else:
            advance_run_task.delay(run_id)

    transaction.on_commit(send)


@transaction.atomic
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
) -> Run:
    bp = blueprints.get(blueprint)
    config = agent_config(tenant)
    run = Run.objects.create(
        tenant=tenant,
        agent_name=bp.name,
        agent_version=bp.version,
        model=_model_name(config),
        subject_type=subject_type,
        subject_id=subject_id,
        subject_repr=subject_repr[:200],
        state=bp.initial,
        input=input or {},
        started_by=actor if getattr(actor, "is_authenticated", False) else None,
        started_by_staff=started_by_staff,
    )
    audit.record(
        tenant=tenant,
        actor=actor,
        action="run.started",
        target_type="run",
        target_id=run.run_id,
        target_repr=f"{bp.name} for {subject_repr or subject_id}",
        metadata={"subject_type": subject_type, "subject_id": subject_id},
    )
    _enqueue(run.pk)
    return run


@transaction.atomic
def request_cancel(*, run: Run, actor) -> Run:
    # Lock order as in a decision (approvals.services.decide locks the request, then its
    # handler locks the run): the run's pending requests first, then the run. The other
    # order could deadlock with a reviewer deciding at the same moment.
    _lock_open_approvals(run)
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
        _cancel_open_approvals(locked)
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


def _open_approvals(run: Run):
    from approvals.models import ApprovalRequest

    return ApprovalRequest.objects.for_tenant(run.tenant).filter(
        handler=APPROVAL_HANDLER, subject_type="run", subject_id=str(run.pk), status="pending"
    )


def _lock_open_approvals(run: Run) -> None:
    list(_open_approvals(run).select_for_update().values_list("pk", flat=True))


def _cancel_open_approvals(run: Run) -> None:
    from approvals.models import ApprovalRequest

    ApprovalRequest.objects.for_tenant(run.tenant).filter(
        handler=APPROVAL_HANDLER, subject_type="run", subject_id=str(run.pk), status="pending"
    ).update(status=ApprovalRequest.Status.CANCELLED)


# --------------------------------------------------------------------------- claiming


_CLAIM_SQL = None


def _claim_sql() -> str:
    """UPDATE … RETURNING the whole run row: the claim and the read in one round trip."""
    global _CLAIM_SQL
    if _CLAIM_SQL is None:
        table = Run._meta.db_table
        columns = ", ".join(f'"{f.column}"' for f in Run._meta.concrete_fields)
        _CLAIM_SQL = (
            f'UPDATE "{table}" SET status = %s, lease_expires_at = %s, '  # noqa: S608
            "deliveries = deliveries + 1, started_at = COALESCE(started_at, %s), updated_at = %s "
            "WHERE id = %s AND status IN (%s, %s) "
            "AND (lease_expires_at IS NULL OR lease_expires_at < %s) "
            f"RETURNING {columns}"
        )
    return _CLAIM_SQL


def claim(run_id: int) -> Run | None:
    """Take the run for one step. One conditional UPDATE: exactly one task wins.

    The UPDATE returns the claimed row (converted by the ORM like any query), so winning and
    reading the run cost one round trip; the tenant comes with the agent config (one join).
    """
    now = timezone.now()
    rows = list(
        RawQuerySet(
            _claim_sql(),
            model=Run,
            params=[
                RunStatus.RUNNING,
                now + timedelta(seconds=lease_seconds()),
                now,
                now,
                run_id,
                RunStatus.QUEUED,
                RunStatus.RUNNING,
                now,
            ],
        )
    )
    if not rows:
        return None
    run = rows[0]
    config = (
        AgentConfig.objects.unscoped("the claimed run's tenant")
        .select_related("tenant")
        .filter(tenant_id=run.tenant_id)
        .first()
    )
    if config is None:  # the tenant's first run: the config is created with its defaults
        from agentops.models import Tenant

        config = agent_config(Tenant.objects.get(pk=run.tenant_id))
    run.tenant = config.tenant
    run._claimed_config = config
    return run


def _release(run: Run, **fields) -> None:
    fields.setdefault("lease_expires_at", None)
    fields.setdefault("updated_at", timezone.now())
    Run.objects.for_tenant(run.tenant).filter(pk=run.pk).update(**fields)


# --------------------------------------------------------------------------- one step


@dataclass
class StepContext:
    """What a blueprint state gets: the run, its checkpoint data, the model, tools, guardrails."""

    run: Run
    step: Step
    config: AgentConfig
    state: dict[str, Any]
    usage: dict[str, Any] = field(default_factory=lambda: {"in": 0, "out": 0, "cost": 0.0, "ms": 0})

    @property
    def tenant(self):
        return self.run.tenant

    # -- guardrails and redaction ----------------------------------------------------------

    def guardrail(
        self, type: str, message: str, *, tool_call: ToolCall | None = None, **detail
    ) -> GuardrailEvent:
        event = GuardrailEvent.objects.create(
            tenant=self.tenant,
            run=self.run,
            step=self.step,
            tool_call=tool_call,
            event_id=f"guard-{self.run.pk}-{self.step.seq}-{GuardrailEvent.objects.for_tenant(self.tenant).filter(run=self.run).count() + 1}",
            type=type,
            message=redact(message).text,
            detail=detail,
        )
        self._touch()
        return event

    def redact(self, text: str, *, where: str) -> str:
        """Redact sensitive data; a guardrail event records each kind found (never the value)."""
        result = redact(text)
        if result.changed:
            self.guardrail(
                "redaction",
                f"Sensitive data redacted from {where}: {', '.join(result.findings)}.",
                findings=list(result.findings),
                where=where,
            )
        return result.text

    # -- the model -------------------------------------------------------------------------

    def complete(
        self, *, system: str, messages: list[dict], tools=(), tool_choice: str | None = None
    ):
        backend = backend_for(self.config)
        try:
            response = backend.complete(
                system=system,
                messages=messages,
                tools=list(tools),
                tool_choice=tool_choice,
                max_tokens=self.config.max_tokens,
                limit_key=f"tenant-{self.tenant.pk}",
            )
        except Exception as exc:
            metrics.LLM_REQUESTS.labels(getattr(backend, "name", "?"), type(exc).__name__).inc()
            raise
        metrics.LLM_REQUESTS.labels(response.backend, "ok").inc()
        metrics.LLM_TOKENS.labels(response.backend, "input").inc(response.usage.input_tokens)
        metrics.LLM_TOKENS.labels(response.backend, "output").inc(response.usage.output_tokens)
        if response.rate_limit_wait_ms:
            metrics.LLM_RATE_LIMIT_WAITS.labels(response.backend).inc()
            metrics.LLM_RATE_LIMIT_WAIT_SECONDS.labels(response.backend).inc(
                response.rate_limit_wait_ms / 1000
            )
        self.usage["in"] += response.usage.input_tokens
        self.usage["out"] += response.usage.output_tokens
        self.usage["cost"] += float(response.cost_usd or 0)
        self.usage["ms"] += int(response.latency_ms or 0)
        if response.rate_limit_wait_ms:
            self.guardrail(
                "rate_limited",
                f"Waited {response.rate_limit_wait_ms} ms for the model's rate limit.",
                wait_ms=response.rate_limit_wait_ms,
            )
        return response

    # -- tools -----------------------------------------------------------------------------

    def propose(self, tool_name: str, args: Any, *, call_id: str = "") -> ToolCall:
        """Record a tool call the model proposed (or find the one this step already recorded).

        Arguments are validated against the tool's schema here: an invalid call is recorded as
        failed with a guardrail event and can never reach a connector.
        """
        from agents.tools import registry

        clean_args, findings = redact_value(args if isinstance(args, dict) else {"_raw": args})
        digest = args_hash(clean_args)
        key = f"{self.run.run_id}:{tool_name}:{digest[:32]}"
        existing = ToolCall.objects.for_tenant(self.tenant).filter(idempotency_key=key).first()
        if existing is not None:
            return existing
        call = ToolCall.objects.create(
            tenant=self.tenant,
            run=self.run,
            step=self.step,
            call_id=call_id or f"call-{self.run.pk}-{self.step.seq}-{digest[:8]}",
            tool_name=tool_name[:100],
            args_json=clean_args,
            args_hash=digest,
            idempotency_key=key,
        )
        if findings:
            self.guardrail(
                "redaction",
                f"Sensitive data redacted from the arguments of {tool_name}.",
                tool_call=call,
                findings=list(findings),
            )
        try:
            tool = registry.get(tool_name)
        except KeyError:
            tool = None
        errors = ["unknown tool"] if tool is None else registry.validate_args(tool, args)
        if errors:
            call.status = ToolCall.Status.FAILURE
            call.error_class = "SchemaValidation"
            call.error_message = "; ".join(errors)[:2000]
            call.status_code = 400
            call.ended_at = timezone.now()
            call.save(
                update_fields=["status", "error_class", "error_message", "status_code", "ended_at"]
            )
            self.guardrail(
                "schema_validation",
                f"{tool_name}: arguments rejected before any connector call: {call.error_message}",
                tool_call=call,
            )
        return call

    def tool_context(self, call: ToolCall):
        from agents.tools.base import ToolContext

        return ToolContext(
            tenant=self.tenant,
            run_id=self.run.pk,
            idempotency_key=call.idempotency_key,
            actor=self.run.started_by,
            subject_email=self.state.get("subject_email", ""),
            started_by_staff=self.run.started_by_staff,
            subject=self.state.get("subject"),
        )

    def check_policy(self, call: ToolCall) -> policy.Verdict:
        """Decide in code whether the call may run; record the verdict on the call."""
        from agents.tools import registry

        try:
            tool = registry.get(call.tool_name)
        except KeyError:
            tool = None
        target = None
        if tool is not None:
            try:
                target = tool.target_email(self.tool_context(call), call.args_json)
            except Exception as exc:
                # Who a call affects must be known before it may run: retry the step later.
                raise TransientStepError(
                    f"could not resolve the target of {call.tool_name}: {exc}"
                ) from exc
        rules = {
            r.action: (r.verdict, r.reason)
            for r in PolicyRule.objects.for_tenant(self.tenant).only("action", "verdict", "reason")
        }
        facts = policy.PolicyFacts(
            subject_email=self.state.get("subject_email", ""),
            started_by_staff=self.run.started_by_staff,
            identity_verified=bool(self.state.get("identity_verified")),
            target_email=target,
            authorized_software=tuple(
                self.config.authorized_software or policy.DEFAULT_AUTHORIZED_SOFTWARE
            ),
            tenant_rules=rules,
        )
        verdict = policy.decide(call.tool_name, call.args_json, facts, known_tool=tool is not None)
        call.policy_verdict = verdict.decision
        call.policy_reason = verdict.reason
        fields = ["policy_verdict", "policy_reason"]
        if verdict.decision == policy.BLOCK:
            call.status = ToolCall.Status.BLOCKED
            fields.append("status")
            self.guardrail("policy_block", verdict.reason, tool_call=call)
        elif verdict.decision == policy.NEEDS_IDENTITY:
            self.guardrail("identity_verification_required", verdict.reason, tool_call=call)
        elif verdict.decision == policy.NEEDS_APPROVAL:
            self.guardrail("approval_required", verdict.reason, tool_call=call)
        call.save(update_fields=fields)
        self._touch(call)
        audit.record(
            tenant=self.tenant,
            actor=None,
            action="policy.verdict",
            target_type="tool_call",
            target_id=call.call_id,
            target_repr=call.tool_name,
            changes={"verdict": verdict.decision, "reason": verdict.reason},
            metadata={"run_id": self.run.run_id},
        )
        return verdict

    def request_approval(
        self,
        call: ToolCall,
        *,
        priority: str = "high",
        evidence: dict | None = None,
        scope: str = "",
    ):
        from approvals.services import request_approval

        call.status = ToolCall.Status.AWAITING_APPROVAL
        call.save(update_fields=["status"])
        return request_approval(
            tenant=self.tenant,
            handler=APPROVAL_HANDLER,
            handler_ref=str(call.pk),
            subject_type="run",
            subject_id=str(self.run.pk),
            subject_repr=self.run.subject_repr,
            action=call.tool_name,
            arguments=call.args_json,
            risk="high",
            reason=call.policy_reason,
            evidence={**self.approval_evidence(), **(evidence or {})},
            priority=priority,
            requested_by=self.run.started_by,
            requested_by_label=f"agent ({self.run.agent_name})",
            scope=scope,  # who else may decide it (approvals.access), named by the blueprint
        )

    def approval_evidence(self, *, steps: int = 6, citations: int = 8) -> dict:
        """What a reviewer sees beside the action: the run's latest steps and the knowledge
        articles they cited (a step's detail, or the run's state, may carry "citations":
        [{title, url, heading}])."""
        recent = list(
            Step.objects.for_tenant(self.tenant)
            .filter(run=self.run)
            .order_by("-seq")
            .values("seq", "name", "state", "status", "output_summary", "detail")[:steps]
        )
        timeline, found = [], []
        for step in reversed(recent):
            timeline.append(
                {
                    "seq": step["seq"],
                    "name": step["name"] or step["state"],
                    "status": step["status"],
                    "summary": (step["output_summary"] or "")[:300],
                }
            )
            if isinstance(step["detail"], dict):
                found.append(step["detail"].get("citations"))
        found.append(self.state.get("citations"))
        cited, seen = [], set()
        for items in found:
            for item in items if isinstance(items, list) else []:
                if not isinstance(item, dict) or len(cited) >= citations:
                    continue
                key = (item.get("url") or "", item.get("title") or "", item.get("heading") or "")
                if key not in seen:
                    seen.add(key)
                    cited.append(
                        {
                            "title": str(key[1])[:200],
                            "url": str(key[0])[:500],
                            "heading": str(key[2])[:200],
                        }
                    )
        return {"timeline": timeline, "citations": cited}

    def approved(self, call: ToolCall) -> bool:
        """An approval exists for exactly these arguments (edited arguments rebind the hash)."""
        from approvals.models import ApprovalRequest

        return (
            ApprovalRequest.objects.for_tenant(self.tenant)
            .filter(
                handler=APPROVAL_HANDLER,
                handler_ref=str(call.pk),
                status="approved",
                arguments_hash=call.args_hash,
            )
            .exists()
        )

    def execute(self, call: ToolCall) -> ToolCall:
        """Run a tool call whose verdict allows it (or that a reviewer approved). Idempotent."""
        from agents.tools import registry

        if call.status == ToolCall.Status.SUCCESS:
            return call  # done in an earlier delivery of this step
        allowed = call.policy_verdict == policy.ALLOW or (
            call.policy_verdict == policy.NEEDS_APPROVAL and self.approved(call)
        )
        if not allowed:
            raise PermissionError(f"{call.tool_name} has no allowing verdict; refusing to run it")
        tool = registry.get(call.tool_name)
        if call.status == ToolCall.Status.RUNNING:
            call.retries += 1  # a crash interrupted it: the connector dedupes on the key
        call.status = ToolCall.Status.RUNNING
        call.save(update_fields=["status", "retries"])
        ctx = self.tool_context(call)
        started = time.monotonic()
        try:
            result = tool.run(ctx, call.args_json)
            _fault_point("after_tool")
            verified = tool.verify(ctx, call.args_json, result) if result.ok else False
        except Exception as exc:
            from agents.tools.base import ToolResult

            result = ToolResult(
                ok=False,
                summary=f"{type(exc).__name__}: {exc}",
                status_code=getattr(exc, "status_code", 500),
                error_class=getattr(exc, "error_class", type(exc).__name__),
                error_message=str(exc),
            )
            verified = False
        call.latency_ms = int((time.monotonic() - started) * 1000)
        if not result.ok and result.retryable and call.retries < MAX_TOOL_RETRIES:
            # The connector is down or timed out: the step is retried later with the same
            # idempotency key (the connector applies it at most once).
            call.error_class = result.error_class
            call.error_message = redact(result.error_message or result.summary).text[:2000]
            call.status_code = result.status_code
            call.save(update_fields=["error_class", "error_message", "status_code", "latency_ms"])
            raise TransientStepError(f"{call.tool_name}: {call.error_message}")
        summary = redact(result.summary).text
        call.status = ToolCall.Status.SUCCESS if result.ok else ToolCall.Status.FAILURE
        call.result_summary = summary[:2000]
        call.result_json = redact_value(result.data)[0]
        call.verified = verified if result.ok else None
        call.status_code = result.status_code
        call.error_class = result.error_class
        call.error_message = redact(result.error_message).text[:2000]
        call.ended_at = timezone.now()
        call.save(
            update_fields=[
                "status",
                "result_summary",
                "result_json",
                "verified",
                "status_code",
                "error_class",
                "error_message",
                "ended_at",
                "latency_ms",
            ]
        )
        metrics.TOOL_EXECUTIONS.labels(call.tool_name, call.status).inc()
        audit.record(
            tenant=self.tenant,
            actor=None,
            action="tool.executed",
            target_type="tool_call",
            target_id=call.call_id,
            target_repr=call.tool_name,
            changes={"status": call.status, "verified": call.verified},
            metadata={"run_id": self.run.run_id, "args": call.args_json},
        )
        if result.ok and not verified:
            self.guardrail(
                "verification_failed",
                f"{call.tool_name} reported success but its effect was not found.",
                tool_call=call,
            )
        self._touch(call)
        return call

    def _touch(self, call: ToolCall | None = None) -> None:
        """Mark the step (and the step that proposed ``call``) changed, for the live timeline."""
        ids = {self.step.pk} | ({call.step_id} if call is not None and call.step_id else set())
        Step.objects.for_tenant(self.tenant).filter(pk__in=ids).update(updated_at=timezone.now())


def _fault_point(name: str) -> None:
    """Fault injection for the crash tests: pause here so a test can SIGKILL the worker.

    Only honoured under AGENTOPS_ENV=test, from AGENTOPS_FAULT_SLEEP_<NAME> (seconds).
    """
    if settings.ENVIRONMENT != "test":
        return
    seconds = os.environ.get(f"AGENTOPS_FAULT_SLEEP_{name.upper()}")
    if seconds:
        time.sleep(float(seconds))


def backend_for(config: AgentConfig):
    """The LLM backend for a tenant's settings (tests may monkeypatch this function)."""
    from agents.llm import get_backend

    return get_backend(llm_config(config))


def llm_config(config: AgentConfig):

    from agents.llm.config import LLMConfig

    key = (
        os.environ.get(config.api_key_env, "") if config.api_key_env else settings.ANTHROPIC_API_KEY
    )
    backend = config.llm_backend
    if backend == AgentConfig.Backend.AUTO:
        backend = "anthropic" if key else "offline"
    return LLMConfig.from_settings(
        backend=backend,
        model=config.llm_model or settings.ANTHROPIC_MODEL,
        api_key=key,
        max_tokens=config.max_tokens,
        requests_per_minute=config.requests_per_minute,
        tokens_per_minute=config.tokens_per_minute,
        limit_key=f"tenant-{config.tenant_id}",
    )


def _model_name(config: AgentConfig) -> str:
    try:
        cfg = llm_config(config)
    except Exception:  # settings problems surface when the run starts its first step
        return ""
    return cfg.model if cfg.backend == "anthropic" else "offline"


_OPEN_STEP_SQL = None


def _open_step(run: Run, bp) -> Step:
    """Insert the run's next step, or take back the one a crashed delivery left (one query)."""
    global _OPEN_STEP_SQL
    if _OPEN_STEP_SQL is None:
        table = Step._meta.db_table
        columns = ", ".join(f'"{f.column}"' for f in Step._meta.concrete_fields)
        _OPEN_STEP_SQL = (
            f'INSERT INTO "{table}" (tenant_id, run_id, seq, step_id, name, state, status, '  # noqa: S608
            "started_at, updated_at, input_summary, output_summary, detail, retries, latency_ms, "
            "tokens_prompt, tokens_completion, cost_usd) "
            "VALUES (%s, %s, %s, %s, %s, %s, 'running', %s, %s, '', '', '{}'::jsonb, 0, 0, 0, 0, 0) "
            # A previous delivery crashed in this step: resume it, counting the retry.
            "ON CONFLICT (run_id, seq) DO UPDATE SET retries = "
            f"\"{table}\".retries + 1, status = 'running' "
            f"RETURNING {columns}"
        )
    seq = run.step_count + 1
    now = timezone.now()
    [step] = RawQuerySet(
        _OPEN_STEP_SQL,
        model=Step,
        params=[
            run.tenant_id,
            run.pk,
            seq,
            f"step-{seq:03d}",
            bp.step_name(run.state),
            run.state,
            now,
            now,
        ],
    )
    step.tenant = run.tenant
    step.run = run
    return step


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


def advance(run_id: int) -> str:
    """Run one state of one run. Returns a word saying what happened (for logs and tests)."""
    run = claim(run_id)
    if run is None:
        return "not-claimed"
    if run.cancel_requested:
        with transaction.atomic():
            _cancel_open_approvals(run)  # the requests before the run: the decisions' order
            _finish(run, RunStatus.CANCELLED, error_message="Cancelled on request")
            run.save()
        return "cancelled"
    bp = blueprints.get(run.agent_name)
    config = getattr(run, "_claimed_config", None) or agent_config(run.tenant)
    if run.step_count >= config.max_steps:
        return _fail(run, "StepLimit", f"Stopped after {run.step_count} steps (tenant max_steps).")

    step = _open_step(run, bp)
    ctx = StepContext(run=run, step=step, config=config, state=dict(run.state_data))
    started = time.monotonic()
    from agents.llm.base import LLMUnavailable

    try:
        outcome = bp.run_state(run.state, ctx)
    except (LLMUnavailable, TransientStepError) as exc:
        kind = "llm_unavailable" if isinstance(exc, LLMUnavailable) else "dependency_unavailable"
        ctx.guardrail(kind, f"Temporarily unavailable: {exc}", attempt=step.retries + 1)
        if step.retries + 1 < MAX_MODEL_RETRIES:
            # Give the step back and try again later; nothing of this attempt is lost.
            Step.objects.for_tenant(run.tenant).filter(pk=step.pk).update(
                status="waiting", output_summary=f"Temporarily unavailable, retrying: {exc}"
            )
            _release(run, status=RunStatus.RUNNING)
            from agents.resilience import backoff_delay

            with transaction.atomic():
                _enqueue(run.pk, countdown=backoff_delay(step.retries + 1, base=5, cap=120))
            return "model-retry"
        outcome = bp.on_model_unavailable(ctx, exc)
    except Exception as exc:
        return _fail(run, type(exc).__name__, str(exc), trace=tb.format_exc(), step=step)

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
            run.save(update_fields=RUN_STEP_FIELDS)
            bp.on_finished(run)
            audit.record(
                tenant=run.tenant,
                actor=None,
                action=f"run.{run.status}",
                target_type="run",
                target_id=run.run_id,
                target_repr=run.subject_repr,
                metadata={"summary": outcome.summary[:500]},
            )
            return run.status
        if outcome.next_state == WAIT:
            run.status = RunStatus.WAITING_APPROVAL
            run.lease_expires_at = None
            run.save(update_fields=RUN_STEP_FIELDS)
            # A reviewer may have decided between the request's commit (mid-step) and this
            # save: the handler then found the run still running and could not resume it.
            # Read after the UPDATE (which waited for any decision holding the run's row), so
            # such a decision is seen here and the run resumes instead of parking forever.
            early = _decided_while_parking(run, since=step.started_at)
            if early is not None:
                request, call = early
                run.state = bp.on_decision(run, call, request.status == "approved")
                run.status = RunStatus.QUEUED
                run.save(update_fields=["state", "status"])
                _enqueue(run.pk)
                return "advanced"
            return "parked"
        run.state = outcome.next_state
        run.lease_expires_at = None
        run.save(update_fields=RUN_STEP_FIELDS)
        _enqueue(run.pk)
    return "advanced"


def _record_step(step: Step, outcome: Outcome, ctx: StepContext, elapsed: int) -> None:
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
    step.save(
        update_fields=[
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


# --------------------------------------------------------------------------- approvals


def on_approval_decided(request) -> None:
    """Approval handler "agents.run": a reviewer decided on a parked tool call."""
    run = Run.objects.for_tenant(request.tenant).select_for_update().get(pk=int(request.subject_id))
    call = ToolCall.objects.for_tenant(request.tenant).get(pk=int(request.handler_ref), run=run)
    approved = request.status == "approved"
    if approved and request.edited_arguments is not None:
        # Edit-then-approve: the call now carries the edited arguments; the approval is bound
        # to their hash (approvals.services rebinds it), so executing them is allowed.
        call.args_json = request.edited_arguments
        call.args_hash = args_hash(request.edited_arguments)
    call.status = ToolCall.Status.PROPOSED if approved else ToolCall.Status.REJECTED
    if approved:
        call.policy_reason = (
            f"{call.policy_reason} Approved by {audit.actor_label(request.decided_by)}."
        )
    elif request.status == "expired":  # expiry never approves: the run goes to a person
        call.policy_reason = "Not approved in time: the approval request expired undecided."
    else:
        call.policy_reason = (
            f"Rejected by {audit.actor_label(request.decided_by)}: {request.comment}"
        )
    call.save(update_fields=["status", "policy_reason", "args_json", "args_hash"])
    if call.step_id:  # the live timeline shows the decision on the step that proposed it
        Step.objects.for_tenant(request.tenant).filter(pk=call.step_id).update(
            updated_at=timezone.now()
        )
    if run.status != RunStatus.WAITING_APPROVAL:
        return  # cancelled or finished meanwhile: the decision is recorded, nothing resumes
    bp = blueprints.get(run.agent_name)
    run.state = bp.on_decision(run, call, approved)
    run.status = RunStatus.QUEUED
    run.updated_at = timezone.now()
    run.save(update_fields=["state", "status", "updated_at"])
    _enqueue(run.pk)


def _decided_while_parking(run: Run, *, since):
    """The first approval of ``run`` decided since its parking step began, with its tool call."""
    from approvals.models import ApprovalRequest

    request = (
        ApprovalRequest.objects.for_tenant(run.tenant)
        .filter(
            handler=APPROVAL_HANDLER,
            subject_type="run",
            subject_id=str(run.pk),
            status__in=["approved", "rejected", "expired"],
            decided_at__gte=since,
        )
        .order_by("decided_at", "pk")
        .first()
    )
    if request is None:
        return None
    call = ToolCall.objects.for_tenant(run.tenant).get(pk=int(request.handler_ref), run=run)
    return request, call


# --------------------------------------------------------------------------- watchdog


def watchdog(*, stale_queued_seconds: int = 60) -> int:
    """Re-enqueue runs whose worker died (lease expired) or whose task never arrived."""
    now = timezone.now()
    stale = Run.objects.unscoped("watchdog scans every tenant").filter(
        Q(status=RunStatus.RUNNING, lease_expires_at__lt=now)
        | Q(
            status=RunStatus.RUNNING,
            lease_expires_at__isnull=True,
            updated_at__lt=now - timedelta(seconds=stale_queued_seconds),
        )
        | Q(status=RunStatus.QUEUED, updated_at__lt=now - timedelta(seconds=stale_queued_seconds))
    )
    ids = list(stale.values_list("pk", flat=True)[:500])
    from agents.tasks import advance_run_task

    for run_id in ids:
        advance_run_task.delay(run_id)
    if ids:
        log.warning("watchdog re-enqueued %d runs: %s", len(ids), ids[:20])
    return len(ids)
