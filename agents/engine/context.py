"""The step context: what one blueprint state gets — the run, its checkpoint data, the model,
guardrail events and redaction. Proposing and executing tools (``tool_calls``) and asking a
person (``approvals``) are mixed in from modules of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils import timezone

from agentops import tracing
from agents import metrics
from agents.engine.approvals import ApprovalSteps
from agents.engine.base import TransientStepError, args_hash  # noqa: F401 (re-exported)
from agents.engine.tool_calls import ToolCalls
from agents.models import AgentConfig, GuardrailEvent, Run, Step, ToolCall
from agents.redaction import redact


def backend_for(config: AgentConfig):
    """The package attribute ``agents.engine.backend_for``, looked up at call time (tests
    replace it there)."""
    import agents.engine

    return agents.engine.backend_for(config)


@dataclass
class StepContext(ToolCalls, ApprovalSteps):
    """What a blueprint state gets: the run, its checkpoint data, the model, tools, guardrails."""

    run: Run
    step: Step
    config: AgentConfig
    state: dict[str, Any]
    usage: dict[str, Any] = field(default_factory=lambda: {"in": 0, "out": 0, "cost": 0.0, "ms": 0})
    blueprint: Any = None
    # The tools the blueprint declares and the tenant allows (None: no list, runs from before).
    allowed_tools: frozenset[str] | None = None
    # The blueprint's config for this run (its defaults with the tenant's overrides).
    blueprint_config: dict[str, Any] = field(default_factory=dict)
    # Rows a state hands to the states after it while one worker task chains them
    # (engine.advance): the same objects, no second read. Empty in every new task, so a state
    # must fall back to reading; never a substitute for ``state`` (the checkpoint).
    memo: dict[str, Any] = field(default_factory=dict)

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

    @tracing.traced_model_call
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

    def _touch(self, call: ToolCall | None = None) -> None:
        """Mark the step (and the step that proposed ``call``) changed, for the live timeline."""
        touch_sql, params = self._touch_sql(call)
        with connection.cursor() as cursor:
            cursor.execute(touch_sql, params)

    def _touch_sql(self, call: ToolCall | None = None) -> tuple[str, list]:
        ids = sorted(
            {self.step.pk} | ({call.step_id} if call is not None and call.step_id else set())
        )
        return (
            f'UPDATE "{Step._meta.db_table}" SET updated_at = %s '  # noqa: S608
            "WHERE tenant_id = %s AND id = ANY(%s)",
            [timezone.now(), self.tenant.pk, ids],
        )

    def _save_call(
        self, call: ToolCall, fields: list[str], *, event: dict | None = None, carry: bool = False
    ) -> None:
        """The call's new state and the touch of its steps (the live timeline), one round trip;
        with the audit ``event`` recording it (``action``, ``changes``, ``metadata``) in the
        same round trip when given. ``carry`` (with an event): both go with the step's next
        audit append, its checkpoint usually (``audit.carry``), when the engine runs the step
        in ``audit.carrying``."""
        from agentops import audit
        from agents.engine import sql

        statement = sql.together(sql.update_sql(call, fields), self._touch_sql(call))
        if (
            carry
            and event is not None
            and audit.carry(
                *statement,
                tenant=self.tenant,
                actor=None,
                target_type="tool_call",
                target_id=call.call_id,
                target_repr=call.tool_name,
                **event,
            )
        ):
            return
        if event is None:
            with connection.cursor() as cursor:
                cursor.execute(*statement)
            return
        with audit.sent_with(*statement):
            audit.record(
                tenant=self.tenant,
                actor=None,
                target_type="tool_call",
                target_id=call.call_id,
                target_repr=call.tool_name,
                **event,
            )
